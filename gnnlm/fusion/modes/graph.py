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
    leaks across the batch. With ``gate_init: open`` (default) both attentions' output projections
    :math:`W_o` start at zero and the gates open (:data:`~gnnlm.fusion.injection.GATE_OPEN`), so a fresh
    model reproduces the LM exactly and both :math:`W_o` learn from the first step; ``closed`` starts the
    gates at zero instead. The node side is zero-initialised too, although the LM's identity does not need
    it: a fresh model then also reproduces the plain GNN (so late fusion and injection arms start from the
    same node states), and the update starts learning as soon as the loss reads the nodes (step 0 when it
    does, e.g. a head on the pooled graph state; step 1 otherwise).

    The node update :math:`X'` is handed to :meth:`~gnnlm.fusion.injection.FusionState.add_node_update`:
    other modes of the same layer read :math:`X` (the GNN layer's output), whatever the mode order. This replaces
    GreaseLM's single interaction token/node MLP (Zhang et al., 2022, https://arxiv.org/abs/2201.08860)
    with full cross-attention in both directions, as in QA-GNN/DRAGON-style variants.

    ``directions`` keeps one side only, for ablations: ``[text]`` is injection proper (tokens read
    nodes; the GNN never reads the text), ``[graph]`` the other way (nodes read tokens; the LM is
    the plain LM, so only a head that reads the node states can gain).

    Args:
        context: sizes (:class:`~gnnlm.fusion.injection.InjectionContext`).
        num_heads: cross-attention heads (default: the LM's).
        attention_channels: width of both cross-attentions, heads x head width (default: the LM's
            hidden size, the width of its own attention). Their projections to and from that width
            are most of this mode's work (with MiniLM-L6 fused at 2 layers, batch 32 x 64 tokens and
            ~50 nodes, ~1.6 GMAC per fused layer at 384, ~40% of an LM layer); half the width
            halves them. Measured at those shapes on CPU, 192 takes 1.055-1.11x an LM-only step
            against 1.085-1.17x at 384, and MetaQA hits@1 falls by .014 (5 seeds;
            ``benchmarks/results/fusion_recheck.json``, ``qa_metaqa_narrow.md``). Must be a
            multiple of ``num_heads``.
        dropout: attention dropout.
        directions: which side receives: ``text`` (:math:`H'`), ``graph`` (:math:`X'`) or both
            (default).
    """

    name: ClassVar[str] = "graph"
    uses_graph_encoder: ClassVar[bool] = True

    def __init__(
        self,
        context: InjectionContext,
        *,
        num_heads: int | None = None,
        attention_channels: int | None = None,
        dropout: float = 0.0,
        directions: list[str] | tuple[str, ...] = ("text", "graph"),
    ):
        super().__init__(context)
        directions = tuple(directions)
        if not directions or not set(directions) <= {"text", "graph"}:
            raise ValueError(
                f"graph injection: directions must be a non-empty subset of [text, graph], got "
                f"{list(directions)}"
            )
        self.directions = directions
        heads = num_heads or context.num_heads
        k = len(context.fused_layers)
        d, dn = context.hidden_size, context.node_channels
        if attention_channels is None:
            head_channels = max(d // heads, 1)
        elif (
            isinstance(attention_channels, bool)
            or not isinstance(attention_channels, int)
            or attention_channels < heads
            or attention_channels % heads
        ):
            raise ValueError(
                f"graph injection: attention_channels must be a positive multiple of the "
                f"{heads} heads, got {attention_channels!r}"
            )
        else:
            head_channels = attention_channels // heads
        self.attention_channels = heads * head_channels
        to_text, to_graph = "text" in directions, "graph" in directions
        self.token_to_node = nn.ModuleList(
            MaskedCrossAttention(d, dn, heads, head_channels=head_channels, dropout=dropout)
            for _ in range(k if to_text else 0)
        )
        self.node_to_token = nn.ModuleList(
            MaskedCrossAttention(dn, d, heads, head_channels=head_channels, dropout=dropout)
            for _ in range(k if to_graph else 0)
        )
        self.gate = TanhGate(k, init=context.gate_value) if to_text else None
        self.node_gate = TanhGate(k, init=context.gate_value) if to_graph else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for attn in (*self.token_to_node, *self.node_to_token):
            attn.reset_parameters()
        for gate in (self.gate, self.node_gate):
            if gate is not None:
                gate.reset_parameters()
        self.zero_outputs()

    def output_modules(self) -> list[nn.Module]:
        """Both attentions' output projections ``o`` (token and node side), per fused layer."""
        return [attn.o for attn in (*self.token_to_node, *self.node_to_token)]

    def layer_delta(self, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
        j = self.context.fused_index(i)
        if j is None:
            return None
        nodes, node_mask = state.dense_nodes()  # [batch, max_nodes, dn], [batch, max_nodes]
        token_mask = state.cache.get("token_mask")  # [batch, seq], once per batch
        if token_mask is None:
            token_mask = state.cache["token_mask"] = state.batch.attention_mask.bool()
        if self.node_gate is not None:
            node_ctx = self.node_to_token[j](nodes, hidden, token_mask)  # [batch, max_nodes, dn]
            state.add_node_update(state.from_dense(self.node_gate(j) * node_ctx))  # [num_nodes, dn]
        if self.gate is None:
            return None
        return self.gate(j) * self.token_to_node[j](hidden, nodes, node_mask)  # [batch, seq, d]

    def extra_repr(self) -> str:
        c = self.context
        out = f"layers={list(c.fused_layers)}, hidden={c.hidden_size}, node_channels={c.node_channels}"
        if self.attention_channels != c.hidden_size:
            out += f", attention_channels={self.attention_channels}"
        return out if len(self.directions) == 2 else f"{out}, directions={list(self.directions)}"
