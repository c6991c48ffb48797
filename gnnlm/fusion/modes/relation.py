"""Relation injection: a per-relation, per-head attention bias between tokens of linked entities."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from gnnlm.fusion.injection import FusionState, Injection, InjectionContext


class RelationInjection(Injection):
    r"""Additive self-attention bias between mention tokens whose entities are linked in the KG.

    For tokens :math:`i, j` mentioning entities :math:`u, v` of the same example, LM layer :math:`l`
    (a fused layer) adds to head :math:`h`'s attention logits

    .. math::
        b^{(l)}_{h}(i, j) = \sum_{(u, r, v) \in \mathcal{E}} w^{(l)}_{r, h}

    over the subgraph's edges from :math:`u` to :math:`v` (so parallel relations add up; with an
    inverse-augmented graph the reverse direction uses the inverse relation's weights). All other pairs get
    0, and :math:`w` starts at zero, so a fresh model reproduces the LM. This is the structural bias of
    K-BERT's visible matrix / relation-aware attention (Shaw et al., 2018), learned per relation and head.

    Args:
        context: sizes.
    """

    name: ClassVar[str] = "relation"

    def __init__(self, context: InjectionContext) -> None:
        super().__init__(context)
        k = len(context.fused_layers)
        self.weight = nn.Parameter(torch.empty(k, context.num_relations, context.num_heads))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)

    def prepare(self, state: FusionState) -> None:
        """Index the edges between mentioned entities and each token's local entity slot (once per batch)."""
        batch = state.batch
        graph = batch.graph
        node_batch = graph.batch  # [num_nodes]
        local = torch.arange(graph.num_nodes, device=node_batch.device) - graph.ptr[node_batch]
        is_seed = local < graph.num_seeds[node_batch]  # seeds are the first nodes of each example
        src, dst = graph.edge_index
        keep = is_seed[src] & is_seed[dst]
        num_slots = int(graph.num_seeds.max()) if batch.batch_size else 0
        token_node = batch.token_node  # [batch, seq]
        if len(local):
            token_slot = torch.where(token_node >= 0, local[token_node.clamp_min(0)], -1)
        else:
            token_slot = token_node
        # One-hot token -> slot map (a zero row for tokens outside mentions): the bias of a token pair is
        # then slots @ slot_bias @ slots^T, two small matmuls (no [batch, seq, seq] gather or mask).
        slot_ids = torch.arange(num_slots, device=token_slot.device)  # [m]
        slots = (token_slot.unsqueeze(-1) == slot_ids).to(self.weight.dtype)  # [batch, seq, m]
        e = node_batch[src[keep]]  # [e] example of each seed-seed edge
        state.cache["relation"] = (
            (e * num_slots + local[src[keep]]) * num_slots + local[dst[keep]],  # [e] in [b, m, m]
            graph.edge_type[keep],  # [e]
            slots,
            num_slots,
        )

    def attention_bias(self, i: int, state: FusionState) -> Tensor | None:
        j = self.context.fused_index(i)
        if j is None:
            return None
        flat, edge_type, slots, m = state.cache["relation"]
        if m == 0:  # no example links to an entity
            return None
        b = slots.size(0)
        heads = self.context.num_heads
        w = self.weight[j][edge_type]  # [e, heads]
        slot_bias = w.new_zeros(b * m * m, heads).index_add(0, flat, w)  # [batch * m * m, heads]
        slot_bias = slot_bias.view(b, m, m, heads).permute(0, 3, 1, 2)  # [batch, heads, m, m]
        slots = slots.to(w.dtype).unsqueeze(1)  # [batch, 1, seq, m]
        return slots @ slot_bias @ slots.transpose(-1, -2)  # [batch, heads, seq, seq]

    def gate_values(self) -> Tensor | None:
        """``[num_fused_layers]`` mean absolute bias per fused layer."""
        return self.weight.detach().abs().mean(dim=(1, 2))

    def extra_repr(self) -> str:
        c = self.context
        return (
            f"layers={list(c.fused_layers)}, num_relations={c.num_relations}, heads={c.num_heads}"
        )
