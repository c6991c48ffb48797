"""Relational message passing in O(pairs x dim): aggregate first, transform once per (node, relation).

Both R-GCN and CompGCN messages are *linear in the source features for a fixed relation*:
``W_r x_j`` (R-GCN), ``W_dir (x_j - z_r)``, ``W_dir (x_j * z_r)`` and ``W_dir corr(x_j, z_r)`` (CompGCN).
So instead of transforming every edge (``[num_edges, d_in] x [d_in, d_out]`` per edge, or a Python loop
over relations as in stock PyG ``RGCNConv``), we

1. sum the (normalised) source features of all edges that share a destination *and* a relation into one
   row per unique ``(relation, dst)`` pair: one sparse-dense product ``A @ x`` with
   ``A: [num_slots, num_nodes]`` (:meth:`RelationalPairs.aggregate`);
2. apply the relation's matrix once per pair: relations are bucketed by their number of pairs (powers
   of ``2^(1/4)`` on large graphs, ``sqrt(2)`` on small ones) and each bucket is one ``torch.bmm``
   over a ``[relations, pairs, d]`` block (:meth:`RelationalPairs.relation_matmul`), a few times
   ``log2(max pairs)`` kernel calls in all;
3. add the pair results into their destination nodes (:meth:`RelationalPairs.scatter`).

The rows of every pair tensor are *slots* laid out exactly as those padded blocks (a relation's pairs,
then zero padding up to its bucket's width), so no gather or copy sits between the three steps; padding
rows have no edges, aggregate to zero and scatter zeros. On FB15k-237 with inverse edges there are 544k
edges but 150k ``(relation, dst)`` pairs (159k slots), and no ``[num_edges, dim]`` tensor is ever
materialised. The structure depends only on the graph, so it is built once and cached
(:class:`PairCache`).

:meth:`RelationalPairs.propagate` runs the three steps as one autograd function with a hand-written
backward. On CPU the ``[S, d]`` slot tensors are the only large arrays of a step, and each fresh one
costs a page-faulting allocation that takes longer than the arithmetic on it. So the slot aggregates
live in one buffer per graph and width, reused from step to step (:meth:`RelationalPairs.workspace`);
forward takes cache-sized chunks of slots in turn (their rows of ``A @ x`` into that buffer, their
transform into a small one, then an in-place ``index_add_`` into the node output: no ``[S, d]`` output,
no ``cat``); backward gathers the output gradient chunk by chunk and overwrites the saved aggregates
with their own gradient. A training step then allocates no ``[S, d]`` tensor. :meth:`aggregate`,
:meth:`relation_matmul`, :meth:`per_relation` and :meth:`scatter` are the same steps one at a time,
used by the reference paths and the tests.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

#: elements per chunk of slots in :meth:`RelationalPairs.propagate` (2 MiB of float32: a chunk's
#: temporaries stay in cache, and the Python loop stays at a few hundred iterations on FB15k-237).
CHUNK_ELEMENTS = 1 << 19
#: pairs from which relations are bucketed by width ratio ``2^(1/4)`` instead of ``sqrt(2)`` (see
#: :func:`_layout`)
FINE_BUCKET_PAIRS = 1 << 16
#: reused ``[S, d]`` buffers kept per graph and width (one per layer of a stack that shares the graph)
MAX_WORKSPACES = 8
#: sparse products on CPU run as ``embedding_bag`` sums (see :func:`csr_matmul`); ``False`` uses
#: torch's CSR kernel everywhere (the reference the tests compare against)
EMBEDDING_BAG_SPMM = True


def _row_sums(offsets: Tensor, col: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """``out[i] = sum_{k in [offsets[i], offsets[i+1])} values[k] * x[col[k]]``: ``[m]``-row CSR times ``x``.

    ``offsets``: ``[m]`` row starts (the CSR row pointers without the last, starting at 0); ``col``,
    ``values``: ``[nnz]``; ``x``: ``[n, d]``. Returns ``[m, d]`` (empty rows are zero).

    ``embedding_bag`` in sum mode with per-sample weights is exactly this product, and on CPU it is a
    vectorised gather-and-accumulate kernel (FBGEMM) that reads each row of ``x`` once per entry:
    2-3x faster than torch's CSR product at widths of ~200 (FB15k-237, ``benchmarks/encoders.py``),
    whose per-entry loop is not vectorised over the row. Called without autograd (inside the
    hand-written backward functions of this module).
    """
    if len(offsets) == 0:
        return x.new_zeros(0, x.size(1))
    return F.embedding_bag(col, x, offsets, mode="sum", per_sample_weights=values)


def _bag_spmm(x: Tensor) -> bool:
    """Whether products with ``x`` run as ``embedding_bag`` sums (CPU, float32/float64)."""
    return (
        EMBEDDING_BAG_SPMM and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    )


def csr_matmul(a: Tensor, x: Tensor) -> Tensor:
    """``a @ x`` for a constant sparse CSR ``a: [m, n]`` and a dense ``x: [n, d]`` -> ``[m, d]``.

    On CPU (float32/float64, :data:`EMBEDDING_BAG_SPMM`) one ``embedding_bag`` sum
    (:func:`_row_sums`); elsewhere torch's CSR product. Not differentiable itself (see
    :func:`sparse_mm`).
    """
    if _bag_spmm(x):
        crow = a.crow_indices()
        return _row_sums(crow[:-1], a.col_indices(), a.values(), x.contiguous())
    return a @ x


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" is not news to us
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


class _SpMM(torch.autograd.Function):
    """``A @ x`` for a constant sparse ``A`` whose transpose is prebuilt (so backward is one SpMM too)."""

    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:  # noqa: D102
        ctx.a_t = a_t
        return csr_matmul(a, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        return None, None, csr_matmul(ctx.a_t, grad.contiguous())


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


class RelationOp:
    """A per-relation map of slot features, linear in them: what :meth:`RelationalPairs.propagate` applies.

    ``forward`` maps a chunk of slots ``p: [c, n, d]`` of ``c`` relations with parameters
    ``w: [c, ...]`` into ``out: [c, n, d_out]``; ``backward`` returns the chunk's gradient for ``w`` and
    overwrites ``p`` with the gradient for ``p`` (``p`` is not needed after that). Subclasses:
    :class:`MatmulOp` (R-GCN), :class:`MulOp` (CompGCN ``mult``), :class:`MulConjOp` (CompGCN ``corr``
    in the frequency domain).
    """

    def out_width(self, width: int, w: Tensor) -> int:
        return width

    def forward(self, p: Tensor, w: Tensor, out: Tensor) -> None:
        raise NotImplementedError

    def backward(self, g: Tensor, p: Tensor, w: Tensor) -> Tensor:
        raise NotImplementedError


class MatmulOp(RelationOp):
    """``out = p @ w`` with ``w: [c, d, d_out]`` (one matrix per relation)."""

    def out_width(self, width: int, w: Tensor) -> int:
        return w.size(-1)

    def forward(self, p: Tensor, w: Tensor, out: Tensor) -> None:
        torch.bmm(p, w, out=out)

    def backward(self, g: Tensor, p: Tensor, w: Tensor) -> Tensor:
        grad_w = torch.bmm(p.transpose(1, 2), g)  # [c, d, d_out]
        torch.bmm(g, w.transpose(1, 2), out=p)  # [c, n, d]
        return grad_w


class MulOp(RelationOp):
    """``out = p * w`` with ``w: [c, d]`` broadcast over the relation's slots."""

    def forward(self, p: Tensor, w: Tensor, out: Tensor) -> None:
        torch.mul(p, w[:, None], out=out)

    def backward(self, g: Tensor, p: Tensor, w: Tensor) -> Tensor:
        grad_w = (g * p).sum(1)  # [c, d]
        torch.mul(g, w[:, None], out=p)
        return grad_w


def _complex(t: Tensor) -> Tensor:
    """``[..., 2F]`` real (re, im interleaved) -> ``[..., F]`` complex view."""
    return torch.view_as_complex(t.view(*t.shape[:-1], -1, 2))


class MulConjOp(RelationOp):
    """``out = p * conj(w)`` in complex arithmetic on ``[.., 2F]`` interleaved (re, im) real tensors.

    CompGCN ``corr`` in the frequency domain composes ``conj(p) * w``; this op computes its complex
    conjugate ``p * conj(w)`` instead and the caller folds that conjugation into the (linear) map that
    follows (a sign flip of the imaginary rows of the inverse-FFT basis). The reason is speed: a
    conjugated view of the large operand is materialised by every complex kernel (2-2.5x the time of a
    plain product on a chunk), while conjugating the small ``[c, F]`` weight is free. For
    ``y = p conj(w)``: ``dL/dp = g w`` (no conjugate of a large tensor) and ``dL/dw = sum conj(g) p``
    (one ``vecdot``), all as interleaved real pairs.
    """

    def forward(self, p: Tensor, w: Tensor, out: Tensor) -> None:
        torch.mul(_complex(p), _complex(w).conj().resolve_conj()[:, None], out=_complex(out))

    def backward(self, g: Tensor, p: Tensor, w: Tensor) -> Tensor:
        gc, pc, wc = _complex(g), _complex(p), _complex(w)
        grad_w = torch.view_as_real(torch.linalg.vecdot(gc, pc, dim=1)).flatten(-2)  # [c, 2F]
        torch.mul(gc, wc[:, None], out=pc)
        return grad_w


class _Propagate(torch.autograd.Function):
    """``node = scatter(op(A @ x, w))`` in chunks of slots, with a hand-written backward.

    Forward, chunk by chunk: the chunk's rows of ``A @ x`` (a sparse product on ``A``'s row block) go
    into the graph's reused ``[S, d]`` workspace, their transform into a small buffer that is added
    into the node output in place. Backward: the output
    gradient is gathered per chunk, the parameter gradient taken, and the workspace overwritten with the
    aggregates' gradient, which one sparse product ``A^T`` maps back to the nodes.
    """

    @staticmethod
    def forward(  # noqa: D102
        ctx,
        x: Tensor,
        w: Tensor,
        pairs: RelationalPairs,
        a: Tensor,
        a_t: Tensor,
        op: RelationOp,
        index: Tensor,
        size: int,
    ) -> Tensor:
        width = x.size(1)
        width_out = op.out_width(width, w)
        pair_x = pairs.workspace(width, x.dtype, x.device)  # [S, d]
        out = x.new_zeros(size, width_out)  # [size, d_out]
        chunks = pairs.chunks(max(width, width_out))
        buf = x.new_empty(max((c * n for _, _, c, n in chunks), default=0) * width_out)
        crow, col, values = a.crow_indices(), a.col_indices(), a.values()
        ends = pairs.crow_list()
        bag = _bag_spmm(x)
        for row, rel, c, n in chunks:
            rows = c * n
            p = pair_x[row : row + rows]  # [c n, d]: this chunk's aggregates (rows of A @ x)
            e0, e1 = ends[row], ends[row + rows]
            offsets = crow[row : row + rows + 1] - e0
            if bag:  # a cache-sized result, copied into the workspace
                p.copy_(_row_sums(offsets[:-1], col[e0:e1], values[e0:e1], x))
            else:
                torch.mm(_csr(offsets, col[e0:e1], values[e0:e1], (rows, len(x))), x, out=p)
            y = buf[: rows * width_out].view(c, n, width_out)
            op.forward(p.view(c, n, width), w[rel : rel + c], y)
            out.index_add_(0, index[row : row + rows], y.view(rows, width_out))
        ctx.save_for_backward(w)
        ctx.pair_x, ctx.pairs, ctx.a_t, ctx.op, ctx.index = pair_x, pairs, a_t, op, index
        ctx.chunks = chunks
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # noqa: D102
        (w,) = ctx.saved_tensors
        pair_x, chunks, index, op = ctx.pair_x, ctx.chunks, ctx.index, ctx.op
        if pair_x is None:
            raise RuntimeError(
                "the fused relational layer's backward overwrites its saved aggregates, so it runs "
                "once per forward (no retain_graph=True); build the layer with fused=False for that"
            )
        ctx.pair_x = None  # the workspace is free again once this returns
        grad = grad.contiguous()
        width, width_out = pair_x.size(1), grad.size(1)
        grad_w = torch.empty_like(w)  # every block row belongs to one chunk
        buf = grad.new_empty(max((c * n for _, _, c, n in chunks), default=0) * width_out)
        for row, rel, c, n in chunks:
            g = buf[: c * n * width_out].view(c * n, width_out)
            torch.index_select(grad, 0, index[row : row + c * n], out=g)
            p = pair_x[row : row + c * n].view(c, n, width)
            grad_w[rel : rel + c] = op.backward(g.view(c, n, width_out), p, w[rel : rel + c])
        grad_x = csr_matmul(ctx.a_t, pair_x) if ctx.needs_input_grad[0] else None
        grad_w = grad_w if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None, None, None, None, None


def csr_operators(
    row: Tensor, col: Tensor, value: Tensor, size: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """The sparse ``[m, n]`` matrix with entries ``(row, col, value)`` (duplicates add) and its transpose.

    Both in CSR, for :func:`sparse_mm`. ``row``, ``col``, ``value``: ``[nnz]``; ``size``: ``(m, n)``.
    Duplicate ``(row, col)`` entries are summed into one stored entry first: a product then gathers
    each source row once per distinct entry (CompGCN ``sub``'s relation operator has 544k entries
    but only 150k distinct ``(node, relation)`` ones on FB15k-237).
    """
    row, col = row.long(), col.long()
    m, n = size
    key, inverse = torch.unique(row * max(n, 1) + col, return_inverse=True)  # sorted by (row, col)
    value = value.new_zeros(len(key)).index_add_(0, inverse, value)  # [nnz'] duplicates summed
    row, col = key // max(n, 1), key % max(n, 1)

    def build(r: Tensor, c: Tensor, v: Tensor, m: int, n: int) -> Tensor:
        perm = torch.argsort(r * max(n, 1) + c)  # [nnz']
        crow = torch.zeros(m + 1, dtype=torch.long, device=r.device)
        crow[1:] = torch.cumsum(torch.bincount(r, minlength=m), 0)
        return _csr(crow, c[perm], v[perm], (m, n))

    return build(row, col, value, m, n), build(col, row, value, n, m)


def sparse_mm(a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
    """``a @ x`` for a constant sparse ``a`` with prebuilt transpose ``a_t`` (differentiable in ``x``)."""
    return _SpMM.apply(a, a_t, x.contiguous())


class _SpMMDifference(torch.autograd.Function):
    """``A @ x - B @ z`` for constant sparse ``A``, ``B`` with prebuilt transposes.

    ``B @ z`` is subtracted in place (``addmm_``) from the fresh ``A @ x``: one ``[m, d]`` result
    instead of three (on CPU each fresh tensor of this size is page-faulted in, which costs about
    as much as the sparse product itself).
    """

    @staticmethod
    def forward(
        ctx, a: Tensor, a_t: Tensor, x: Tensor, b: Tensor, b_t: Tensor, z: Tensor
    ) -> Tensor:  # noqa: D102
        ctx.a_t, ctx.b_t = a_t, b_t
        return csr_matmul(a, x).sub_(csr_matmul(b, z))

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        grad = grad.contiguous()
        grad_x = csr_matmul(ctx.a_t, grad) if ctx.needs_input_grad[2] else None
        grad_z = csr_matmul(ctx.b_t, grad).neg_() if ctx.needs_input_grad[5] else None
        return None, None, grad_x, None, None, grad_z


def sparse_mm_difference(
    a: Tensor, a_t: Tensor, x: Tensor, b: Tensor, b_t: Tensor, z: Tensor
) -> Tensor:
    """``a @ x - b @ z`` (``[m, n] x [n, d] - [m, k] x [k, d] -> [m, d]``), differentiable in ``x``, ``z``.

    Same value as ``sparse_mm(a, a_t, x) - sparse_mm(b, b_t, z)`` (up to rounding), one output tensor.
    """
    return _SpMMDifference.apply(a, a_t, x.contiguous(), b, b_t, z.contiguous())


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
    _workspace: dict = field(default_factory=dict, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

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

    # -- the three steps in one pass ---------------------------------------------------------------
    def propagate(
        self,
        x: Tensor,
        weight: Tensor,
        op: RelationOp,
        edge_weight: Tensor | None = None,
        index: Tensor | None = None,
        size: int | None = None,
        *,
        block_order: bool = False,
    ) -> Tensor:
        """``scatter(op(aggregate(x, edge_weight), weight[pair_type]))`` without ``[S, d]`` temporaries.

        Args:
            x: ``[N, d]`` node features.
            weight: ``[R, ...]`` per-relation parameters of ``op`` (``[R, d, d_out]`` for
                :class:`MatmulOp`, ``[R, d]`` for :class:`MulOp` / :class:`MulConjOp`).
            op: the per-relation transform.
            edge_weight: ``[E]`` weight per edge (input edge order); ``None`` = 1. Not differentiated.
            index: ``[S]`` output row of each slot (default ``pair_dst``); ``size``: output rows
                (default ``num_nodes``), as in :meth:`scatter`.
            block_order: ``weight`` is already ``weight[bucket_rel]`` (``[sum_k R_k, ...]``, one row
                per block row in slot order), e.g. built for those relations only.

        Returns:
            ``[size, d_out]``; differentiable w.r.t. ``x`` and ``weight`` (once).
        """
        index = self.pair_dst if index is None else index  # [S]
        size = size or self.num_nodes
        block_weight = weight if block_order else weight[self.bucket_rel]  # [sum_k R_k, ...]
        if block_order and len(block_weight) != len(self.bucket_rel):
            raise ValueError(
                f"block_order=True expects one weight row per block row ({len(self.bucket_rel)}), "
                f"got {len(block_weight)}"
            )
        if self.num_pairs == 0:
            return x.new_zeros(size, op.out_width(x.size(1), block_weight))
        a, a_t = self.operators(x, edge_weight)
        return _Propagate.apply(x.contiguous(), block_weight, self, a, a_t, op, index, size)

    def workspace(self, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A ``[S, width]`` buffer that no pending autograd graph holds, reused across steps.

        Fresh tensors of this size are page-faulted in on every allocation (on CPU that costs more
        than a pass of arithmetic over them); the buffer lives as long as this (cached) structure.
        A buffer still saved for a pending backward (e.g. two forwards before one backward) is
        skipped, and a fresh one is kept for next time (so layers sharing this structure get one
        each; at most :data:`MAX_WORKSPACES` per width).
        """
        pool = self._workspace.setdefault((width, dtype, torch.device(device)), [])
        # Each entry is [buffer, weak reference to the view last handed out]: the buffer is free once
        # that view is gone (dropped after forward, or by backward, or with its autograd graph).
        for entry in pool:
            if entry[1] is None or entry[1]() is None:
                view = entry[0].view(entry[0].shape)
                entry[1] = weakref.ref(view)
                return view
        buf = torch.empty(self.num_pairs, width, dtype=dtype, device=device)
        view = buf.view(buf.shape)
        if len(pool) < MAX_WORKSPACES:
            pool.append([buf, weakref.ref(view)])
        return view

    def memo(self, key, build):
        """``build()``, computed once per structure and ``key`` (for derived per-graph tensors)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def crow_list(self) -> list[int]:
        """``A``'s row pointers as Python ints (cached): edge range of each slot, in ``perm`` order."""
        if "crow" not in self._cache:
            self._cache["crow"] = self._crow.tolist()
        return self._cache["crow"]

    def chunks(self, width: int) -> list[tuple[int, int, int, int]]:
        """``(first slot, first block row, relations c, slots per relation n)`` per chunk of slots.

        A chunk holds whole relations of one bucket, about :data:`CHUNK_ELEMENTS` / ``width`` slots
        (at least one relation).
        """
        key = ("chunks", width)
        if key not in self._cache:
            out, row, rel = [], 0, 0
            for r, n in self.buckets:
                step = max(1, CHUNK_ELEMENTS // max(1, n * width))
                out.extend((row + i * n, rel + i, min(step, r - i), n) for i in range(0, r, step))
                row, rel = row + r * n, rel + r
            self._cache[key] = out
        return self._cache[key]

    def operators(self, x: Tensor, edge_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The sparse ``A: [S, N]`` of :meth:`aggregate` and its transpose, with ``edge_weight``.

        The last pair built is cached, keyed by the weight tensor's identity and version (a fixed
        normaliser such as :meth:`mean_weight` is the same tensor at every step).
        """
        cached = self._cache.get("operators")
        key = (x.dtype, x.device, None if edge_weight is None else edge_weight._version)
        if cached is not None and cached[1] == key:
            ref = cached[0]
            if (ref is None and edge_weight is None) or (ref is not None and ref() is edge_weight):
                return cached[2]
        weight = edge_weight
        if weight is None:
            weight = torch.ones(self.num_edges, dtype=x.dtype, device=x.device)
        weight = weight.to(x.dtype).detach()
        a = _csr(self._crow, self._col, weight[self.perm], (self.num_pairs, self.num_nodes))
        a_t = _csr(self._crow_t, self._col_t, weight[self.perm_t], (self.num_nodes, self.num_pairs))
        ref = None if edge_weight is None else weakref.ref(edge_weight)
        self._cache["operators"] = (ref, key, (a, a_t))
        return a, a_t

    # -- the three steps, one at a time ----------------------------------------------------------
    def aggregate(self, x: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """``out[s] = sum_{edges e in slot s} edge_weight[e] * x[src[e]]``.

        Args:
            x: ``[N, d]`` node features.
            edge_weight: ``[E]`` weight per edge (input edge order); ``None`` = 1.

        Returns:
            ``[S, d]`` slot aggregates (zero on padding); differentiable w.r.t. ``x`` (not w.r.t.
            ``edge_weight``).
        """
        a, a_t = self.operators(x, edge_weight)
        return _SpMM.apply(a, a_t, x.contiguous())

    def relation_matmul(self, pair_x: Tensor, weight: Tensor) -> Tensor:
        """``out[s] = pair_x[s] @ weight[pair_type[s]]``: one ``torch.bmm`` per bucket.

        Hundreds of tiny per-relation GEMMs are slow on a busy multi-threaded CPU (and each slice's
        backward would allocate a full-size gradient); the buckets need a few times
        ``log2(max pairs)`` calls with at most ``sqrt(2)``-fold padding (see :func:`_layout`),
        written in place in both directions (:class:`_BucketMatmul`).

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
        """``[E]`` weight ``1 / c_{dst, r}`` (mean over the neighbours of one relation; cached)."""
        if "mean_weight" not in self._cache:
            self._cache["mean_weight"] = 1.0 / self.pair_size[self.edge_pair].float()
        return self._cache["mean_weight"]

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

    Relations are bucketed by ``floor(f log2(count))``; each gets ``n_k`` (its bucket's largest count)
    consecutive slots. ``f = 4`` (width ratio at most ``2^(1/4)``) from :data:`FINE_BUCKET_PAIRS` pairs
    on, where padding is what costs (FB15k-237: 159k slots for 150k pairs instead of 173k with
    ``f = 2``); ``f = 2`` (ratio at most ``sqrt(2)``) below, where each bucket's kernel calls cost more
    than its padding (e.g. the small subgraph batches of a fused LM).

    Returns:
        ``buckets`` ``[(R_k, n_k)]``, ``bucket_rel`` ``[sum_k R_k]``, ``slot_of_unique`` ``[P]`` (slot of
        the ``p``-th pair in relation-sorted order), ``rel_of_slot`` ``[S]``, and ``S``.
    """
    groups: dict[int, list[int]] = {}
    fine = 4 if sum(counts) >= FINE_BUCKET_PAIRS else 2
    for r, n in enumerate(counts):
        if n:
            groups.setdefault(int(fine * math.log2(n)), []).append(r)
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
