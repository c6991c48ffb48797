"""Relational message passing in O(pairs x dim): aggregate first, transform once per (node, relation).

Both R-GCN and CompGCN messages are *linear in the source features for a fixed relation*:
``W_r x_j`` (R-GCN), ``W_dir (x_j - z_r)``, ``W_dir (x_j * z_r)`` and ``W_dir corr(x_j, z_r)`` (CompGCN).
So instead of transforming every edge (``[num_edges, d_in] x [d_in, d_out]`` per edge, or a Python loop
over relations as in stock PyG ``RGCNConv``), we

1. sum the (normalised) source features of all edges that share a destination *and* a relation into one
   row per unique ``(relation, dst)`` pair: one sparse-dense product ``A @ x`` with
   ``A: [num_slots, num_nodes]`` (:meth:`RelationalPairs.aggregate`);
2. apply the relation's matrix once per pair: relations are bucketed by their number of pairs (powers
   of two) and each bucket is one ``torch.bmm`` over a ``[relations, pairs, d]`` block
   (:meth:`RelationalPairs.relation_matmul`), about ``log2(max pairs)`` kernel calls in all;
3. add the pair results into their destination nodes (:meth:`RelationalPairs.scatter`).

The rows of every pair tensor are *slots* laid out exactly as those padded blocks (a relation's pairs,
then zero padding up to its bucket's width), so no gather or copy sits between the three steps; padding
rows have no edges, aggregate to zero and scatter zeros. On FB15k-237 with inverse edges there are 544k
edges but 150k ``(relation, dst)`` pairs (202k slots), and no ``[num_edges, dim]`` tensor is ever
materialised. The structure depends only on the graph, so it is built once and cached
(:class:`PairCache`).
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" is not news to us
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


class _SpMM(torch.autograd.Function):
    """``A @ x`` for a constant sparse ``A`` whose transpose is prebuilt (so backward is one SpMM too)."""

    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:  # noqa: D102
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        return None, None, ctx.a_t @ grad.contiguous()


class _BucketMatmul(torch.autograd.Function):
    """``[S, d_in] x [sum_k R_k, d_in, d_out] -> [S, d_out]``, one ``bmm`` per bucket, written in place.

    A hand-written backward so neither direction concatenates per-bucket pieces: forward writes each
    bucket's product into its rows of one output, backward writes ``grad_x`` and ``grad_w`` the same
    way (on a busy CPU a ``cat`` of a ``[S, d]`` tensor costs as much as the products).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weights: Tensor, buckets: list[tuple[int, int]]) -> Tensor:  # noqa: D102
        d_in, d_out = x.size(1), weights.size(2)
        out = x.new_empty(x.size(0), d_out)
        row = rel = 0
        for r, n in buckets:
            torch.bmm(
                x[row : row + r * n].view(r, n, d_in),
                weights[rel : rel + r],
                out=out[row : row + r * n].view(r, n, d_out),
            )
            row, rel = row + r * n, rel + r
        ctx.save_for_backward(x, weights)
        ctx.buckets = buckets
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        x, weights = ctx.saved_tensors
        grad = grad.contiguous()
        d_in, d_out = x.size(1), weights.size(2)
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_w = torch.empty_like(weights) if ctx.needs_input_grad[1] else None
        row = rel = 0
        for r, n in ctx.buckets:
            g = grad[row : row + r * n].view(r, n, d_out)  # [R_k, n_k, d_out]
            w = weights[rel : rel + r]  # [R_k, d_in, d_out]
            if grad_x is not None:
                torch.bmm(g, w.transpose(1, 2), out=grad_x[row : row + r * n].view(r, n, d_in))
            if grad_w is not None:
                xk = x[row : row + r * n].view(r, n, d_in)  # [R_k, n_k, d_in]
                torch.bmm(xk.transpose(1, 2), g, out=grad_w[rel : rel + r])
            row, rel = row + r * n, rel + r
        return grad_x, grad_w, None


@dataclass
class RelationalPairs:
    """The edges of a relational graph grouped into unique ``(relation, dst)`` pairs, stored in slots.

    Slots are grouped in buckets ``(R_k, n_k)``: ``R_k`` relations with at most ``n_k`` pairs each,
    each relation owning ``n_k`` consecutive slots (its pairs first, then padding).

    Attributes:
        num_nodes: number of nodes ``N``.
        num_relations: number of relation types ``R``.
        src: ``[E]`` source node of each edge (input edge order).
        dst: ``[E]`` destination node of each edge.
        edge_pair: ``[E]`` slot of each edge's pair.
        pair_dst: ``[S]`` destination node of each slot (0 for padding).
        pair_type: ``[S]`` relation owning each slot.
        pair_size: ``[S]`` number of edges in each slot (the R-GCN normaliser ``c_{i,r}``; 0 = padding).
        num_unique_pairs: number of real ``(relation, dst)`` pairs ``P <= S``.
        buckets: ``(R_k, n_k)`` per bucket, in slot order.
        bucket_rel: ``[sum_k R_k]`` relation of each block row, in slot order.
        perm: ``[E]`` edge order of the rows of ``A`` (sorted by slot, then source).
        perm_t: ``[E]`` edge order of the rows of ``A^T`` (sorted by source, then slot).
    """

    num_nodes: int
    num_relations: int
    src: Tensor
    dst: Tensor
    edge_pair: Tensor
    pair_dst: Tensor
    pair_type: Tensor
    pair_size: Tensor
    num_unique_pairs: int
    buckets: list[tuple[int, int]]
    bucket_rel: Tensor
    perm: Tensor
    perm_t: Tensor
    _crow: Tensor
    _col: Tensor
    _crow_t: Tensor
    _col_t: Tensor

    @property
    def num_pairs(self) -> int:
        """Number of slots ``S`` (rows of every pair tensor)."""
        return len(self.pair_dst)

    @property
    def num_edges(self) -> int:
        return len(self.src)

    @property
    def pair_edge_index(self) -> Tensor:
        """``[2, E]``: edge ``e`` as a bipartite edge ``src[e] -> edge_pair[e]`` (node -> slot)."""
        return torch.stack([self.src, self.edge_pair])

    @classmethod
    def build(
        cls, edge_index: Tensor, edge_type: Tensor, num_nodes: int, num_relations: int
    ) -> RelationalPairs:
        """Group edges into pairs and lay the pairs out in slots.

        Args:
            edge_index: ``[2, E]`` (row 0 = source).
            edge_type: ``[E]`` relation ids in ``[0, num_relations)``.
            num_nodes: number of nodes (never inferred from ``edge_index``).
            num_relations: number of relation types.
        """
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must be [2, num_edges], got {list(edge_index.shape)}")
        if edge_type.shape != edge_index.shape[1:]:
            raise ValueError(
                f"edge_type must be [num_edges]={edge_index.size(1)}, got {list(edge_type.shape)}"
            )
        device = edge_index.device
        src, dst = edge_index[0].long(), edge_index[1].long()
        edge_type = edge_type.long()
        if src.numel():
            if int(edge_index.max()) >= num_nodes or int(edge_index.min()) < 0:
                raise ValueError(f"edge_index has node ids outside [0, {num_nodes})")
            if int(edge_type.max()) >= num_relations or int(edge_type.min()) < 0:
                raise ValueError(f"edge_type has relation ids outside [0, {num_relations})")
        key = edge_type * num_nodes + dst  # [E], sorted order = (relation, dst)
        uniq, edge_unique, unique_size = torch.unique(key, return_inverse=True, return_counts=True)
        counts = torch.bincount(uniq // num_nodes, minlength=num_relations).tolist()  # [R]
        buckets, bucket_rel, slot_of_unique, rel_of_slot, num_slots = _layout(counts)
        slot_of_unique = slot_of_unique.to(device)  # [P]
        pair_type = rel_of_slot.to(device)  # [S]
        pair_dst = torch.zeros(num_slots, dtype=torch.long, device=device)
        pair_dst[slot_of_unique] = uniq % num_nodes
        pair_size = torch.zeros(num_slots, dtype=torch.long, device=device)
        pair_size[slot_of_unique] = unique_size
        edge_pair = slot_of_unique[edge_unique]  # [E]
        # A: [S, N], row = slot, col = src; A^T: [N, S].
        perm = torch.argsort(edge_pair * num_nodes + src, stable=True)  # [E]
        perm_t = torch.argsort(src * max(num_slots, 1) + edge_pair, stable=True)  # [E]
        crow = torch.zeros(num_slots + 1, dtype=torch.long, device=device)
        crow[1:] = torch.cumsum(pair_size, 0)
        crow_t = torch.zeros(num_nodes + 1, dtype=torch.long, device=device)
        crow_t[1:] = torch.cumsum(torch.bincount(src, minlength=num_nodes), 0)
        return cls(
            num_nodes=num_nodes,
            num_relations=num_relations,
            src=src,
            dst=dst,
            edge_pair=edge_pair,
            pair_dst=pair_dst,
            pair_type=pair_type,
            pair_size=pair_size,
            num_unique_pairs=len(uniq),
            buckets=buckets,
            bucket_rel=bucket_rel.to(device),
            perm=perm,
            perm_t=perm_t,
            _crow=crow,
            _col=src[perm],
            _crow_t=crow_t,
            _col_t=edge_pair[perm_t],
        )

    # -- the three steps -------------------------------------------------------------------------
    def aggregate(self, x: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """``out[s] = sum_{edges e in slot s} edge_weight[e] * x[src[e]]``.

        Args:
            x: ``[N, d]`` node features.
            edge_weight: ``[E]`` weight per edge (input edge order); ``None`` = 1.

        Returns:
            ``[S, d]`` slot aggregates (zero on padding); differentiable w.r.t. ``x`` (not w.r.t.
            ``edge_weight``).
        """
        if edge_weight is None:
            edge_weight = torch.ones(self.num_edges, dtype=x.dtype, device=x.device)
        edge_weight = edge_weight.to(x.dtype).detach()
        a = _csr(self._crow, self._col, edge_weight[self.perm], (self.num_pairs, self.num_nodes))
        a_t = _csr(
            self._crow_t, self._col_t, edge_weight[self.perm_t], (self.num_nodes, self.num_pairs)
        )
        return _SpMM.apply(a, a_t, x.contiguous())

    def relation_matmul(self, pair_x: Tensor, weight: Tensor) -> Tensor:
        """``out[s] = pair_x[s] @ weight[pair_type[s]]``: one ``torch.bmm`` per bucket.

        Hundreds of tiny per-relation GEMMs are slow on a busy multi-threaded CPU (and each slice's
        backward would allocate a full-size gradient); the buckets need about ``log2(max pairs)`` calls
        with at most 2x padding, written in place in both directions (:class:`_BucketMatmul`).

        Args:
            pair_x: ``[S, d_in]`` slot features.
            weight: ``[R, d_in, d_out]`` one matrix per relation.

        Returns:
            ``[S, d_out]`` (zero on padding slots when ``pair_x`` is).
        """
        if self.num_pairs == 0:
            return pair_x.new_zeros(0, weight.size(-1))
        weights = weight[self.bucket_rel]  # [sum_k R_k, d_in, d_out]
        return _BucketMatmul.apply(pair_x.contiguous(), weights, self.buckets)  # [S, d_out]

    def per_relation(self, fn, pair_x: Tensor, *rel_args: Tensor) -> Tensor:
        """Apply ``fn(x_k, *z_k)`` per bucket with relation features broadcast, no ``[S, d]`` gather.

        Args:
            fn: maps ``x_k: [R_k, n_k, d]`` and each ``z_k: [R_k, 1, d_z]`` to ``[R_k, n_k, d_out]``.
            pair_x: ``[S, d]`` slot features.
            *rel_args: ``[R, d_z]`` per-relation features.

        Returns:
            ``[S, d_out]``.
        """
        out, rel = [], 0
        for x_k, (r, n) in zip(pair_x.split([r * n for r, n in self.buckets]), self.buckets):
            ids = self.bucket_rel[rel : rel + r]  # [R_k]
            y = fn(x_k.view(r, n, -1), *(z[ids][:, None] for z in rel_args))  # [R_k, n_k, d_out]
            out.append(y.reshape(r * n, -1))
            rel += r
        return torch.cat(out) if out else pair_x.new_zeros(0, pair_x.size(-1))  # [S, d_out]

    def scatter(
        self, pair_out: Tensor, index: Tensor | None = None, size: int | None = None
    ) -> Tensor:
        """Add slot results into their destination nodes: ``[S, d] -> [N, d]``.

        ``index`` / ``size`` override ``pair_dst`` / ``num_nodes`` (e.g. to keep directions apart).
        """
        index = self.pair_dst if index is None else index  # [S]
        out = pair_out.new_zeros(size or self.num_nodes, pair_out.size(-1))  # [N, d]
        return out.index_add(0, index, pair_out)

    # -- normalisers ------------------------------------------------------------------------------
    def mean_weight(self) -> Tensor:
        """``[E]`` weight ``1 / c_{dst, r}`` (mean over the neighbours of one relation)."""
        return 1.0 / self.pair_size[self.edge_pair].float()

    def symmetric_weight(self, edge_mask: Tensor | None = None) -> Tensor:
        """``[E]`` weight ``outdeg(src)^-1/2 * indeg(dst)^-1/2`` over the edges selected by ``edge_mask``.

        Edges outside the mask get weight 0 (GCN's ``D_out^-1/2 A D_in^-1/2``, per edge subset).
        """
        mask = torch.ones_like(self.src, dtype=torch.bool) if edge_mask is None else edge_mask
        m = mask.float()
        out_deg = torch.zeros(self.num_nodes, device=m.device).index_add_(0, self.src, m)  # [N]
        in_deg = torch.zeros(self.num_nodes, device=m.device).index_add_(0, self.dst, m)  # [N]
        w = (out_deg[self.src].clamp(min=1) * in_deg[self.dst].clamp(min=1)).rsqrt()  # [E]
        return w * m


def _layout(counts: list[int]) -> tuple[list[tuple[int, int]], Tensor, Tensor, Tensor, int]:
    """Slots for relations with ``counts[r]`` pairs each (pairs sorted by relation).

    Relations are bucketed by ``ceil(log2(count))``; each gets ``n_k`` (its bucket's largest count)
    consecutive slots.

    Returns:
        ``buckets`` ``[(R_k, n_k)]``, ``bucket_rel`` ``[sum_k R_k]``, ``slot_of_unique`` ``[P]`` (slot of
        the ``p``-th pair in relation-sorted order), ``rel_of_slot`` ``[S]``, and ``S``.
    """
    groups: dict[int, list[int]] = {}
    for r, n in enumerate(counts):
        if n:
            groups.setdefault(int(2 * math.log2(n)), []).append(r)  # width ratio <= sqrt(2)
    starts = [0]
    for n in counts:
        starts.append(starts[-1] + n)
    slot_of_unique = torch.empty(starts[-1], dtype=torch.long)
    buckets, bucket_rel, rel_of_slot = [], [], []
    offset = 0
    for key in sorted(groups):
        rels = groups[key]
        width = max(counts[r] for r in rels)
        for r in rels:
            slot_of_unique[starts[r] : starts[r + 1]] = torch.arange(offset, offset + counts[r])
            rel_of_slot.append(torch.full((width,), r, dtype=torch.long))
            offset += width
        buckets.append((len(rels), width))
        bucket_rel.extend(rels)
    rel_of_slot_t = torch.cat(rel_of_slot) if rel_of_slot else torch.empty(0, dtype=torch.long)
    return (
        buckets,
        torch.tensor(bucket_rel, dtype=torch.long),
        slot_of_unique,
        rel_of_slot_t,
        offset,
    )


class PairCache:
    """Remembers the :class:`RelationalPairs` of the last graph seen, keyed by tensor identity.

    In full-graph training the same ``edge_index`` tensor is passed at every step, so the pairs are
    built once. The key holds weak references (a freed graph is never mistaken for a new one at the
    same address) and the tensors' in-place version counters (an edited graph is rebuilt).
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._refs: tuple | None = None
        self._value: RelationalPairs | None = None

    def get(
        self, edge_index: Tensor, edge_type: Tensor, num_nodes: int, num_relations: int
    ) -> RelationalPairs:
        key = (
            edge_index._version,
            edge_type._version,
            num_nodes,
            num_relations,
            edge_index.device,
        )
        refs = self._refs
        if (
            refs is not None
            and refs[0]() is edge_index
            and refs[1]() is edge_type
            and self._key == key
            and self._value is not None
        ):
            return self._value
        self._value = RelationalPairs.build(edge_index, edge_type, num_nodes, num_relations)
        self._refs = (weakref.ref(edge_index), weakref.ref(edge_type))
        self._key = key
        return self._value

    def clear(self) -> None:
        self._key = self._refs = self._value = None
