"""The set of known true triples, indexed for filtered ranking.

Filtered evaluation (Bordes et al. 2013) removes from a query's candidate list every other entity that
also makes a known true triple. The index stores, for every ``(h, r)`` key, the sorted true tails, and for
every ``(r, t)`` key the sorted true heads, as CSR arrays, so a batch of queries gathers its filters with
one ``searchsorted`` and no Python loop.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _CSR:
    """Sorted unique int64 keys, each with a sorted run of int64 values."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        # Sort by (key, value) and drop duplicate pairs with one 1-D unique over key * span + value:
        # the order of a lexicographic sort of the pairs, several times faster than unique(dim=0).
        # Keys are entity * num_relations + relation and values entities, so the product stays far
        # below 2**63 even for ogbl-wikikg2; the 2-D fallback covers anything larger.
        span = int(values.max()) + 1 if values.numel() else 1
        if keys.numel() and int(keys.max()) >= (2**62) // span:
            pair = torch.stack([keys, values], dim=1).unique(dim=0)  # [nnz, 2]
            pair_keys, pair_values = pair[:, 0], pair[:, 1]
        else:
            combined = torch.unique(keys * span + values)  # [nnz], sorted
            pair_keys, pair_values = combined // span, combined % span
        unique_keys, counts = torch.unique_consecutive(pair_keys, return_counts=True)
        self.keys = unique_keys  # [num_keys]
        self.ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # [num_keys + 1]
        self.values = pair_values.contiguous()  # [nnz]

    def lookup(self, query_keys: Tensor) -> tuple[Tensor, Tensor]:
        """For each query key, its values: returns ``(ptr [B + 1], values [nnz])`` in query order."""
        if len(self.keys) == 0:  # an empty index: every query has no values
            return torch.zeros(len(query_keys) + 1, dtype=torch.long), self.values.new_empty(0)
        pos = torch.searchsorted(self.keys, query_keys).clamp_(max=max(len(self.keys) - 1, 0))
        found = (
            self.keys[pos] == query_keys
            if len(self.keys)
            else torch.zeros_like(query_keys, dtype=torch.bool)
        )
        start = self.ptr[pos]
        count = torch.where(found, self.ptr[pos + 1] - start, torch.zeros_like(start))
        out_ptr = torch.cat([count.new_zeros(1), count.cumsum(0)])
        # Expand each run [start, start + count) without a Python loop.
        total = int(out_ptr[-1])
        owner = torch.repeat_interleave(torch.arange(len(query_keys)), count, output_size=total)
        offset = torch.arange(total) - out_ptr[owner]
        return out_ptr, self.values[start[owner] + offset]


class FilterIndex:
    """All known true triples of a KG, for filtered rank-based evaluation.

    Args:
        triples: ``[num_triples, 3]`` long tensor of (head, relation, tail) ids, usually train + valid + test.
        num_entities: number of entities (ids are in ``[0, num_entities)``).
        num_relations: number of relations.
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int) -> None:
        triples = triples.long()
        self.num_entities = num_entities
        self.num_relations = num_relations
        h, r, t = triples.unbind(1)
        self._tails = _CSR(h * num_relations + r, t)
        self._heads = _CSR(t * num_relations + r, h)
        self.num_triples = len(self._tails.values)

    def tails(self, heads: Tensor, relations: Tensor) -> tuple[Tensor, Tensor]:
        """Known true tails of each ``(h, r)`` query.

        Args:
            heads: ``[B]`` head ids.
            relations: ``[B]`` relation ids.

        Returns:
            ``(ptr, values)``: CSR with ``ptr: [B + 1]``; the tails of query ``i`` are
            ``values[ptr[i]:ptr[i + 1]]``, sorted ascending.
        """
        return self._tails.lookup(heads.long() * self.num_relations + relations.long())

    def heads(self, relations: Tensor, tails: Tensor) -> tuple[Tensor, Tensor]:
        """Known true heads of each ``(r, t)`` query; same layout as :meth:`tails`."""
        return self._heads.lookup(tails.long() * self.num_relations + relations.long())

    def __repr__(self) -> str:
        return f"FilterIndex(num_triples={self.num_triples})"
