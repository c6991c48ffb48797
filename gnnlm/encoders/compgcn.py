"""CompGCN (Vashishth et al. 2020) as a pair-aggregating PyG layer, and the stacked encoder."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from gnnlm.encoders.base import GraphEncoder
from gnnlm.encoders.dropout import dropout
from gnnlm.encoders.pairs import (
    MulConjOp,
    MulOp,
    PairCache,
    csr_operators,
    sparse_mm_difference,
)

COMPOSITIONS = ("sub", "mult", "corr")


def ccorr(a: Tensor, b: Tensor) -> Tensor:
    """Circular correlation ``(a * b)_k = sum_i a_i b_{(i + k) mod d}`` via FFT: ``(*, d), (*, d) -> (*, d)``.

    ``irfft(conj(rfft(a)) * rfft(b))``, as in the CompGCN reference code (and HolE).
    """
    d = a.size(-1)
    return torch.fft.irfft(torch.conj(torch.fft.rfft(a, dim=-1)) * torch.fft.rfft(b, dim=-1), n=d)


def irfft_basis(
    d: int, dtype: torch.dtype, device: torch.device | None = None, *, conjugate: bool = False
) -> Tensor:
    """``[2F, d]`` matrix of ``irfft(., n=d)`` on interleaved (re, im) rows, ``F = d // 2 + 1``.

    ``u @ irfft_basis(d) == irfft(view_as_complex(u.view(-1, F, 2)), n=d)`` for ``u: [*, 2F]``
    (the inverse real FFT is linear; rows of the imaginary parts it ignores are zero). With
    ``conjugate``, of ``irfft(conj(.))``: the imaginary rows negated.
    """
    f = d // 2 + 1
    eye = torch.eye(2 * f, dtype=dtype, device=device).view(2 * f, f, 2)
    basis = torch.fft.irfft(torch.view_as_complex(eye), n=d)  # [2F, d]
    if conjugate:
        basis[1::2] = -basis[1::2]
    return basis


def compose(x: Tensor, z: Tensor, composition: str, weight_sum: Tensor | None = None) -> Tensor:
    """The composition ``phi`` applied to a *weighted sum* of entity vectors.

    Every composition is linear in ``x`` (affine for ``sub``), so for ``x = sum_j w_j x_j``,
    ``sum_j w_j phi(x_j, z) = compose(x, z, weight_sum=sum_j w_j)``.

    Args:
        x: ``(*, d)`` (summed) entity features.
        z: ``(*, d)`` relation features.
        composition: ``"sub"`` (``x - z``), ``"mult"`` (``x * z``) or ``"corr"`` (``ccorr(x, z)``).
        weight_sum: ``(*)`` sum of the weights summed into ``x`` (``None`` = 1, a single vector).
    """
    if composition == "sub":
        return x - (z if weight_sum is None else weight_sum.unsqueeze(-1) * z)
    if composition == "mult":
        return x * z
    if composition == "corr":
        return ccorr(x, z)
    raise ValueError(f"unknown composition {composition!r}; expected one of {COMPOSITIONS}")


class CompGCNConv(MessagePassing):
    r"""The composition-based graph convolution of `"Composition-based Multi-Relational Graph
    Convolutional Networks" <https://arxiv.org/abs/1911.03082>`_:

    .. math::
        \mathbf{h}_v = \frac{1}{3}\Big(
        \sum_{(u, r) \in \mathcal{N}_{\textrm{in}}(v)} \alpha_{uv} \mathbf{W}_{\textrm{in}}
            \phi(\mathbf{x}_u, \mathbf{z}_r)
        + \sum_{(u, r) \in \mathcal{N}_{\textrm{out}}(v)} \alpha_{uv} \mathbf{W}_{\textrm{out}}
            \phi(\mathbf{x}_u, \mathbf{z}_r)
        + \mathbf{W}_{\textrm{self}} \phi(\mathbf{x}_v, \mathbf{z}_{\textrm{loop}})\Big) + \mathbf{b},
        \qquad \mathbf{z}^{\prime}_r = \mathbf{W}_{\textrm{rel}} \mathbf{z}_r

    with :math:`\phi \in \{` ``sub``: :math:`x - z`, ``mult``: :math:`x \odot z`, ``corr``:
    :math:`x \star z` :math:`\}`, :math:`\alpha_{uv} = \deg_{\textrm{out}}(u)^{-1/2}
    \deg_{\textrm{in}}(v)^{-1/2}` computed within each direction's edges, then optional batch norm (as
    in the reference code). Dropout applies to the neighbour term (the ``in`` plus the ``out`` sum) with
    one mask per node and channel; the reference code draws a mask per direction. Both are unbiased
    (kept entries scaled by ``1 / (1 - p)``) and identical without dropout; one mask is one random
    draw per node instead of two. Masks come from :func:`gnnlm.encoders.dropout.dropout` (on CPU, one
    uniform draw per entry: ~1.6x cheaper than ``F.dropout`` there).

    Directions follow :meth:`gnnlm.data.KnowledgeGraph.homogeneous` with ``add_inverse=True``: edge types
    ``< R/2`` are the KG's own edges (``in``, weight ``W_in``), types ``>= R/2`` their inverses (``out``,
    ``W_out``), where ``R = relation.size(0)``. Each layer has its own self-loop relation
    :math:`\mathbf{z}_{\textrm{loop}}`.

    Since :math:`\phi(\cdot, \mathbf{z}_r)` is linear (affine for ``sub``), the weighted sum of
    :math:`\mathbf{x}_u` over the edges of one ``(relation, destination)`` pair is composed once per pair
    (see :mod:`gnnlm.encoders.pairs`); and since :math:`\mathbf{W}_{\textrm{dir}}` is shared by all
    relations of a direction, the composed pairs are summed per node first and multiplied by
    :math:`\mathbf{W}_{\textrm{dir}}` once per node: ``O(E d + S d + N d^2)``, never a per-edge
    product. ``sub`` needs no pairs at all (two sparse products, :meth:`_neighbour_sums`), ``mult``
    and ``corr`` compose and scatter the pairs in one pass
    (:meth:`~gnnlm.encoders.pairs.RelationalPairs.propagate`), ``corr`` in the frequency domain.

    Args:
        in_channels: input width (entities and relations).
        out_channels: output width (entities and relations).
        composition: ``"sub"``, ``"mult"`` or ``"corr"``.
        dropout: dropout on the neighbour term (``in`` + ``out``), one mask per node and channel.
        bias: add a learnable bias.
        batch_norm: batch-normalise the output (the reference code does).
        fused: compose once per pair (default); ``False`` composes per edge with PyG's ``propagate``
            and :meth:`message` (``O(E d)`` memory; same result, kept as the readable reference).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        composition: str = "mult",
        dropout: float = 0.0,
        bias: bool = True,
        batch_norm: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if composition not in COMPOSITIONS:
            raise ValueError(
                f"CompGCNConv: unknown composition {composition!r}; expected one of {COMPOSITIONS}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.composition = composition
        self.dropout = dropout
        self.fused = fused
        self.w_in = nn.Parameter(torch.empty(in_channels, out_channels))
        self.w_out = nn.Parameter(torch.empty(in_channels, out_channels))
        self.w_loop = nn.Parameter(torch.empty(in_channels, out_channels))
        self.w_rel = nn.Parameter(torch.empty(in_channels, out_channels))
        self.loop_rel = nn.Parameter(torch.empty(1, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.bn = nn.BatchNorm1d(out_channels) if batch_norm else None
        self._pairs = PairCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for w in (self.w_in, self.w_out, self.w_loop, self.w_rel, self.loop_rel):
            bound = math.sqrt(6.0 / (w.size(0) + w.size(1)))
            nn.init.uniform_(w, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.bn is not None:
            self.bn.reset_parameters()

    @staticmethod
    def _structure(pairs, num_forward: int) -> tuple[Tensor, Tensor]:
        """``[E]`` symmetric normaliser within each direction, ``[S]`` output row ``2 dst + inverse``.

        Node ``v``'s ``in`` and ``out`` sums are rows ``2v`` and ``2v + 1``, so the ``[2N, d]`` sums
        view as ``[N, 2d]`` for one product with ``[W_in; W_out]``. Cached with the pairs, which the
        layers of a stack share (the graph is fixed during full-graph training).
        """

        def build() -> tuple[Tensor, Tensor]:
            forward_edge = pairs.pair_type[pairs.edge_pair] < num_forward  # [E]
            w = pairs.symmetric_weight(forward_edge) + pairs.symmetric_weight(~forward_edge)  # [E]
            direction_index = 2 * pairs.pair_dst + (pairs.pair_type >= num_forward)  # [S]
            return w, direction_index

        return pairs.memo(("compgcn", num_forward), build)

    def _neighbour_sums(
        self, pairs, x: Tensor, relation: Tensor, edge_weight: Tensor, direction_index: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """``sum alpha phi(x_u, z_r)`` per node and direction (row ``2 v + inverse``), and a basis.

        Returns ``(sums, None)`` with ``sums: [2N, d_in]``, or for ``corr`` ``(sums_hat, basis)``:
        the sums still in the frequency domain, ``[2N, 2F]`` (``F = d_in // 2 + 1``, interleaved real
        and imaginary parts; their complex conjugates, see :class:`~gnnlm.encoders.pairs.MulConjOp`),
        and ``basis: [2F, d_in]``, the inverse real FFT of the conjugate as a matrix
        (``sums = sums_hat @ basis``), which the caller folds into ``W_dir`` (no inverse FFT of the
        ``[2N, 2F]`` sums, forward or backward).

        ``sub``: ``A x - B z`` with ``A: [2N, N]`` (``alpha`` per edge) and ``B: [2N, R]`` (``alpha`` summed
        per relation), two sparse products. ``mult``: ``(A_pairs x) * z_r`` per pair, scattered in
        place (:meth:`~gnnlm.encoders.pairs.RelationalPairs.propagate`). ``corr``: the same in the
        frequency domain, ``irfft(sum conj(A_pairs rfft(x)) rfft(z_r))``, since ``rfft`` is linear
        (the pair sums and the scatter commute with it), so the FFTs run on ``N`` and ``R`` rows only,
        and the ``irfft`` is linear too, so it joins the direction weights; so does the conjugation
        (the pairs compose ``A_pairs rfft(x) * conj(rfft(z_r))``, the conjugate, which is cheaper).
        """
        num_nodes = x.size(0)
        if self.composition == "sub":

            def build() -> tuple:
                row = direction_index[pairs.edge_pair]  # [E]
                edge_type = pairs.pair_type[pairs.edge_pair]  # [E]
                # duplicate entries are summed in float64, then rounded once to x's dtype (as exact
                # as the per-edge sum in that dtype)
                weight = edge_weight.double()
                ops = (
                    *csr_operators(row, pairs.src, weight, (2 * num_nodes, num_nodes)),
                    *csr_operators(row, edge_type, weight, (2 * num_nodes, relation.size(0))),
                )
                return tuple(m.to(x.dtype) for m in ops)

            key = ("compgcn-sub", relation.size(0), x.dtype, x.device)
            a, a_t, b, b_t = pairs.memo(key, build)
            return sparse_mm_difference(a, a_t, x, b, b_t, relation), None
        if self.composition == "mult":
            return pairs.propagate(
                x, relation, MulOp(), edge_weight, direction_index, 2 * num_nodes
            ), None  # [2N, d_in]
        d = x.size(1)
        x_hat = torch.view_as_real(torch.fft.rfft(x, dim=-1)).flatten(-2)  # [N, 2F], F = d // 2 + 1
        z_hat = torch.view_as_real(torch.fft.rfft(relation, dim=-1)).flatten(-2)  # [R, 2F]
        node_hat = pairs.propagate(
            x_hat, z_hat, MulConjOp(), edge_weight, direction_index, 2 * num_nodes
        )  # [2N, 2F], the conjugates of the sums
        return node_hat, irfft_basis(d, x.dtype, x.device, conjugate=True)  # [2N, 2F], [2F, d]

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_type: Tensor, relation: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Apply the layer.

        Args:
            x: ``[num_nodes, in_channels]`` entity features.
            edge_index: ``[2, num_edges]``, row 0 = source.
            edge_type: ``[num_edges]`` in ``[0, R)``; types ``>= R // 2`` are inverse edges.
            relation: ``[R, in_channels]`` relation features (``R`` even: relations and inverses).

        Returns:
            ``(x, relation)``: ``[num_nodes, out_channels]`` and ``[R, out_channels]``.
        """
        num_rel, num_nodes = relation.size(0), x.size(0)
        if num_rel % 2:
            raise ValueError(
                f"CompGCNConv expects relations followed by their inverses (an even number), got "
                f"relation of shape {list(relation.shape)}"
            )
        half = num_rel // 2
        pairs = self._pairs.get(edge_index, edge_type, num_nodes, num_rel)
        edge_weight, direction_index = self._structure(pairs, half)  # [E], [S]
        # W_dir is shared by all relations of a direction: sum the composed messages per node first,
        # then one [N, d_in] x [d_in, d_out] product per direction (not one per pair or edge).
        basis = None
        if self.fused:
            node_msg, basis = self._neighbour_sums(
                pairs, x, relation, edge_weight, direction_index
            )  # [2N, d_in], or [2N, 2F] with basis [2F, d_in] (corr)
        else:
            pair_msg = self.propagate(
                pairs.pair_edge_index,
                x=(x, None),
                z=relation[edge_type],
                edge_weight=edge_weight,
                size=(num_nodes, pairs.num_pairs),
            )  # [S, d_in]: sum_j alpha phi(x_j, z_r) per slot, composed edge by edge
            node_msg = pairs.scatter(pair_msg, direction_index, 2 * num_nodes)  # [2N, d_in]
        # (dropout(in + out neighbour sums) + self loop) / 3 + bias, with the 1/3 folded into the
        # (small) weights and the bias and loop term in one addmm: each [N, d_out] pass or fresh
        # tensor saved here is a memory-bound pass (and a page-faulting allocation) saved
        third = 1.0 / 3.0
        w_in, w_out = self.w_in, self.w_out
        if basis is not None:  # corr: the inverse FFT joins the weights, [2F, d_in] x [d_in, d_out]
            w_in, w_out = basis @ w_in, basis @ w_out
        w_dir = torch.cat([w_in, w_out]) * third  # [2 d_in, d_out] ([4F, d_out] for corr)
        neighbours = (
            node_msg.view(num_nodes, 2 * node_msg.size(-1)) @ w_dir
        )  # [N, 2 d_in] -> [N, d_out], already / 3 (dropout commutes with the positive scale)
        # one mask per node and channel, in place: the product's backward does not read its output
        neighbours = dropout(neighbours, self.dropout, self.training, inplace=True)
        bias = self.bias
        if self.fused:  # phi(x, z_loop) @ W_loop = x @ W~ + c: no [N, d_in] composition
            loop_in, w_loop, offset = x, *self._loop_weight()
            if offset is not None:
                bias = offset * third if bias is None else bias + offset * third
        else:  # the readable reference: compose, then multiply
            loop_in, w_loop = compose(x, self.loop_rel, self.composition), self.w_loop
        if bias is not None:
            # addmm's backward does not read its output, so adding in place is safe
            out = torch.addmm(bias, loop_in, w_loop, alpha=third).add_(neighbours)
        else:
            out = torch.addmm(neighbours, loop_in, w_loop, alpha=third)  # [N, d_out]
        if self.bn is not None:
            out = self.bn(out)
        return out, relation @ self.w_rel

    def _loop_weight(self) -> tuple[Tensor, Tensor | None]:
        """``(W~, c)`` with ``phi(x, z_loop) @ W_loop = x @ W~ + c`` for every ``x``.

        ``sub``: ``W~ = W_loop``, ``c = -z_loop @ W_loop``; ``mult``: ``W~ = diag(z_loop) W_loop``;
        ``corr``: ``W~ = C W_loop`` with ``C[i, k] = z_loop[(i + k) mod d]`` (circular correlation with
        a fixed ``z`` is this ``[d, d]`` matrix); ``c = None`` for the last two. ``[d_in, d_out]`` work
        instead of a pass (and, for ``corr``, three FFTs) over ``[N, d_in]``.
        """
        z = self.loop_rel[0]  # [d_in]
        if self.composition == "sub":
            return self.w_loop, -(z @ self.w_loop)
        if self.composition == "mult":
            return z.unsqueeze(-1) * self.w_loop, None
        d = z.size(0)
        idx = torch.arange(d, device=z.device)
        circulant = z[(idx.unsqueeze(-1) + idx) % d]  # [d, d]: C[i, k] = z[(i + k) mod d]
        return circulant @ self.w_loop, None

    def message(self, x_j: Tensor, z: Tensor, edge_weight: Tensor) -> Tensor:
        """Edge-wise message ``alpha_e * phi(x_j, z_{r_e})``: ``[E, d], [E, d], [E] -> [E, d]``.

        Used when ``fused=False``; the fused path composes once per pair instead, which the tests
        check against this.
        """
        return edge_weight.view(-1, 1) * compose(x_j, z, self.composition)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"composition={self.composition!r})"
        )


class CompGCN(GraphEncoder):
    """A stack of :class:`CompGCNConv` layers updating entity and relation representations.

    Args:
        in_channels: input width of entities and relations.
        out_channels: output width of entities and relations.
        num_relations: accepted for a uniform constructor (CompGCN reads the relation count from the
            ``relation`` tensor); unused.
        hidden_channels: width between layers (default ``out_channels``).
        num_layers: number of layers (the paper uses 1 or 2).
        composition: ``"sub"``, ``"mult"`` or ``"corr"``.
        dropout: dropout on each layer's neighbour sums and on the features after each layer.
        act: activation after each layer (default ``tanh``, as in the paper).
        act_last: also after the last layer (default True, as in the reference code).
        batch_norm: batch-normalise each layer's output.
        fused: see :class:`CompGCNConv`.
    """

    supports_edge_type = True
    updates_relations = True
    needs_source_degree = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_relations: int | None = None,
        *,
        hidden_channels: int | None = None,
        num_layers: int = 2,
        composition: str = "mult",
        dropout: float = 0.1,
        act: str | Callable | None = "tanh",
        act_last: bool = True,
        batch_norm: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__(act=act, dropout=dropout, act_last=act_last)
        hidden_channels = hidden_channels or out_channels
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.layers = nn.ModuleList(
            CompGCNConv(
                d_in,
                d_out,
                composition=composition,
                dropout=dropout,
                batch_norm=batch_norm,
                fused=fused,
            )
            for d_in, d_out in zip(dims[:-1], dims[1:])
        )
        shared = PairCache()  # every layer sees the same graph: build its pair structure once
        for layer in self.layers:
            layer._pairs = shared
        self.in_channels, self.out_channels = in_channels, out_channels
        self.composition = composition

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()
