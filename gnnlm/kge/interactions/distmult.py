"""DistMult (Yang et al., 2015)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gnnlm.kge.gemm import matmul_nt
from gnnlm.kge.interaction import Interaction


class _DistMultPairs(torch.autograd.Function):
    r""":meth:`DistMult.score_pairs` with a hand-written backward.

    The values and gradients are those of ``(h * r * t).sum(-1)`` bit for bit (the same products in
    the same order); the heads' and tails' gradients are written into one ``[2, n, d]`` tensor, so
    that nothing stacks them again for the table's gradient.
    """

    @staticmethod
    def forward(ctx, pairs: Tensor, r: Tensor) -> Tensor:
        hr = pairs[0] * r  # [n, d]
        ctx.save_for_backward(pairs, r, hr)
        return (hr * pairs[1]).sum(-1)  # [n]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        pairs, r, hr = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # [n, 1]
        out = pairs.new_empty(pairs.shape)  # [2, n, d]: d/dh, d/dt
        tg = pairs[1] * g  # [n, d]
        torch.mul(tg, r, out=out[0])
        torch.mul(g, hr, out=out[1])
        return out, tg.mul_(pairs[0])


class DistMult(Interaction):
    r"""DistMult: a diagonal bilinear form.

    .. math:: f(h, r, t) = \sum_i h_i \, r_i \, t_i

    Paper: `Embedding Entities and Relations for Learning and Inference in Knowledge Bases
    <https://arxiv.org/abs/1412.6575>`_. 1-N scoring is one GEMM: ``(h * r) @ all_t.T``.
    """

    supports_gemm: ClassVar[bool] = True

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (h * r * t).sum(-1)

    def score_pairs(self, pairs: Tensor, r: Tensor) -> Tensor:
        """``pairs: [2, n, d]`` (heads, tails), ``r: [n, d]`` -> ``[n]``: :meth:`forward` of
        ``(pairs[0], r, pairs[1])`` with one ``[2, n, d]`` gradient for ``pairs``."""
        return _DistMultPairs.apply(pairs, r)

    def score_t(self, h: Tensor, r: Tensor, all_t: Tensor) -> Tensor:
        return matmul_nt(h * r, all_t)  # [B, d] @ [d, N] -> [B, N]

    def score_h(self, all_h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return matmul_nt(r * t, all_h)  # [B, N]
