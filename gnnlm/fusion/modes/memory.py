"""Memory injection: the KG's entity (and relation) embeddings as an external key-value memory."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gnnlm.fusion.attention import TanhGate
from gnnlm.fusion.injection import FusionState, Injection, InjectionContext
from gnnlm.fusion.modes.entity import EntityTable

MEMORY_SOURCES = ("learned", "kge")


@torch.no_grad()
def memory_topk(
    query: Tensor, memory: Tensor, k: int, *, chunk_size: int = 8192, query_chunk_size: int = 1024
) -> tuple[Tensor, Tensor]:
    """Top-``k`` memory rows by inner product, never materialising more than a bounded block of scores.

    Scores are computed for at most ``query_chunk_size x chunk_size`` (query, memory) pairs at a time;
    the running top-``k`` of each query is merged with each memory chunk's.

    Args:
        query: ``[num_queries, channels]``.
        memory: ``[memory_size, channels]``.
        k: entries per query (``<= memory_size``).
        chunk_size: memory rows per block.
        query_chunk_size: queries per block.

    Returns:
        ``(scores [num_queries, k], index [num_queries, k])``, best first.
    """
    n, m = query.size(0), memory.size(0)
    if not 0 < k <= m:
        raise ValueError(f"need 0 < k <= memory size ({m}), got k={k}")
    all_scores = query.new_empty(n, k)
    all_index = torch.empty(n, k, dtype=torch.long, device=query.device)
    for q0 in range(0, n, query_chunk_size):
        q = query[q0 : q0 + query_chunk_size]  # [nq, channels]
        best = q.new_full((len(q), 0), -math.inf)  # [nq, <=k]
        best_index = torch.empty(len(q), 0, dtype=torch.long, device=query.device)
        for m0 in range(0, m, chunk_size):
            block = q @ memory[m0 : m0 + chunk_size].t()  # [nq, chunk]
            top = block.topk(min(k, block.size(1)), dim=1)
            cand = torch.cat([best, top.values], 1)  # [nq, <=2k]
            cand_index = torch.cat([best_index, top.indices + m0], 1)
            keep = cand.topk(min(k, cand.size(1)), dim=1)
            best, best_index = keep.values, cand_index.gather(1, keep.indices)
        all_scores[q0 : q0 + len(q)] = best
        all_index[q0 : q0 + len(q)] = best_index
    return all_scores, all_index


class MemoryInjection(Injection):
    r"""Tokens retrieve the top-:math:`k` KG memory entries by inner product and attend to them.

    The memory :math:`M` holds one row per entity (from a KGE model or learned) and, optionally, one per
    relation. At fused layer :math:`i`, token state :math:`h` queries it:

    .. math::
        q = W_q\,\mathrm{LN}(h), \quad \mathcal{N} = \operatorname{top-k}_{m} \langle q, M_m\rangle, \quad
        h' = h + \tanh(g_i)\, W_o \sum_{m\in\mathcal{N}} \operatorname{softmax}_m
        \!\left(\frac{\langle q, M_m\rangle}{\sqrt{d}}\right) W_v M_m

    Retrieval is chunked over the whole KG (:func:`memory_topk`); the selection is not differentiated,
    the scores of the selected entries are (so :math:`W_q` and a trainable memory learn). :math:`W_o` starts
    at zero and the gate open (``gate_init: open``, default) or the gate at zero (``closed``). Like the
    kNN-memory of Memorizing Transformers (Wu et al., 2022) and KG memories of EaE (Févry et al., 2020).

    Args:
        context: sizes.
        source: ``learned`` (trained table) or ``kge`` (``entity_embeddings`` / ``relation_embeddings``).
        memory_channels: width of a learned memory (default ``node_channels``).
        entity_embeddings: ``[num_entities, d]`` for ``kge``.
        relation_embeddings: ``[num_relations, d]`` extra memory rows (``kge``); ``include_relations``
            adds learned relation rows for ``learned``.
        include_relations: put relation rows in the memory too.
        trainable: whether a ``kge`` memory is updated (``learned`` always is).
        top_k: entries retrieved per token.
        chunk_size: memory rows scored per block.
        layers: which fused layers use memory (default: the last one only; retrieval over a large KG
            costs about one LM layer).
    """

    name: ClassVar[str] = "memory"

    @classmethod
    def required_tensors(cls, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """``entity_embeddings`` with ``source: kge``, and ``relation_embeddings`` with ``include_relations``."""
        if kwargs.get("source") != "kge":
            return ()
        if kwargs.get("include_relations"):
            return ("entity_embeddings", "relation_embeddings")
        return ("entity_embeddings",)

    def __init__(
        self,
        context: InjectionContext,
        *,
        source: str = "learned",
        memory_channels: int | None = None,
        entity_embeddings: Tensor | None = None,
        relation_embeddings: Tensor | None = None,
        include_relations: bool = False,
        trainable: bool = False,
        top_k: int = 8,
        chunk_size: int = 8192,
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(context)
        if source not in MEMORY_SOURCES:
            raise ValueError(f"memory source must be one of {MEMORY_SOURCES}, got {source!r}")
        self.source, self.top_k, self.chunk_size = source, top_k, chunk_size
        rows = context.num_entities + (context.num_relations if include_relations else 0)
        if source == "kge":
            if entity_embeddings is None:
                raise ValueError("memory source 'kge' needs entity_embeddings [num_entities, d]")
            weight = entity_embeddings
            if include_relations:
                if relation_embeddings is None:
                    raise ValueError(
                        "include_relations with source 'kge' needs relation_embeddings"
                    )
                if relation_embeddings.size(1) != entity_embeddings.size(1):
                    raise ValueError(
                        "memory rows must share one width: entities "
                        f"{entity_embeddings.size(1)}, relations {relation_embeddings.size(1)} "
                        "(e.g. RotatE); use include_relations=False"
                    )
                weight = torch.cat(
                    [entity_embeddings, relation_embeddings[: context.num_relations]]
                )
            channels = int(weight.size(1))
            self.memory = EntityTable(len(weight), channels, weight=weight, trainable=trainable)
        else:
            channels = memory_channels or context.node_channels
            self.memory = EntityTable(rows, channels)
        self.memory_channels = channels
        self.memory_layers = tuple(layers) if layers is not None else (context.fused_layers[-1],)
        bad = [i for i in self.memory_layers if i not in context.fused_layers]
        if bad:
            raise ValueError(
                f"memory layers {bad} are not fused layers {list(context.fused_layers)}"
            )
        k, d = len(self.memory_layers), context.hidden_size
        self.norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(k))
        self.query = nn.ModuleList(nn.Linear(d, channels) for _ in range(k))
        self.value = nn.ModuleList(nn.Linear(channels, d) for _ in range(k))
        self.out = nn.ModuleList(nn.Linear(d, d) for _ in range(k))
        self.gate = TanhGate(k, init=context.gate_value)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for modules in (self.norm, self.query, self.value, self.out):
            for module in modules:
                module.reset_parameters()
        self.gate.reset_parameters()
        self.zero_outputs()

    def output_modules(self) -> list[nn.Module]:
        """``W_o`` of each memory layer."""
        return list(self.out)

    def retrieve(self, query: Tensor) -> tuple[Tensor, Tensor]:
        """``[n, channels]`` queries -> ``(scores [n, k], index [n, k])``; scores carry gradients."""
        memory = self.memory.weight
        _, index = memory_topk(
            query.detach(), memory.detach(), self.top_k, chunk_size=self.chunk_size
        )
        keys = memory[index]  # [n, k, channels]
        scores = (query.unsqueeze(1) * keys).sum(-1)  # [n, k]
        return scores, index

    def layer_delta(self, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
        if i not in self.memory_layers:
            return None
        j = self.memory_layers.index(i)
        real = state.batch.attention_mask.bool()  # [batch, seq]
        q = self.query[j](self.norm[j](hidden[real]))  # [tokens, channels]
        scores, index = self.retrieve(q)  # [tokens, k]
        weights = (scores / math.sqrt(self.memory_channels)).softmax(-1)  # [tokens, k]
        # sum_m w_m (W_v M_m + b) = W_v (sum_m w_m M_m) + b as the weights sum to 1: mix the k rows
        # first, then project once per token (k times fewer FLOPs, no [tokens, k, d] values).
        mixed = (weights.unsqueeze(1) @ self.memory.weight[index]).squeeze(1)  # [tokens, channels]
        ctx = self.out[j](self.value[j](mixed))  # [tokens, d]
        delta = hidden.new_zeros(hidden.shape).index_put((real,), ctx)  # [batch, seq, d]
        return self.gate(j) * delta

    def gate_values(self) -> Tensor | None:
        """``[num_fused_layers]`` tanh gates (0 where a fused layer has no memory)."""
        out = self.gate.weight.new_zeros(len(self.context.fused_layers)).detach()
        for j, i in enumerate(self.memory_layers):
            out[self.context.fused_index(i)] = self.gate.weight[j].detach().tanh()
        return out

    def extra_repr(self) -> str:
        return (
            f"source={self.source}, size={self.memory.num_entities}, channels={self.memory_channels}, "
            f"top_k={self.top_k}, layers={list(self.memory_layers)}"
        )
