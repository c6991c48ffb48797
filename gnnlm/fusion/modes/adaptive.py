"""Adaptive injection: a learned gate deciding, per token or per layer, how much knowledge enters."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from gnnlm.fusion.injection import FusionState, Injection, InjectionContext

GRANULARITIES = ("token", "layer")
#: ``regularizer`` values: none, the mean gate (sparsity) or its squared distance to ``target``.
REGULARIZERS = (None, "sparsity", "target")


def masked_layer_means(gates: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean gate of each fused layer over the batch's real tokens (padding left out).

    Args:
        gates: ``[num_fused_layers, batch, seq]`` adaptive gates (``FusionOutput.knowledge_gates``).
        attention_mask: ``[batch, seq]``, 1 for real tokens.

    Returns:
        ``[num_fused_layers]`` means (0 for a batch without a real token).
    """
    mask = attention_mask.to(gates.dtype)  # [batch, seq]
    return (gates * mask).sum((1, 2)) / mask.sum().clamp_min(1)


class AdaptiveInjection(Injection):
    r"""Scales the summed knowledge delta :math:`\Delta` of the other modes by a learned gate.

    Per token (``granularity="token"``), at fused layer :math:`i`:

    .. math::
        \alpha = \sigma\!\left(w_i^\top [\mathrm{LN}(h); \Delta] + b_i\right), \qquad h' = h + \alpha\,\Delta

    or per layer (``granularity="layer"``): :math:`\alpha = \sigma(b_i)`. The gate values are exposed as
    ``FusionOutput.knowledge_gates`` (``[num_fused_layers, batch, seq]``) for inspection and plots. As in
    gated knowledge fusion (KnowBERT's recontextualisation, Peters et al., 2019; K-Adapter), the gate
    lets the model ignore knowledge where it does not help. It produces no knowledge itself, so it is
    combined with other modes (``injection: [graph, adaptive]``).

    **Regulariser** (:meth:`regularization_loss`, added to the task's loss through
    ``FusionOutput.regularization_loss``), over the real tokens of the batch (padding never counts),
    with :math:`\bar\alpha_i` the mean gate of fused layer :math:`i` and :math:`K` fused layers:

    * ``sparsity``: :math:`\lambda \cdot \frac1K \sum_i \bar\alpha_i`, the L1 norm of the (positive)
      gates per token: every gate pays for being open, so knowledge stays on only where it lowers the
      task loss by more than it costs.
    * ``target``: :math:`\lambda \cdot \frac1K \sum_i (\bar\alpha_i - \tau)^2`, a budget of openness
      :math:`\tau` per layer. The *mean* is pulled to :math:`\tau`, not each token's gate, so a layer
      stays free to open for some tokens and close for others (a per-token penalty would push every
      gate to :math:`\tau` and erase the selectivity the gate is for); per layer rather than over all
      layers, so the budget cannot be met by one layer wide open and another shut.

    Neither changes the forward pass: a fresh model is still exactly the LM.

    Args:
        context: sizes.
        granularity: ``token`` or ``layer``.
        bias: initial :math:`b` (``sigmoid(2) ~ 0.88``: knowledge mostly let through at start).
        regularizer: ``None``, ``"sparsity"`` or ``"target"`` (above).
        target: the openness :math:`\tau \in (0, 1)` of ``regularizer="target"`` (required there,
            refused otherwise).
        regularizer_weight: :math:`\lambda \ge 0`, applied here: ``regularization_loss`` is the
            weighted value.
    """

    name: ClassVar[str] = "adaptive"
    gates_deltas: ClassVar[bool] = True

    def __init__(
        self,
        context: InjectionContext,
        *,
        granularity: str = "token",
        bias: float = 2.0,
        regularizer: str | None = None,
        target: float | None = None,
        regularizer_weight: float = 0.1,
    ) -> None:
        super().__init__(context)
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
        if regularizer == "target" and (target is None or not 0.0 < target < 1.0):
            raise ValueError(f"regularizer 'target' needs a target in (0, 1), got {target!r}")
        if regularizer != "target" and target is not None:
            raise ValueError(f"target={target} is used only with regularizer: target")
        if not regularizer_weight >= 0.0:
            raise ValueError(f"regularizer_weight must be >= 0, got {regularizer_weight!r}")
        self.granularity, self.bias_init = granularity, bias
        self.regularizer, self.target = regularizer, target
        self.regularizer_weight = regularizer_weight
        k, d = len(context.fused_layers), context.hidden_size
        self.norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(k))
        self.weight = nn.Parameter(torch.empty(k, 2 * d))
        self.bias = nn.Parameter(torch.empty(k))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for norm in self.norm:
            norm.reset_parameters()
        nn.init.normal_(self.weight, std=0.02)
        nn.init.constant_(self.bias, self.bias_init)

    def combine(self, i: int, hidden: Tensor, delta: Tensor, state: FusionState) -> Tensor:
        j = self.context.fused_index(i)
        if j is None:
            return delta
        if self.granularity == "layer":
            alpha = (
                torch.sigmoid(self.bias[j]).expand(hidden.shape[:-1]).unsqueeze(-1)
            )  # [batch, seq, 1]
        else:
            features = torch.cat([self.norm[j](hidden), delta], -1)  # [batch, seq, 2d]
            alpha = torch.sigmoid(features @ self.weight[j] + self.bias[j]).unsqueeze(
                -1
            )  # [batch, seq, 1]
        state.knowledge_gates.append(alpha.squeeze(-1))
        own = state.cache.setdefault(self.name, [])  # this mode's gates, for the regulariser
        own.append(alpha.squeeze(-1))
        return alpha * delta

    def regularization_loss(self, state: FusionState) -> Tensor | None:
        """The weighted regulariser of the gates of this forward pass (class docstring), or ``None``
        without a regulariser (or when no knowledge was gated)."""
        gates = state.cache.get(self.name)
        if self.regularizer is None or not gates:
            return None
        means = masked_layer_means(torch.stack(gates), state.batch.attention_mask)  # [K]
        if self.regularizer == "sparsity":
            value = means.mean()
        else:
            value = (means - self.target).pow(2).mean()
        return self.regularizer_weight * value

    def gate_values(self) -> Tensor | None:
        """``[num_fused_layers]`` ``sigmoid(b)``, the gate of a token with no features."""
        return torch.sigmoid(self.bias.detach())

    def extra_repr(self) -> str:
        extra = f", regularizer={self.regularizer}" if self.regularizer else ""
        return f"granularity={self.granularity}, layers={list(self.context.fused_layers)}{extra}"
