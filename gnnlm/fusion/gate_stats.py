"""Statistics of the adaptive knowledge gates, for logs during training and evaluation.

A task reads the gates from the :class:`~gnnlm.fusion.FusionOutput` of its forward passes. Its model
usually returns only logits and a loss, so :func:`record_outputs` captures the fused LM's outputs with a
forward hook, whatever wraps the call (a classifier head, an adversarial loop running several passes)::

    with record_outputs(model.fused) as outputs:
        logits, loss = model(batch)
    # {"knowledge_gate_0": mean gate, "knowledge_open_0": share of gates > 0.5, ...}
    logs.update(knowledge_gate_stats(outputs, batch.attention_mask).logs())
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from gnnlm.fusion.outputs import FusionOutput

#: a gate above this counts as open (:meth:`KnowledgeGateStats.open_shares`).
OPEN_THRESHOLD = 0.5


@contextmanager
def record_outputs(fused: nn.Module) -> Iterator[list[FusionOutput]]:
    """Collect the :class:`FusionOutput` of every forward pass of ``fused`` inside the block."""
    outputs: list[FusionOutput] = []
    handle = fused.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()


class KnowledgeGateStats:
    """Running per-layer statistics of adaptive gates over real tokens (padding left out).

    Attributes:
        total: ``[num_fused_layers]`` sum of the gates over the real tokens seen (float64).
        open: ``[num_fused_layers]`` how many of those gates were above :data:`OPEN_THRESHOLD`.
        tokens: real tokens seen (per layer: every layer gates every token).
    """

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.open: Tensor | None = None
        self.tokens = 0

    def __bool__(self) -> bool:
        return self.tokens > 0

    def update(self, gates: Tensor | None, attention_mask: Tensor) -> None:
        """Add a batch: ``gates`` ``[num_fused_layers, batch, seq]`` (``None``: no adaptive mode,
        ignored) and its ``[batch, seq]`` attention mask (1 for real tokens)."""
        if gates is None:
            return
        real = attention_mask.bool()  # [batch, seq]
        values = gates.detach()[:, real].double()  # [K, real tokens]
        total, opened = values.sum(1).cpu(), (values > OPEN_THRESHOLD).sum(1).cpu()
        self.total = total if self.total is None else self.total + total
        self.open = opened if self.open is None else self.open + opened
        self.tokens += int(real.sum())

    def means(self) -> list[float]:
        """Mean gate per fused layer (empty before any real token)."""
        return (self.total / self.tokens).tolist() if self else []

    def open_shares(self) -> list[float]:
        """Share of real tokens whose gate is above :data:`OPEN_THRESHOLD`, per fused layer."""
        return (self.open.double() / self.tokens).tolist() if self else []

    def logs(self) -> dict[str, float]:
        """``{"knowledge_gate_<j>": mean, "knowledge_open_<j>": open share}`` per fused layer ``j``
        (empty when nothing was gated), for a task's ``StepOutput.logs``."""
        logs = {f"knowledge_gate_{j}": v for j, v in enumerate(self.means())}
        logs.update({f"knowledge_open_{j}": v for j, v in enumerate(self.open_shares())})
        return logs


def knowledge_gate_stats(outputs: list[FusionOutput], attention_mask: Tensor) -> KnowledgeGateStats:
    """The statistics of the adaptive gates of ``outputs`` (forward passes of one batch)."""
    stats = KnowledgeGateStats()
    for out in outputs:
        stats.update(out.knowledge_gates, attention_mask)
    return stats


__all__ = ["KnowledgeGateStats", "OPEN_THRESHOLD", "knowledge_gate_stats", "record_outputs"]


def injection_logs(fused: nn.Module) -> dict[str, float]:
    """What a task logs each step about its injections, for the plots of their path over training:
    ``gate_<mode>_<j>`` (the ``tanh`` gate of fused layer ``j``, for modes with one) and
    ``output_norm_<mode>`` (the summed norms of the mode's output projections: with open gates these
    carry the flow of knowledge, so their size is what to watch).

    Args:
        fused: a :class:`~gnnlm.fusion.FusedLM` (``injections``: mode name -> injection).
    """
    logs: dict[str, float] = {}
    for name, injection in fused.injections.items():
        values = injection.gate_values()
        if values is not None:
            logs.update({f"gate_{name}_{j}": float(v) for j, v in enumerate(values.tolist())})
        logs[f"output_norm_{name}"] = sum(
            float(p.detach().norm()) for o in injection.output_modules() for p in o.parameters()
        )
    return logs
