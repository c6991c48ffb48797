"""Adversarial training on embedding outputs: FGM, PGD and FreeLB (``finetuning.adversarial``).

A perturbation ``delta`` is added to the output of each target module (the LM's token embeddings
``[batch, seq, hidden]``, the fused model's node features ``[num_nodes, node_channels]``, or any module
named by suffix) through a forward hook, and kept inside an L2 ball of radius ``epsilon`` *per example*:
the norm is over every dimension but the first (a token sequence's whole ``[seq, hidden]`` block, or one
node's feature row)::

    fgm:     clean pass, backward;  delta = eps * g / ||g||;  adversarial pass, weight * loss backward
    pgd:     clean pass, backward;  K times: delta = proj(delta + alpha * g / ||g||), g from a pass at
             delta whose parameter gradients are discarded; the K-th perturbation's weight * loss backward
    freelb:  delta from a random start in the ball; K passes, each loss / K backward (the parameter
             gradients average over the K perturbations: that is the training loss, there is no clean
             pass); delta ascends (and is projected) between passes

Padded tokens are perturbed too: they are masked out of attention and pooling, so their perturbation
changes nothing downstream and their gradient is zero (only FreeLB's random start spends part of an
example's budget on them, as in the reference implementation without its mask).

Dropout and every other draw of torch's global generator run as usual in each pass: the passes of one
step see different dropout masks (as in the reference implementations), and a seeded run is still
reproducible since the number of passes per step is fixed. FreeLB's random start draws from that
generator too. The task's own generator is the engine's business (it resets it before every pass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.strategies.config import AdversarialConfig
from gnnlm.train.task import StepOutput

StepResult = Tensor | StepOutput
#: the name of a target's key in ``finetuning.adversarial.targets`` for the LM's token embeddings.
WORD_EMBEDDINGS = "word_embeddings"
#: ... and for the fused model's node features.
ENTITY_EMBEDDINGS = "entity_embeddings"


def resolve_targets(model: nn.Module, targets: list[str], *, at: str = "") -> dict[str, nn.Module]:
    """The modules whose outputs are perturbed, by name (each once, in ``named_modules`` order).

    Args:
        model: the task's model.
        targets: ``word_embeddings`` (every module whose name ends with it: the HF LM's token
            embedding), ``entity_embeddings`` (the module that outputs each
            :class:`~gnnlm.fusion.FusedLM`'s node features: its ``node_projection`` for KGE / text
            tables, else its ``node_embedding`` table) or any other module-name suffix.
        at: ``"file.yaml:12: "`` prefix of error messages.

    Raises:
        ConfigError: a target matches no module.
    """
    names = {module: name for name, module in model.named_modules()}
    chosen: set[nn.Module] = set()
    for target in targets:
        if target == ENTITY_EMBEDDINGS:
            matches = _node_feature_modules(model)
        else:
            matches = [m for m, name in names.items() if name and name.endswith(target)]
        if not matches:
            why = (
                "the model has no fused LM with a GNN (node features come with injection modes "
                "that use the graph encoder)"
                if target == ENTITY_EMBEDDINGS
                else "no module name ends with it"
            )
            raise ConfigError(
                f"{at}finetuning.adversarial.targets: {target!r} matches nothing in the model: {why}"
            )
        chosen.update(matches)
    return {name: module for module, name in names.items() if module in chosen}


def _node_feature_modules(model: nn.Module) -> list[nn.Module]:
    """The last module of each FusedLM's ``node_features`` (whose output is the node features)."""
    from gnnlm.fusion.model import FusedLM

    out = []
    for module in model.modules():
        if isinstance(module, FusedLM):
            last = module.node_projection
            last = module.node_embedding if last is None else last
            if last is not None:
                out.append(last)
    return out


def per_example_norm(x: Tensor) -> Tensor:
    """``[n, *]`` -> ``[n, 1, ..., 1]`` L2 norm over every dim but the first (broadcasts against x)."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def normalized(g: Tensor) -> Tensor:
    """``g / ||g||`` per example; an example whose gradient is zero gets zero (not NaN)."""
    # clamping the norm is safe: where it applies every entry is below it, so |ratio| <= 1
    return g / per_example_norm(g).clamp_min(1e-12)


def project(delta: Tensor, epsilon: float) -> Tensor:
    """``delta`` scaled back onto the ball ``||delta|| <= epsilon`` per example (inside: unchanged)."""
    norm = per_example_norm(delta)
    return delta * (epsilon / norm.clamp_min(epsilon)).clamp_max(1.0)


def _loss(out: StepResult) -> Tensor:
    return out.loss if isinstance(out, StepOutput) else out


class AdversarialTraining:
    """Backward passes with adversarially perturbed embeddings (see the module docstring).

    Args:
        settings: ``finetuning.adversarial`` (its ``method`` must be set).
        model: the task's model; its target modules are resolved once, here.
        at: ``"file.yaml:12: "`` prefix of error messages (``config.at("finetuning.adversarial")``).

    Attributes:
        targets: ``{module name: module}`` whose outputs are perturbed.
        perturbations: the perturbation of every pass of the last :meth:`backward`, in order (the
            clean pass of fgm / pgd: zeros), each ``{module name: [delta per call of the module in a
            pass]}`` (detached; a delta has its output's shape, e.g. ``[batch, seq, hidden]``).
    """

    def __init__(self, settings: AdversarialConfig, model: nn.Module, *, at: str = "") -> None:
        if settings.method is None:
            raise ConfigError(f"{at}finetuning.adversarial.method is null: nothing to do")
        self.settings = settings
        self.model = model
        self.targets = resolve_targets(model, list(settings.targets), at=at)
        self.perturbations: list[dict[str, list[Tensor]]] = []
        # per target: the current delta of each call in a pass (created lazily at the first pass,
        # when the output's shape is known), and how many calls the running pass made
        self._deltas: dict[str, list[Tensor]] = {}
        self._calls: dict[str, int] = {}
        self._track = False  # whether the running pass's deltas require grad
        self._random_start = False

    @property
    def last_deltas(self) -> dict[str, list[Tensor]]:
        """The perturbation of the last adversarial pass (``{module name: [delta per call]}``)."""
        return self.perturbations[-1] if self.perturbations else {}

    # -- the step --------------------------------------------------------------------------------
    def backward(self, run_step: Callable[[], StepResult], scale: float) -> StepResult:
        """Accumulate ``scale *`` the gradient of the strategy's loss into the parameters' ``.grad``.

        Args:
            run_step: one forward pass of the task on the same batch (the engine replays its
                generator before each call), returning the loss or a :class:`StepOutput`.
            scale: the engine's accumulation weight of this batch.

        Returns:
            the clean pass's output with its loss detached (FreeLB, which has no clean pass: its first
            pass's output, with the loss it minimises, the mean over its passes); a
            :class:`StepOutput` also logs ``adversarial_loss`` (the last adversarial pass's loss).
        """
        method = self.settings.method
        self._deltas = {name: [] for name in self.targets}
        self.perturbations = []
        self._random_start = method == "freelb"
        handles = [m.register_forward_hook(self._hook(name)) for name, m in self.targets.items()]
        try:
            if method == "fgm":
                clean, adversarial = self._fgm(run_step, scale)
            elif method == "pgd":
                clean, adversarial = self._pgd(run_step, scale)
            else:
                clean, adversarial = self._freelb(run_step, scale)
        finally:
            for handle in handles:
                handle.remove()
            self._deltas = {}  # the next batch has other shapes
        if isinstance(clean, StepOutput):
            logs = {**clean.logs, "adversarial_loss": float(adversarial)}
            return StepOutput(clean.loss.detach(), logs)
        return clean.detach()

    def _fgm(self, run_step: Callable[[], StepResult], scale: float) -> tuple[StepResult, Tensor]:
        clean = self._pass(run_step, track=True)
        (_loss(clean) * scale).backward()
        eps = self.settings.epsilon
        self._set_deltas(lambda delta: eps * normalized(self._grad(delta)))
        adversarial = _loss(self._pass(run_step, track=False))
        (adversarial * (self.settings.weight * scale)).backward()
        return clean, adversarial.detach()

    def _pgd(self, run_step: Callable[[], StepResult], scale: float) -> tuple[StepResult, Tensor]:
        s = self.settings
        clean = self._pass(run_step, track=True)
        (_loss(clean) * scale).backward()  # fills each delta's .grad: the first ascent direction
        adversarial = _loss(clean)
        for step in range(s.steps):
            self._set_deltas(
                lambda delta: project(delta + s.alpha * normalized(self._grad(delta)), s.epsilon)
            )
            last = step == s.steps - 1
            adversarial = _loss(self._pass(run_step, track=not last))
            if last:
                (adversarial * (s.weight * scale)).backward()
            else:
                # only the deltas' gradients: the parameters' .grad is not touched (the reference
                # implementations save, zero and restore it, which is the same with two copies)
                deltas = self._all_deltas()
                grads = torch.autograd.grad(adversarial, deltas, allow_unused=True)
                for delta, grad in zip(deltas, grads):
                    delta.grad = grad
        return clean, adversarial.detach()

    def _freelb(
        self, run_step: Callable[[], StepResult], scale: float
    ) -> tuple[StepResult, Tensor]:
        s = self.settings
        first: StepResult | None = None
        losses = []
        for step in range(s.steps):
            last = step == s.steps - 1
            out = self._pass(run_step, track=not last)
            first = out if first is None else first
            losses.append(_loss(out).detach())
            (_loss(out) * (scale / s.steps)).backward()
            if not last:
                self._set_deltas(
                    lambda delta: project(
                        delta + s.alpha * normalized(self._grad(delta)), s.epsilon
                    )
                )
        assert first is not None  # steps >= 1
        mean = torch.stack(losses).mean()
        clean = StepOutput(mean, first.logs) if isinstance(first, StepOutput) else mean
        return clean, losses[-1]

    # -- passes and deltas ------------------------------------------------------------------------
    def _pass(self, run_step: Callable[[], StepResult], *, track: bool) -> StepResult:
        """One forward pass with the current deltas (leaves that require grad when ``track``)."""
        for delta in self._all_deltas():
            delta.grad = None
            delta.requires_grad_(track)
        self._track = track
        self._calls = dict.fromkeys(self.targets, 0)
        out = run_step()
        self.perturbations.append(
            {name: [d.detach().clone() for d in deltas] for name, deltas in self._deltas.items()}
        )
        return out

    def _hook(self, name: str) -> Callable[[nn.Module, Any, Any], Tensor]:
        def hook(module: nn.Module, args: Any, output: Any) -> Tensor:
            if not isinstance(output, Tensor) or output.dim() < 1:
                raise ConfigError(
                    f"finetuning.adversarial.targets: module {name!r} returns "
                    f"{type(output).__name__}, not a tensor with a batch dimension"
                )
            k, deltas = self._calls[name], self._deltas[name]
            self._calls[name] = k + 1
            if k == len(deltas):  # first pass: a delta per call, in float32 (autocast-safe)
                deltas.append(self._start(output).requires_grad_(self._track))
            delta = deltas[k]
            if delta.shape != output.shape:
                raise RuntimeError(
                    f"{name}: call {k} outputs {tuple(output.shape)} but {tuple(delta.shape)} in the "
                    "first pass; run_step must replay the same batch"
                )
            return output + delta.to(output.dtype)

        return hook

    def _start(self, output: Tensor) -> Tensor:
        """The first delta: zeros (fgm, pgd) or FreeLB's random start, uniform in a cube inside the ball."""
        if not self._random_start:
            return torch.zeros(output.shape, device=output.device)
        per_example = max(output[0].numel(), 1)
        # every entry within eps / sqrt(n): the norm of the n entries of an example is <= eps
        bound = self.settings.epsilon / per_example**0.5
        return (torch.rand(output.shape, device=output.device) * 2 - 1) * bound

    def _all_deltas(self) -> list[Tensor]:
        return [d for deltas in self._deltas.values() for d in deltas]

    @staticmethod
    def _grad(delta: Tensor) -> Tensor:
        # a delta that did not reach the loss has no gradient: it does not move
        return delta.grad if delta.grad is not None else torch.zeros_like(delta)

    def _set_deltas(self, update: Callable[[Tensor], Tensor]) -> None:
        """Replace every delta by ``update(delta)`` (a new leaf, detached from the last pass)."""
        with torch.no_grad():
            self._deltas = {
                name: [update(d).detach() for d in deltas] for name, deltas in self._deltas.items()
            }


__all__ = ["AdversarialTraining", "normalized", "per_example_norm", "project", "resolve_targets"]
