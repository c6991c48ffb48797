"""Adaptive injection: a learned gate deciding, per token or per layer, how much knowledge enters."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from gnnlm.fusion.injection import FusionState, Injection, InjectionContext

GRANULARITIES = ("token", "layer")


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

    Args:
        context: sizes.
        granularity: ``token`` or ``layer``.
        bias: initial :math:`b` (``sigmoid(2) ~ 0.88``: knowledge mostly let through at start).
    """

    name: ClassVar[str] = "adaptive"
    gates_deltas: ClassVar[bool] = True

    def __init__(
        self, context: InjectionContext, *, granularity: str = "token", bias: float = 2.0
    ) -> None:
        super().__init__(context)
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        self.granularity, self.bias_init = granularity, bias
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
        return alpha * delta

    def gate_values(self) -> Tensor | None:
        """``[num_fused_layers]`` ``sigmoid(b)``, the gate of a token with no features."""
        return torch.sigmoid(self.bias.detach())

    def extra_repr(self) -> str:
        return f"granularity={self.granularity}, layers={list(self.context.fused_layers)}"
