"""TuckER (Balažević et al., 2019)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from gnnlm.kge.gemm import matmul_nt
from gnnlm.kge.interaction import Interaction


def _affine(bn: nn.BatchNorm1d | None, dim: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` ``[dim]`` with ``bn(x) == x * scale + shift`` in inference mode."""
    if bn is None:
        return like.new_ones(dim), like.new_zeros(dim)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class TuckER(Interaction):
    r"""TuckER: a Tucker decomposition of the binary tensor of triples.

    .. math:: f(h, r, t) = \mathcal{W} \times_1 h \times_2 r \times_3 t
        = \sum_{i,k,j} h_i \, r_k \, t_j \, \mathcal{W}_{k i j}

    with a learned core tensor :math:`\mathcal{W} \in \mathbb{R}^{d_r \times d_e \times d_e}`.
    Paper: `TuckER: Tensor Factorization for Knowledge Graph Completion <https://arxiv.org/abs/1901.09590>`_.
    As in the authors' code, the head goes through batch norm and dropout (``input_dropout``), the
    relation-specific matrix :math:`W_r = \mathcal{W} \times_1 r` through dropout (``hidden_dropout1``),
    and :math:`h W_r` through batch norm and dropout (``hidden_dropout2``) before the product with
    :math:`t`; 1-N tail scoring is then one GEMM. Defaults are the paper's FB15k-237 settings.

    Head prediction (:meth:`score_h`) folds the batch norms into their affine inference form
    (running statistics), so it is one GEMM too; TuckER is meant to be trained with reciprocal
    relations (as in the paper), where every query is a tail query and batch statistics apply.

    Args:
        embedding_dim: entity dimension :math:`d_e`.
        relation_dim: relation dimension :math:`d_r` (default :math:`d_e`; the paper uses 30 on WN18RR).
        input_dropout: dropout on the normalised head.
        hidden_dropout1: dropout on :math:`W_r`.
        hidden_dropout2: dropout on the normalised :math:`h W_r`.
        batch_norm: use the two batch norms.
    """

    supports_gemm: ClassVar[bool] = True
    requires_embedding_dim: ClassVar[bool] = True

    def __init__(
        self,
        embedding_dim: int,
        *,
        relation_dim: int | None = None,
        input_dropout: float = 0.3,
        hidden_dropout1: float = 0.4,
        hidden_dropout2: float = 0.5,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.entity_dim = embedding_dim
        self.relation_dim = relation_dim or embedding_dim
        self.core = nn.Parameter(torch.empty(self.relation_dim, self.entity_dim, self.entity_dim))
        self.input_dropout = nn.Dropout(input_dropout)
        self.hidden_dropout1 = nn.Dropout(hidden_dropout1)
        self.hidden_dropout2 = nn.Dropout(hidden_dropout2)
        self.bn0 = nn.BatchNorm1d(self.entity_dim) if batch_norm else None
        self.bn1 = nn.BatchNorm1d(self.entity_dim) if batch_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.core, -1.0, 1.0)
        for bn in (self.bn0, self.bn1):
            if bn is not None:
                bn.reset_parameters()

    def representation_dims(self, embedding_dim: int) -> tuple[int, int]:
        if embedding_dim != self.entity_dim:
            raise ValueError(
                f"TuckER was built with embedding_dim={self.entity_dim}, asked for {embedding_dim}"
            )
        return self.entity_dim, self.relation_dim

    def _relation_matrices(self, r: Tensor) -> Tensor:
        """``[M, d_r]`` -> ``[M, d_e, d_e]`` matrices :math:`W_r` (with ``hidden_dropout1``)."""
        w = r @ self.core.view(self.relation_dim, -1)  # [M, d_e * d_e]
        return self.hidden_dropout1(w.view(-1, self.entity_dim, self.entity_dim))  # [M, d_e, d_e]

    def _query(self, h: Tensor, r: Tensor) -> Tensor:
        """``[M, d_e], [M, d_r]`` -> ``[M, d_e]``: dropout(bn1(dropout(bn0(h)) W_r)).

        The ``[M, d_e, d_e]`` matrices :math:`W_r` are built ``max_chunk_elements`` floats at a time.
        """
        x = h if self.bn0 is None else self.bn0(h)
        x = self.input_dropout(x)
        rows = max(1, self.max_chunk_elements // (self.entity_dim * self.entity_dim))
        x = torch.cat(
            [
                torch.bmm(xc[:, None, :], self._relation_matrices(rc))[:, 0, :]  # [m, d_e]
                for xc, rc in zip(x.split(rows), r.split(rows))
            ]
        )  # [M, d_e]
        x = x if self.bn1 is None else self.bn1(x)
        return self.hidden_dropout2(x)

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        batch = torch.broadcast_shapes(h.shape[:-1], r.shape[:-1])
        h = h.expand(*batch, h.shape[-1]).reshape(-1, h.shape[-1])  # [M, d_e]
        r = r.expand(*batch, r.shape[-1]).reshape(-1, r.shape[-1])  # [M, d_r]
        q = self._query(h, r).view(*batch, self.entity_dim)  # (*batch, d_e)
        return (q * t).sum(-1)

    def score_t(self, h: Tensor, r: Tensor, all_t: Tensor) -> Tensor:
        return matmul_nt(self._query(h, r), all_t)  # [B, N]

    def score_h(self, all_h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        # f = (bn1(x W_r) * m) . t with x = dropout(bn0(h)) and bn1(y) = y * a + c (inference form):
        #   f = x . (W_r (a * m * t)) + c . (m * t), where m is hidden_dropout2's mask.
        scale0, shift0 = _affine(self.bn0, self.entity_dim, all_h)
        scale1, shift1 = _affine(self.bn1, self.entity_dim, t)
        t = self.hidden_dropout2(t)  # [B, d_e]
        rows = max(1, self.max_chunk_elements // (self.entity_dim * self.entity_dim))
        v = scale1 * t  # [B, d_e]
        u = torch.cat(
            [
                torch.bmm(self._relation_matrices(rc), vc[:, :, None])[:, :, 0]  # [b, d_e]
                for rc, vc in zip(r.split(rows), v.split(rows))
            ]
        )  # [B, d_e]
        x = self.input_dropout(all_h * scale0 + shift0)  # [N, d_e]
        return matmul_nt(u, x) + (shift1 * t).sum(-1, keepdim=True)  # [B, N]

    def extra_repr(self) -> str:
        return f"entity_dim={self.entity_dim}, relation_dim={self.relation_dim}"
