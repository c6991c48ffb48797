"""Row-sparse updates for negative-sampling training: only the rows a batch uses are read and moved.

A sLCWA batch of ``B`` triples with ``K`` negatives touches at most ``2 B (1 + K)`` entity rows and
``B (1 + K)`` relation rows, a few thousand of FB15k-237's 14,541 entities. The dense reference reads
the whole tables, builds a full-size gradient and lets the optimizer walk every parameter; the sparse
path (``training.sparse_updates``) gathers the rows with
:func:`~gnnlm.kge.representation.sparse_gather`, so the gradient is a coalesced sparse COO tensor over
the batch's unique rows, and uses an optimizer that updates only those rows:

=========== =================== ==============================================================
config      sparse optimizer    semantics against the dense ``torch.optim`` optimizer
=========== =================== ==============================================================
``adagrad`` :class:`RowAdagrad` same updates: a zero gradient leaves a dense Adagrad row as it is
``sgd``     :class:`RowSGD`     same updates (without momentum and weight decay, the only case)
``adam``    :class:`LazyAdam`   *lazy* Adam: see below
=========== =================== ==============================================================

They read the gradient's rows (:func:`sparse_gather`'s gradients are coalesced already: a strictly
increasing index is checked, no sort) and update ``param[rows]`` and the state's rows only: by default
with torch's fused optimizer kernel on the gathered rows (one pass; see :class:`_RowOptimizer`),
with ``fused=False`` with the formulas of ``torch.optim``'s single-tensor code (the reference). A
touched row gets the dense optimizer's value up to float rounding (a few operations are ordered
differently). ``torch.optim.SparseAdam`` / sparse ``Adagrad`` do the same job with sparse-tensor
arithmetic; on CPU ``SparseAdam`` is several times slower than :class:`LazyAdam`.

**Adam.** :class:`LazyAdam` (like ``torch.optim.SparseAdam``) updates the moments ``m, v`` and the
weights of the rows in the batch only. Dense Adam also decays the moments of every other row
(``m <- beta1 m``, ``v <- beta2 v``) and keeps moving those rows by ``lr * m_hat / (sqrt(v_hat) + eps)``
although their gradient is 0. The lazy form skips both: a row's moments stand still while it is not
sampled, and it only moves when it is in a batch (TensorFlow Addons' ``LazyAdam``; PyTorch-BigGraph and
DGL-KE use sparse Adagrad for the same reason). The bias correction counts every step of the
parameter, as ``SparseAdam`` does. On the first step (and for a row that is in every batch) it equals
``torch.optim.Adam``. The final MRR of both is compared in ``benchmarks/throughput.py``.

The sparse path applies to the sLCWA loop with a plain embedding table (no GNN encoder: an encoder
needs the whole table), an interaction without weights of its own (TuckER's core tensor, ConvE's
convolution get dense gradients), one of the optimizers above without ``weight_decay`` / ``amsgrad`` /
momentum, and no gradient clipping (:func:`sparse_updates_reason`). ``training.sparse_updates: null``
(the default, "auto") turns it on where it applies, the sparse form is exact (Adagrad, SGD), *and* a
batch reads at most as many entity ids as there are entities, ``2 B (1 + K) <= num_entities``, in a
model of at least 2^20 parameters (:func:`touches_few_rows`; e.g. FB15k-237, d = 200, batch 1024, 1
negative): when every batch touches nearly every row, or the tables are tiny, there is nothing to
save, and the shipped configs (many negatives, or small graphs) keep the dense optimizers they were
tuned with. ``true`` forces it (a :class:`~gnnlm.train.config.ConfigError` says why it cannot
apply), ``false`` keeps the dense reference.

**Where the time goes.** On CPU, with torch's fused kernels on both sides, the row-wise step is not
clearly cheaper than the dense one at FB15k-237 scale (d = 200, batch 1024, 1 negative: ~2,600 of
14,541 entity rows per batch, 18%): the dense optimizer streams each tensor once, the row-wise one
reads and writes the touched rows of three tensors at random places (gather, kernel, write-back);
what the sparse path saves is the dense gradient (a zeroed full-size table per step) in the
backward. Measured in CPU time per step (``benchmarks/throughput.py --clock cpu``, one run):
lazy Adam 8.9 / 8.0 / 16.5 / 17.0 ms against dense fused Adam 8.6 / 7.1 / 15.4 / 16.9 ms for
TransE / DistMult / ComplEx / RotatE. Hence auto keeps Adam dense (exact, and as fast); the sparse
path pays off where a batch touches a smaller share of a larger table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gnnlm.train.config import ConfigError, TrainingConfig
from gnnlm.train.optim import optimizer_resolver

__all__ = [
    "LazyAdam",
    "RowAdagrad",
    "RowSGD",
    "make_optimizer",
    "sparse_form",
    "sparse_updates_reason",
    "touches_few_rows",
    "use_sparse_updates",
]

#: optimizer keyword arguments whose non-default value has no exact (or lazy) sparse form
#: (``fused`` passes through: the row optimizers have a fused and an unfused form too).
_DENSE_ONLY = {
    torch.optim.Adam: {"weight_decay": 0, "amsgrad": False, "foreach": None,
                       "capturable": False, "differentiable": False, "decoupled_weight_decay": False},
    torch.optim.Adagrad: {"weight_decay": 0, "foreach": None, "differentiable": False},
    torch.optim.SGD: {"weight_decay": 0, "momentum": 0, "dampening": 0, "nesterov": False,
                      "foreach": None, "differentiable": False},
}  # fmt: skip
#: the sparse optimizer class of each dense one (filled below the classes).
_SPARSE_CLASS: dict[type[torch.optim.Optimizer], type[torch.optim.Optimizer]] = {}


def sparse_form(
    optimizer: str | type[torch.optim.Optimizer], kwargs: dict[str, Any]
) -> tuple[type[torch.optim.Optimizer] | None, str]:
    """``(sparse optimizer class, "")``, or ``(None, why not)`` for an optimizer config."""
    cls = optimizer_resolver().lookup(optimizer)
    if cls not in _SPARSE_CLASS:
        names = ", ".join(c.__name__.lower() for c in _SPARSE_CLASS)
        return None, f"training.optimizer={cls.__name__.lower()!r} has no sparse form ({names} do)"
    for key, value in kwargs.items():
        if key in _DENSE_ONLY[cls] and value != _DENSE_ONLY[cls][key]:
            return None, f"training.optimizer_kwargs.{key}={value!r} has no sparse form"
    return _SPARSE_CLASS[cls], ""


def sparse_updates_reason(training: TrainingConfig, model: nn.Module) -> str:
    """Why the sparse path cannot apply to this run (``""`` when it can)."""
    from gnnlm.train.loops import SLCWALoop, loop_resolver

    if loop_resolver.lookup(training.loop) is not SLCWALoop:
        return f"training.loop={training.loop!r}: only the slcwa loop gathers rows"
    representation = getattr(model, "representation", None)
    if not getattr(representation, "supports_row_gather", False):
        return f"{type(representation).__name__} computes all rows together (e.g. a GNN encoder)"
    interaction = getattr(model, "interaction", None)
    if interaction is not None and any(True for _ in interaction.parameters()):
        return f"{type(interaction).__name__} has weights of its own (dense gradients)"
    if training.clip_grad_norm is not None:
        return "training.clip_grad_norm needs dense gradients"
    return sparse_form(training.optimizer, training.optimizer_kwargs)[1]


#: auto leaves models with fewer parameters dense: a dense optimizer pass over a small table is
#: cheaper than the row bookkeeping (measured on UMLS, 135 x 64 tables: 1.5x slower steps when sparse).
MIN_SPARSE_PARAMETERS = 2**20


def touches_few_rows(training: TrainingConfig, model: nn.Module) -> bool:
    """True when sparse updates pay off: a batch reads at most as many entity ids as there are
    entities, and the model has at least :data:`MIN_SPARSE_PARAMETERS` parameters.

    A batch reads ``2 B (1 + K)`` entity ids; with that many uniform draws at most ~63% of the rows
    are touched. Beyond, nearly every row is in every batch and the row-wise bookkeeping (unique ids,
    gathers, ``index_add_``) costs more than the dense pass it saves.
    """
    ids = 2 * training.batch_size * (1 + training.num_negatives)
    size = sum(p.numel() for p in model.parameters())
    return ids <= model.num_entities and size >= MIN_SPARSE_PARAMETERS


def use_sparse_updates(training: TrainingConfig, model: nn.Module) -> bool:
    """Resolve ``training.sparse_updates`` (``None``: auto) for this model.

    Auto turns the sparse path on where it applies (:func:`sparse_updates_reason`), a batch
    touches few rows (:func:`touches_few_rows`) and the sparse form is exact (Adagrad, SGD): Adam's
    sparse form is lazy (different semantics), and dense Adam with its fused kernel still runs as
    fast as the fused lazy Adam (module docstring, ``benchmarks/throughput.py``), so auto keeps
    Adam dense; ``true`` forces lazy Adam.

    Raises:
        ConfigError: ``sparse_updates: true`` where the sparse path does not apply.
    """
    if training.sparse_updates is False:
        return False
    reason = sparse_updates_reason(training, model)
    if training.sparse_updates:
        if reason:
            raise ConfigError(f"training.sparse_updates=true cannot apply: {reason}")
        return True
    exact = optimizer_resolver().lookup(training.optimizer) in (
        torch.optim.Adagrad,
        torch.optim.SGD,
    )
    return not reason and exact and touches_few_rows(training, model)


def make_optimizer(
    training: TrainingConfig, params: Iterable[nn.Parameter], *, sparse: bool
) -> torch.optim.Optimizer:
    """The optimizer of ``training`` (its sparse form when ``sparse``) over ``params``."""
    kwargs = {"lr": training.lr, **training.optimizer_kwargs}
    if not sparse:
        dense_cls = optimizer_resolver().lookup(training.optimizer)
        if _takes_fused(dense_cls) and not {"fused", "foreach"} & kwargs.keys():
            # One fused kernel per step instead of a loop of whole-tensor passes: the same update
            # (to float rounding), ~6x faster for Adam on CPU (FB15k-237 ComplEx d200: 6.7 against
            # 42 ms). ``optimizer_kwargs: {fused: false}`` keeps torch's default loop.
            kwargs["fused"] = True
        return optimizer_resolver().make(training.optimizer, kwargs, params=params)
    cls, reason = sparse_form(training.optimizer, training.optimizer_kwargs)
    if cls is None:
        raise ConfigError(f"training.sparse_updates: {reason}")
    dense_cls = optimizer_resolver().lookup(training.optimizer)
    kwargs = {k: v for k, v in kwargs.items() if k not in _DENSE_ONLY[dense_cls]}
    return cls(list(params), **kwargs)


def _takes_fused(cls: type) -> bool:
    """Whether ``cls`` is a torch optimizer with a ``fused`` kernel on CPU and CUDA (Adam, AdamW, SGD,
    Adagrad in torch >= 2.4); a user's optimizer is left as it is."""
    import inspect

    return cls.__module__.startswith("torch.optim") and "fused" in inspect.signature(cls).parameters


# -- row-wise optimizers ---------------------------------------------------------------------------
def _rows(grad: Tensor) -> tuple[Tensor | None, Tensor]:
    """``(rows [u], values [u, d])`` of a sparse COO gradient (``(None, grad)`` for a dense one)."""
    if not grad.is_sparse:
        return None, grad
    if not grad.is_coalesced():
        # AccumulateGrad drops the flag of sparse_gather's coalesced gradient: a strictly increasing
        # index (one O(u) comparison) proves it is still coalesced, which saves coalesce's sort.
        rows = grad._indices()[0]
        if len(rows) < 2 or bool((rows[1:] > rows[:-1]).all()):
            return rows, grad._values()
    grad = grad.coalesce()  # sorted unique rows, repeated rows summed
    return grad._indices()[0], grad._values()


def _read(tensor: Tensor, rows: Tensor | None) -> Tensor:
    """``tensor[rows]`` (a copy), or ``tensor`` itself for ``rows=None``."""
    return tensor if rows is None else tensor.index_select(0, rows)


def _add(tensor: Tensor, rows: Tensor | None, delta: Tensor) -> None:
    """``tensor[rows] += delta`` in place (``rows`` unique; ``index_add_`` is ~2x ``index_copy_``)."""
    if rows is None:
        tensor.add_(delta)
    else:
        tensor.index_add_(0, rows, delta)


def _fused_kernel(name: str) -> Any:
    """``torch._fused_<name>_``, the one-pass kernel behind ``torch.optim.<Name>(fused=True)`` (torch
    >= 2.4 on CPU), or ``None`` where this torch lacks it (the unfused reference then runs)."""
    return getattr(torch, f"_fused_{name}_", None)


class _RowOptimizer(torch.optim.Optimizer):
    """Updates ``param[rows]`` (and the state's rows) for a sparse gradient, all of it for a dense one.

    Two implementations of the same update, chosen by ``fused``:

    * fused (the default where torch has the kernel): the state's rows are gathered once into
      reused ``[u, d]`` buffers and torch's fused optimizer kernel (``torch._fused_adam_`` /
      ``torch._fused_adagrad_``, what ``torch.optim.Adam(fused=True)`` runs) updates them in one
      vectorised pass, ``index_copy_`` writes them back. The parameter's rows are not read: the
      kernel runs on a zeroed buffer, which becomes the step ``-lr * update`` (without weight
      decay the update does not depend on the weights), added with ``index_add_`` (faster than
      ``index_copy_`` on CPU; ``w + (0 - x) = w - x``). No temporaries; about 3x fewer passes
      over the rows than the reference. At FB15k-237 scale (ComplEx d200, batch 1024, ~2,600 of
      14,541 rows touched) this is about as fast as dense fused Adam over the whole table: the
      rows are read and written several times, the dense kernel streams each tensor once.
    * reference (``fused=False``): the formulas of ``torch.optim``'s single-tensor code on the
      rows, written as ``index_add_`` of deltas; ``tests/train/test_sparse_updates.py`` checks that
      both give the same values.
    """

    #: the fused kernel's name (``torch._fused_<name>_``), ``""`` when there is none.
    kernel: ClassVar[str] = ""

    def __init__(self, params: Iterable[Tensor], defaults: dict[str, Any],
                 fused: bool | None) -> None:  # fmt: skip
        if fused and not (self.kernel and _fused_kernel(self.kernel)):
            raise ValueError(f"{type(self).__name__}(fused=True): this torch has no fused kernel")
        if fused is None:
            fused = bool(self.kernel and _fused_kernel(self.kernel))
        super().__init__(params, {**defaults, "fused": fused})
        # (id(param), slot) -> a flat buffer reused for gathered rows (scratch, not state: it is
        # not saved in checkpoints)
        self._buffers: dict[tuple[int, int], Tensor] = {}

    def _update(self, group: dict[str, Any], param: Tensor, state: dict[str, Any], grad: Tensor,
                rows: Tensor | None) -> None:  # fmt: skip
        raise NotImplementedError

    def _init_state(self, group: dict[str, Any], param: Tensor, state: dict[str, Any]) -> None:
        state["step"] = torch.tensor(0.0)

    def _buffer(self, param: Tensor, slot: int, rows: Tensor) -> Tensor:
        """A reused ``[len(rows), *param.shape[1:]]`` scratch tensor (grows to the largest batch)."""
        shape = (len(rows), *param.shape[1:])
        numel = math.prod(shape)
        key = (id(param), slot)
        buf = self._buffers.get(key)
        if (
            buf is None
            or buf.numel() < numel
            or buf.dtype != param.dtype
            or buf.device != param.device
        ):
            buf = self._buffers[key] = param.new_empty(numel)
        return buf[:numel].view(shape)

    def _fused_rows(self, param: Tensor, states: list[Tensor], rows: Tensor | None,
                    kernel: Callable[[Tensor, list[Tensor]], None]) -> None:  # fmt: skip
        """Run ``kernel(param_like, state_likes)`` (one fused optimizer step, in place) on the rows
        ``rows`` of ``param`` and ``states`` (all of them for ``rows=None``); see the class doc."""
        if rows is None:
            kernel(param, states)
            return
        gathered = [
            torch.index_select(state, 0, rows, out=self._buffer(param, slot + 1, rows))
            for slot, state in enumerate(states)
        ]  # [u, d] each
        delta = self._buffer(param, 0, rows).zero_()  # [u, d]: becomes the step
        kernel(delta, gathered)
        for state, value in zip(states, gathered):
            state.index_copy_(0, rows, value)
        param.index_add_(0, rows, delta)

    @staticmethod
    def _step_on(state: dict[str, Any], param: Tensor) -> Tensor:
        """The step count where the fused kernel reads it (``param``'s device)."""
        step = state["step"]
        return step if step.device == param.device else step.to(param.device)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._buffers = {}
        for group in self.param_groups:  # a checkpoint from before ``fused``: the default form
            group.setdefault("fused", bool(self.kernel and _fused_kernel(self.kernel)))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch.optim's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    self._init_state(group, param, state)
                state["step"] += 1
                rows, grad = _rows(param.grad)
                self._update(group, param, state, grad, rows)
        return loss


class RowSGD(_RowOptimizer):
    """Plain SGD (``w <- w - lr g``) on the rows of a sparse gradient; equals ``torch.optim.SGD``."""

    def __init__(
        self, params: Iterable[Tensor], lr: float = 1e-3, fused: bool | None = None
    ) -> None:
        # one index_add_ per table: nothing to fuse (``fused`` is accepted for config symmetry)
        super().__init__(params, {"lr": lr}, fused=False)

    def _update(self, group, param, state, grad, rows):  # noqa: ANN001 - see _RowOptimizer
        if rows is None:
            param.add_(grad, alpha=-group["lr"])
        else:
            param.index_add_(0, rows, grad, alpha=-group["lr"])


class RowAdagrad(_RowOptimizer):
    """Adagrad on the rows of a sparse gradient; the same updates as ``torch.optim.Adagrad`` (a row with
    a zero gradient is left unchanged by Adagrad, state included).

    Args:
        params: the parameters.
        lr, lr_decay, eps, initial_accumulator_value: as in ``torch.optim.Adagrad``.
        fused: ``torch._fused_adagrad_`` on the gathered rows (``None``: where torch has it);
            ``False`` is the unfused reference (see :class:`_RowOptimizer`).
    """

    kernel = "adagrad"

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, lr_decay: float = 0.0,
                 eps: float = 1e-10, initial_accumulator_value: float = 0.0,
                 fused: bool | None = None) -> None:  # fmt: skip
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps,
                    "initial_accumulator_value": initial_accumulator_value}  # fmt: skip
        super().__init__(params, defaults, fused)

    def _init_state(self, group, param, state):  # noqa: ANN001 - see _RowOptimizer
        super()._init_state(group, param, state)
        state["sum"] = torch.full_like(
            param, group["initial_accumulator_value"], memory_format=torch.preserve_format
        )

    def _update(self, group, param, state, grad, rows):  # noqa: ANN001 - see _RowOptimizer
        if group["fused"]:
            step, grad = self._step_on(state, param), grad.contiguous()

            def kernel(p: Tensor, states: list[Tensor]) -> None:
                _fused_kernel("adagrad")(
                    [p], [grad], states, [step], lr=group["lr"], lr_decay=group["lr_decay"],
                    weight_decay=0.0, eps=group["eps"], maximize=False,
                )  # fmt: skip

            self._fused_rows(param, [state["sum"]], rows, kernel)
            return
        # reference: torch.optim.adagrad._single_tensor_adagrad's update, on the rows
        clr = group["lr"] / (1 + (state["step"].item() - 1) * group["lr_decay"])
        if rows is None:
            state["sum"].addcmul_(grad, grad, value=1)
            total = state["sum"]
        else:
            state["sum"].index_add_(0, rows, grad * grad)  # = sum + g * g, as addcmul_
            total = state["sum"].index_select(0, rows)  # [u, d]
        std = total.sqrt().add_(group["eps"])
        _add(param, rows, (grad / std).mul_(-clr))


class LazyAdam(_RowOptimizer):
    """Adam on the rows of a sparse gradient only ("lazy" Adam; see the module docstring).

    Args:
        params: the parameters.
        lr, betas, eps: as in ``torch.optim.Adam``.
        fused: ``torch._fused_adam_`` on the gathered rows (``None``: where torch has it);
            ``False`` is the unfused reference (see :class:`_RowOptimizer`).
    """

    kernel = "adam"

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 fused: bool | None = None) -> None:  # fmt: skip
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps}, fused)

    def _init_state(self, group, param, state):  # noqa: ANN001 - see _RowOptimizer
        super()._init_state(group, param, state)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update(self, group, param, state, grad, rows):  # noqa: ANN001 - see _RowOptimizer
        beta1, beta2 = group["betas"]
        if group["fused"]:
            step, grad = self._step_on(state, param), grad.contiguous()

            def kernel(p: Tensor, states: list[Tensor]) -> None:
                m, v = states
                _fused_kernel("adam")(
                    [p], [grad], [m], [v], [], [step], amsgrad=False, lr=group["lr"],
                    beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False,
                )  # fmt: skip

            self._fused_rows(param, [state["exp_avg"], state["exp_avg_sq"]], rows, kernel)
            return
        # reference: torch.optim.adam._single_tensor_adam's update, on the rows
        step = state["step"].item()
        m, v = _read(state["exp_avg"], rows), _read(state["exp_avg_sq"], rows)  # [u, d] each
        dm = (grad - m).mul_(1 - beta1)  # m + dm = lerp(m, g, 1 - beta1)
        # v + dv = beta2 v + (1 - beta2) g^2
        dv = torch.addcmul(v, grad, grad, value=-1).mul_(beta2 - 1)
        if rows is not None:
            _add(state["exp_avg"], rows, dm)
            _add(state["exp_avg_sq"], rows, dv)
        m, v = m.add_(dm), v.add_(dv)  # the stored values (in place on the state for rows=None)
        step_size = group["lr"] / (1 - beta1**step)
        denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
        _add(param, rows, (m / denom).mul_(-step_size))


_SPARSE_CLASS.update(
    {torch.optim.Adam: LazyAdam, torch.optim.Adagrad: RowAdagrad, torch.optim.SGD: RowSGD}
)
