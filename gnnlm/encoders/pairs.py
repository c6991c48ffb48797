"""Relational message passing in O(pairs x dim): aggregate first, transform once per (node, relation).

Both R-GCN and CompGCN messages are *linear in the source features for a fixed relation*:
``W_r x_j`` (R-GCN), ``W_dir (x_j - z_r)``, ``W_dir (x_j * z_r)`` and ``W_dir corr(x_j, z_r)`` (CompGCN).
So instead of transforming every edge (``[num_edges, d_in] x [d_in, d_out]`` per edge, or a Python loop
over relations as in stock PyG ``RGCNConv``), we

1. sum the (normalised) source features of all edges that share a destination *and* a relation into one
   row per unique ``(relation, dst)`` pair: one sparse-dense product ``A @ x`` with
   ``A: [num_pairs, num_nodes]`` (:meth:`RelationalPairs.aggregate`);
2. apply the relation's transform once per pair (a handful of GEMMs over contiguous slices of pairs
   sorted by relation, :meth:`RelationalPairs.relation_matmul`);
3. add the pair results into their destination nodes (:meth:`RelationalPairs.scatter`).

On FB15k-237 with inverse edges there are 544k edges but only 150k ``(relation, dst)`` pairs, and no
``[num_edges, dim]`` tensor is ever materialised. The pair structure depends only on the graph, so it is
built once and cached (:class:`PairCache`).
"""

from __future__ import annotations

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


@dataclass
class RelationalPairs:
    """The edges of a relational graph grouped into unique ``(relation, dst)`` pairs.

    Pairs are sorted by relation, then destination, so the pairs of relation ``r`` are the contiguous
    slice ``rel_ptr[r]:rel_ptr[r + 1]``.

    Attributes:
        num_nodes: number of nodes ``N``.
        num_relations: number of relation types ``R``.
        src: ``[E]`` source node of each edge (input edge order).
        dst: ``[E]`` destination node of each edge.
        edge_pair: ``[E]`` pair id of each edge.
        pair_dst: ``[P]`` destination node of each pair.
        pair_type: ``[P]`` relation of each pair.
        pair_size: ``[P]`` number of edges in each pair (the R-GCN normaliser ``c_{i,r}``).
        rel_ptr: ``[R + 1]`` CSR pointer of pairs over relations (a Python list, for slicing).
        perm: ``[E]`` edge order of the rows of ``A`` (sorted by pair, then source).
        perm_t: ``[E]`` edge order of the rows of ``A^T`` (sorted by source, then pair).
    """

    num_nodes: int
    num_relations: int
    src: Tensor
    dst: Tensor
    edge_pair: Tensor
    pair_dst: Tensor
    pair_type: Tensor
    pair_size: Tensor
    rel_ptr: list[int]
    perm: Tensor
    perm_t: Tensor
    _crow: Tensor
    _col: Tensor
    _crow_t: Tensor
    _col_t: Tensor

    @property
    def num_pairs(self) -> int:
        return len(self.pair_dst)

    @property
    def num_edges(self) -> int:
        return len(self.src)

    @property
    def pair_edge_index(self) -> Tensor:
        """``[2, E]``: edge ``e`` as a bipartite edge ``src[e] -> edge_pair[e]`` (node -> pair)."""
        return torch.stack([self.src, self.edge_pair])

    @classmethod
    def build(
        cls, edge_index: Tensor, edge_type: Tensor, num_nodes: int, num_relations: int
    ) -> RelationalPairs:
        """Group edges into pairs.

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
        uniq, edge_pair, pair_size = torch.unique(key, return_inverse=True, return_counts=True)
        num_pairs = len(uniq)
        pair_type, pair_dst = uniq // num_nodes, uniq % num_nodes  # [P], [P]
        counts = torch.bincount(pair_type, minlength=num_relations)  # [R]
        rel_ptr = [0, *torch.cumsum(counts, 0).tolist()]
        # A: [P, N], row = pair, col = src; A^T: [N, P].
        perm = torch.argsort(edge_pair * num_nodes + src, stable=True)  # [E]
        perm_t = torch.argsort(src * max(num_pairs, 1) + edge_pair, stable=True)  # [E]
        crow = torch.zeros(num_pairs + 1, dtype=torch.long, device=device)
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
            rel_ptr=rel_ptr,
            perm=perm,
            perm_t=perm_t,
            _crow=crow,
            _col=src[perm],
            _crow_t=crow_t,
            _col_t=edge_pair[perm_t],
        )

    # -- the three steps -------------------------------------------------------------------------
    def aggregate(self, x: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """``out[p] = sum_{edges e in pair p} edge_weight[e] * x[src[e]]``.

        Args:
            x: ``[N, d]`` node features.
            edge_weight: ``[E]`` weight per edge (input edge order); ``None`` = 1.

        Returns:
            ``[P, d]`` pair aggregates; differentiable w.r.t. ``x`` (not w.r.t. ``edge_weight``).
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
        """``out[p] = pair_x[p] @ weight[pair_type[p]]``, one GEMM per relation over its slice.

        Args:
            pair_x: ``[P, d_in]`` pair features (sorted like the pairs).
            weight: ``[R, d_in, d_out]`` one matrix per relation.

        Returns:
            ``[P, d_out]``.
        """
        out = pair_x.new_empty(self.num_pairs, weight.size(-1))
        pieces = [
            pair_x[a:b] @ weight[r]
            for r, (a, b) in enumerate(zip(self.rel_ptr[:-1], self.rel_ptr[1:]))
            if b > a
        ]
        if not pieces:
            return out.zero_()
        return torch.cat(pieces, dim=0)  # [P, d_out]

    def scatter(self, pair_out: Tensor, start: int = 0, end: int | None = None) -> Tensor:
        """Add pair results into their destination nodes: ``[P', d] -> [N, d]``.

        ``pair_out`` holds the pairs ``start:end`` (default: all pairs).
        """
        index = self.pair_dst[start:end]  # [P']
        out = pair_out.new_zeros(self.num_nodes, pair_out.size(-1))  # [N, d]
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
