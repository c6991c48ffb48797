"""DistMult (Yang et al., 2015)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from gnnlm.kge.gemm import matmul_nt
from gnnlm.kge.interaction import Interaction


class DistMult(Interaction):
    r"""DistMult: a diagonal bilinear form.

    .. math:: f(h, r, t) = \sum_i h_i \, r_i \, t_i

    Paper: `Embedding Entities and Relations for Learning and Inference in Knowledge Bases
    <https://arxiv.org/abs/1412.6575>`_. 1-N scoring is one GEMM: ``(h * r) @ all_t.T``.
    """

    supports_gemm: ClassVar[bool] = True

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (h * r * t).sum(-1)

    def score_t(self, h: Tensor, r: Tensor, all_t: Tensor) -> Tensor:
        return matmul_nt(h * r, all_t)  # [B, d] @ [d, N] -> [B, N]

    def score_h(self, all_h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return matmul_nt(r * t, all_h)  # [B, N]
