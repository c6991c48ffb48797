"""The fusion code before the issue-9 speed-ups, kept as the reference of the equivalence tests.

Verbatim except for issue 11's data flow, which the reference follows too: a mode's node update is
handed to ``state.add_node_update`` and added after all modes of the layer ran (in canonical order).

:func:`use_reference` swaps these into a built :class:`~gnnlm.fusion.FusedLM` (instance attributes, the
classes stay untouched), so one model can be run both ways and its outputs and gradients compared.
"""

from __future__ import annotations

import contextlib
import math
from types import MethodType

import torch
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from gnnlm.fusion import FusedLM, FusionState, MaskedCrossAttention
from gnnlm.fusion.modes.entity import EntityInjection
from gnnlm.fusion.modes.graph import GraphInjection
from gnnlm.fusion.modes.memory import MemoryInjection
from gnnlm.fusion.modes.relation import RelationInjection


def cross_attention(
    self: MaskedCrossAttention, query: Tensor, key: Tensor, key_mask: Tensor
) -> Tensor:
    """Per-head matmul, ``masked_fill`` and softmax (was ``MaskedCrossAttention.forward``)."""
    b, nq, _ = query.shape
    nk = key.size(1)
    h, d = self.num_heads, self.head_channels
    q = self.q(self.norm(query)).view(b, nq, h, d).transpose(1, 2)  # [batch, heads, nq, d]
    k = self.k(key).view(b, nk, h, d).transpose(1, 2)  # [batch, heads, nk, d]
    v = self.v(key).view(b, nk, h, d).transpose(1, 2)  # [batch, heads, nk, d]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # [batch, heads, nq, nk]
    mask = key_mask[:, None, None, :]  # [batch, 1, 1, nk]
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = self.dropout(scores.softmax(-1))
    has_keys = key_mask.any(-1).to(query.dtype)[:, None, None, None]  # [batch, 1, 1, 1]
    ctx = (weights @ v) * has_keys  # [batch, heads, nq, d]
    ctx = ctx.transpose(1, 2).reshape(b, nq, h * d)  # [batch, nq, heads * d]
    return self.o(ctx)


def graph_delta(self: GraphInjection, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
    """``to_dense_batch`` and a boolean-mask write-back in every fused layer."""
    j = self.context.fused_index(i)
    if j is None:
        return None
    graph = state.batch.graph
    nodes, node_mask = to_dense_batch(
        state.node_states, graph.batch, batch_size=state.batch.batch_size
    )
    token_mask = state.batch.attention_mask.bool()  # [batch, seq]
    token_ctx = self.token_to_node[j](hidden, nodes, node_mask)  # [batch, seq, d]
    node_ctx = self.node_to_token[j](nodes, hidden, token_mask)  # [batch, max_nodes, dn]
    state.add_node_update((self.node_gate(j) * node_ctx)[node_mask])
    return self.gate(j) * token_ctx


def _entity_vectors(self: EntityInjection, state: FusionState) -> Tensor:
    token_node = state.batch.token_node  # [batch, seq]
    if len(state.batch.graph.n_id) == 0:
        return state.batch.attention_mask.new_zeros(*token_node.shape, self.entity_channels).float()
    node = token_node.clamp_min(0)
    if self.source == "gnn":
        vectors = state.node_states[node]  # [batch, seq, dn]
    else:
        vectors = self.table(state.batch.graph.n_id[node])  # [batch, seq, de]
    return vectors * (token_node >= 0).unsqueeze(-1).to(vectors.dtype)


def entity_delta(
    self: EntityInjection, i: int, hidden: Tensor, state: FusionState
) -> Tensor | None:
    """Every token through the entity MLP, masked to mentions afterwards."""
    j = self.context.fused_index(i)
    if j is None:
        return None
    vectors = _entity_vectors(self, state)  # [batch, seq, de]
    mentioned = (state.batch.token_node >= 0).unsqueeze(-1).to(hidden.dtype)  # [batch, seq, 1]
    fused = self.token_proj[j](self.norm[j](hidden)) + self.entity_proj[j](vectors)
    return self.gate(j) * mentioned * self.out[j](nn.functional.gelu(fused))


def relation_prepare(self: RelationInjection, state: FusionState) -> None:
    batch = state.batch
    graph = batch.graph
    node_batch = graph.batch
    local = torch.arange(graph.num_nodes, device=node_batch.device) - graph.ptr[node_batch]
    is_seed = local < graph.num_seeds[node_batch]
    src, dst = graph.edge_index
    keep = is_seed[src] & is_seed[dst]
    num_slots = int(graph.num_seeds.max()) if batch.batch_size else 0
    token_node = batch.token_node
    if len(local):
        token_slot = torch.where(token_node >= 0, local[token_node.clamp_min(0)], -1)
    else:
        token_slot = token_node
    state.cache["relation_reference"] = (
        node_batch[src[keep]],
        local[src[keep]],
        local[dst[keep]],
        graph.edge_type[keep],
        token_slot,
        num_slots,
    )


def relation_bias(self: RelationInjection, i: int, state: FusionState) -> Tensor | None:
    """A ``[batch, seq * seq, heads]`` gather from the slot-pair table, masked to mention pairs."""
    j = self.context.fused_index(i)
    if j is None:
        return None
    example, src, dst, edge_type, token_slot, m = state.cache["relation_reference"]
    if m == 0:
        return None
    b, s = token_slot.shape
    heads = self.context.num_heads
    w = self.weight[j][edge_type]  # [e, heads]
    flat = (example * m + src) * m + dst
    slot_bias = w.new_zeros(b * m * m, heads).index_add(0, flat, w).view(b, m * m, heads)
    linked = token_slot >= 0
    slot = token_slot.clamp_min(0)
    pair = slot.unsqueeze(2) * m + slot.unsqueeze(1)  # [batch, seq, seq]
    bias = slot_bias.gather(1, pair.view(b, s * s, 1).expand(-1, -1, heads))
    bias = bias.view(b, s, s, heads).permute(0, 3, 1, 2)  # [batch, heads, seq, seq]
    both = (linked.unsqueeze(2) & linked.unsqueeze(1)).unsqueeze(1)
    return bias * both.to(bias.dtype)


def memory_delta(
    self: MemoryInjection, i: int, hidden: Tensor, state: FusionState
) -> Tensor | None:
    """Each of the ``k`` retrieved rows projected to the LM width, then weighted."""
    if i not in self.memory_layers:
        return None
    j = self.memory_layers.index(i)
    real = state.batch.attention_mask.bool()  # [batch, seq]
    q = self.query[j](self.norm[j](hidden[real]))  # [tokens, channels]
    scores, index = self.retrieve(q)  # [tokens, k]
    weights = (scores / math.sqrt(self.memory_channels)).softmax(-1)  # [tokens, k]
    values = self.value[j](self.memory.weight[index])  # [tokens, k, d]
    ctx = self.out[j]((weights.unsqueeze(-1) * values).sum(1))  # [tokens, d]
    delta = hidden.new_zeros(hidden.shape).index_put((real,), ctx)  # [batch, seq, d]
    return self.gate(j) * delta


def knowledge(self: FusedLM, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
    """Deltas summed through a ``[modes, batch, seq, hidden]`` stack."""
    modes = [self.injections[name] for name in sorted(self.injections)]
    deltas = [
        d
        for inj in modes
        if not inj.gates_deltas and (d := inj.layer_delta(i, hidden, state)) is not None
    ]
    state.apply_node_updates()
    if not deltas:
        return None
    delta = torch.stack(deltas).sum(0) if len(deltas) > 1 else deltas[0]
    for inj in modes:
        if inj.gates_deltas:
            delta = inj.combine(i, hidden, delta, state)
    return delta


@contextlib.contextmanager
def use_reference(model: FusedLM):
    """Run ``model`` with the reference implementations inside the ``with`` block."""
    patched: list[tuple[nn.Module, str]] = []

    def patch(module: nn.Module, name: str, function) -> None:
        setattr(module, name, MethodType(function, module))
        patched.append((module, name))

    for module in model.modules():
        if isinstance(module, MaskedCrossAttention):
            patch(module, "forward", cross_attention)
        elif isinstance(module, GraphInjection):
            patch(module, "layer_delta", graph_delta)
        elif isinstance(module, EntityInjection):
            patch(module, "layer_delta", entity_delta)
        elif isinstance(module, MemoryInjection):
            patch(module, "layer_delta", memory_delta)
        elif isinstance(module, RelationInjection):
            patch(module, "prepare", relation_prepare)
            patch(module, "attention_bias", relation_bias)
    patch(model, "_knowledge", knowledge)
    try:
        yield model
    finally:
        for module, name in patched:
            delattr(module, name)
