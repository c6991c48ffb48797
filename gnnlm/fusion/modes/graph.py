"""Graph injection: GreaseLM-style two-way cross-attention between tokens and subgraph nodes."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from gnnlm.fusion.attention import MaskedCrossAttention, TanhGate
from gnnlm.fusion.injection import FusionState, Injection, InjectionContext


class GraphInjection(Injection):
    r"""Tokens and nodes of the same example exchange information after each fused LM layer.

    After LM layer :math:`i` (one of the top :math:`K`) and the GNN layer paired with it, with
    :math:`H` the token states and :math:`X` the node states of one example:

    .. math::
        H' = H + \tanh(g^{t}_i)\,\mathrm{Attn}(H \to X), \qquad
        X' = X + \tanh(g^{n}_i)\,\mathrm{Attn}(X \to H)

    Attention is masked to the example's own nodes / real tokens (to_dense_batch padding), so nothing
    leaks across the batch; gates start at zero so a fresh model reproduces the LM exactly. This replaces
    GreaseLM's single interaction token/node MLP (Zhang et al., 2022, https://arxiv.org/abs/2201.08860)
    with full cross-attention in both directions, as in QA-GNN/DRAGON-style variants.

    Args:
        context: sizes (:class:`~gnnlm.fusion.injection.InjectionContext`).
        num_heads: cross-attention heads (default: the LM's).
        dropout: attention dropout.
    """

    name: ClassVar[str] = "graph"
    uses_graph_encoder: ClassVar[bool] = True

    def __init__(
        self, context: InjectionContext, *, num_heads: int | None = None, dropout: float = 0.0
    ):
        super().__init__(context)
        heads = num_heads or context.num_heads
        k = len(context.fused_layers)
        d, dn = context.hidden_size, context.node_channels
        self.token_to_node = nn.ModuleList(
            MaskedCrossAttention(d, dn, heads, dropout=dropout) for _ in range(k)
        )
        self.node_to_token = nn.ModuleList(
            MaskedCrossAttention(dn, d, heads, head_channels=max(d // heads, 1), dropout=dropout)
            for _ in range(k)
        )
        self.gate = TanhGate(k)
        self.node_gate = TanhGate(k)
        self.reset_parameters()

    def layer_delta(self, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
        j = self.context.fused_index(i)
        if j is None:
            return None
        nodes, node_mask = state.dense_nodes()  # [batch, max_nodes, dn], [batch, max_nodes]
        token_mask = state.cache.get("token_mask")  # [batch, seq], once per batch
        if token_mask is None:
            token_mask = state.cache["token_mask"] = state.batch.attention_mask.bool()
        token_ctx = self.token_to_node[j](hidden, nodes, node_mask)  # [batch, seq, d]
        node_ctx = self.node_to_token[j](nodes, hidden, token_mask)  # [batch, max_nodes, dn]
        state.set_dense_nodes(nodes + self.node_gate(j) * node_ctx, node_mask)
        return self.gate(j) * token_ctx

    def extra_repr(self) -> str:
        c = self.context
        return f"layers={list(c.fused_layers)}, hidden={c.hidden_size}, node_channels={c.node_channels}"
