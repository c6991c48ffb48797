"""Dual-tower injection: text and graph encoded separately, aligned contrastively and joined late."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

from gnnlm.fusion.attention import TanhGate
from gnnlm.fusion.injection import FusionState, Injection, InjectionContext

if TYPE_CHECKING:
    from gnnlm.fusion.outputs import FusionOutput


class DualTowerInjection(Injection):
    r"""A text tower (the LM, untouched) and a graph tower (the GNN over the subgraphs), joined late.

    With :math:`t_b` the pooled text of example :math:`b` and :math:`x_b` the final GNN state of its anchor
    entity (first linked entity), both projected and L2-normalised to :math:`\hat t_b, \hat x_b`:

    * contrastive alignment (InfoNCE, both directions, temperature :math:`\tau`) between an entity's text and
      graph representations, as SimKGC (Wang et al., 2022, https://arxiv.org/abs/2203.02167) and KEPLER
      (Wang et al., 2021) align text and KG views; pairs whose anchors are the same entity are not
      counted as negatives;
    * a scoring head :meth:`score` ``= \hat t \hat x^\top / \tau``;
    * a late join of the pooled output: :math:`p_b = t_b + \tanh(g)\, W x_b` (zero :math:`W` and an open
      gate at init with ``gate_init: open``, the default; a zero gate with ``closed``).

    Neither tower sees the other before the join, so the towers can be run (and cached) separately.

    Args:
        context: sizes.
        embedding_channels: width of the shared embedding space (default: LM width).
        temperature: initial :math:`\tau` (learned, as log).
    """

    name: ClassVar[str] = "dual_tower"
    uses_graph_encoder: ClassVar[bool] = True

    def __init__(
        self,
        context: InjectionContext,
        *,
        embedding_channels: int | None = None,
        temperature: float = 0.05,
    ) -> None:
        super().__init__(context)
        d, dn = context.hidden_size, context.node_channels
        e = embedding_channels or d
        self.temperature_init = temperature
        self.text_proj = nn.Linear(d, e)
        self.graph_proj = nn.Linear(dn, e)
        self.join = nn.Linear(dn, d)
        self.log_temperature = nn.Parameter(torch.empty(()))
        self.gate = TanhGate(1, init=context.gate_value)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.text_proj, self.graph_proj, self.join):
            lin.reset_parameters()
        nn.init.constant_(
            self.log_temperature, float(torch.log(torch.tensor(self.temperature_init)))
        )
        self.gate.reset_parameters()
        self.zero_outputs()

    def output_modules(self) -> list[nn.Module]:
        """The late join ``W``."""
        return [self.join]

    def score(self, text_embedding: Tensor, graph_embedding: Tensor) -> Tensor:
        """``[n, e]`` x ``[m, e]`` normalised embeddings -> ``[n, m]`` logits."""
        return text_embedding @ graph_embedding.t() / self.log_temperature.exp()

    def finalize(self, output: FusionOutput, state: FusionState) -> None:
        anchor = state.batch.anchor  # [batch]
        has = anchor >= 0
        pooled = output.pooled_output  # [batch, d]
        graph_state = pooled.new_zeros(len(anchor), self.context.node_channels)
        if bool(has.any()):
            graph_state = torch.where(
                has.unsqueeze(-1), state.node_states[anchor.clamp_min(0)], graph_state
            )
        text_embedding = nn.functional.normalize(self.text_proj(pooled), dim=-1)  # [batch, e]
        graph_embedding = nn.functional.normalize(
            self.graph_proj(graph_state), dim=-1
        )  # [batch, e]
        output.text_embedding, output.graph_embedding = text_embedding, graph_embedding
        output.pooled_output = pooled + self.gate(0) * self.join(graph_state) * has.unsqueeze(-1)
        output.contrastive_loss = self.contrastive_loss(
            text_embedding[has], graph_embedding[has], state.batch.graph.n_id[anchor[has]]
        )

    def contrastive_loss(self, text: Tensor, graph: Tensor, entity: Tensor) -> Tensor:
        """Symmetric InfoNCE over ``[n, e]`` pairs; ``entity: [n]`` ids mask duplicate positives."""
        if len(text) == 0:
            return text.new_zeros(())
        logits = self.score(text, graph)  # [n, n]
        same = entity.unsqueeze(0) == entity.unsqueeze(1)  # [n, n]
        eye = torch.eye(len(entity), dtype=torch.bool, device=entity.device)
        logits = logits.masked_fill(same & ~eye, torch.finfo(logits.dtype).min)
        target = torch.arange(len(entity), device=entity.device)
        ce = nn.functional.cross_entropy
        return 0.5 * (ce(logits, target) + ce(logits.t(), target))

    def extra_repr(self) -> str:
        return f"text={self.text_proj.in_features}, graph={self.graph_proj.in_features}, embedding={self.text_proj.out_features}"
