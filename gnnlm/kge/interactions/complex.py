"""ComplEx (Trouillon et al., 2016)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gnnlm.kge.gemm import matmul_nt
from gnnlm.kge.interaction import Interaction, complex_modulus, complex_split


class _ComplExScore(torch.autograd.Function):
    r""":meth:`ComplEx.forward` for equal-shape ``(*batch, 2d)`` inputs with a hand-written backward.

    The values are those of the autograd expression (same operations, same order); the backward
    writes each gradient once instead of going through six half-width slices and their zero-filled
    gradients: with :math:`q = h r`, :math:`\partial f / \partial t = q`,
    :math:`\partial f / \partial h = r \bar t` and :math:`\partial f / \partial r = h \bar t` up to
    the sign of the imaginary part (:func:`_conj_product`).
    """

    @staticmethod
    def forward(ctx, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        ctx.save_for_backward(h, r, t)
        (h_re, h_im), (r_re, r_im), (t_re, t_im) = (
            complex_split(h),
            complex_split(r),
            complex_split(t),
        )
        q_re, q_im = h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re  # q = h * r
        return (q_re * t_re + q_im * t_im).sum(-1)  # Re(q * conj(t))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h, r, t = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # (*batch, 1)
        (h_re, h_im), (r_re, r_im) = complex_split(h), complex_split(r)
        grad_t = torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1)  # q
        return _conj_product(r, t).mul_(g), _conj_product(h, t).mul_(g), grad_t.mul_(g)


class _ComplExPairs(torch.autograd.Function):
    r""":meth:`ComplEx.score_pairs` with a hand-written backward.

    Forward: :math:`q = h r` written once into a ``[n, 2d]`` tensor (kept: it is the tails'
    gradient), then :math:`\operatorname{Re}(q \bar t)` as one row-wise dot product of the
    ``[re | im]`` layouts. Backward: the tails' gradient :math:`q g`, and with :math:`s = t g`
    (scaled once) the heads' :math:`r \bar s` and the relations' :math:`h \bar s`
    (:func:`_conj_product`); heads and tails are written into one ``[2, n, 2d]`` tensor. Equal to
    :meth:`ComplEx.reference_forward` and its autograd gradients up to float rounding (products
    and sums are grouped differently).
    """

    @staticmethod
    def forward(ctx, pairs: Tensor, r: Tensor) -> Tensor:
        q = _complex_product(pairs[0], r)  # [n, 2d]
        ctx.save_for_backward(pairs, r, q)
        return (q * pairs[1]).sum(-1)  # [n]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        pairs, r, q = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # [n, 1]
        out = pairs.new_empty(pairs.shape)  # [2, n, 2d]: d/dh, d/dt
        torch.mul(q, g, out=out[1])
        scaled = pairs[1] * g  # [n, 2d]
        _conj_product(r, scaled, out=out[0])
        return out, _conj_product(pairs[0], scaled)


def _complex_product(a: Tensor, b: Tensor) -> Tensor:
    """``[re | im]`` of the element-wise complex product ``a b`` (``(*batch, 2d)`` each)."""
    (a_re, a_im), (b_re, b_im) = complex_split(a), complex_split(b)
    out = torch.empty_like(a)
    d = a.shape[-1] // 2
    torch.mul(a_re, b_re, out=out[..., :d]).addcmul_(a_im, b_im, value=-1.0)
    torch.mul(a_re, b_im, out=out[..., d:]).addcmul_(a_im, b_re)
    return out


def _conj_product(a: Tensor, t: Tensor, out: Tensor | None = None) -> Tensor:
    """``[Re(a conj t) | -Im(a conj t)]``: the gradient of ``Re(x a conj(t))`` w.r.t. ``x = [re | im]``
    (written into ``out`` when given)."""
    (a_re, a_im), (t_re, t_im) = complex_split(a), complex_split(t)
    out = torch.empty_like(a) if out is None else out  # (*batch, 2d)
    d = a.shape[-1] // 2
    torch.mul(a_re, t_re, out=out[..., :d]).addcmul_(a_im, t_im)
    torch.mul(a_re, t_im, out=out[..., d:]).addcmul_(a_im, t_re, value=-1.0)
    return out


class ComplEx(Interaction):
    r"""ComplEx: a Hermitian bilinear form over complex embeddings.

    .. math:: f(h, r, t) = \operatorname{Re}\Big(\sum_i h_i \, r_i \, \overline{t_i}\Big)

    Paper: `Complex Embeddings for Simple Link Prediction <https://arxiv.org/abs/1606.06357>`_.
    Entities and relations are ``2d`` real vectors laid out as ``[real | imag]``. 1-N scoring is one GEMM
    of width ``2d``: with :math:`q = h r`, :math:`f = q_{re} \cdot t_{re} + q_{im} \cdot t_{im}`; for heads,
    with :math:`p = r \overline{t}`, :math:`f = h_{re} \cdot p_{re} - h_{im} \cdot p_{im}`.
    Regularisers (N3, Lacroix et al. 2018) see the element-wise moduli.
    """

    entity_dim_factor: ClassVar[int] = 2
    relation_dim_factor: ClassVar[int] = 2
    supports_gemm: ClassVar[bool] = True

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        if h.shape == r.shape == t.shape:  # one triple per row (sLCWA): the fused backward
            return _ComplExScore.apply(h, r, t)
        return self.reference_forward(h, r, t)

    def reference_forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """The plain autograd expression (any broadcastable shapes); :meth:`forward` equals it."""
        (h_re, h_im), (r_re, r_im), (t_re, t_im) = (
            complex_split(h),
            complex_split(r),
            complex_split(t),
        )
        q_re, q_im = h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re  # q = h * r
        return (q_re * t_re + q_im * t_im).sum(-1)  # Re(q * conj(t))

    def score_pairs(self, pairs: Tensor, r: Tensor) -> Tensor:
        """``pairs: [2, n, 2d]`` (heads, tails), ``r: [n, 2d]`` -> ``[n]``: :meth:`forward` of
        ``(pairs[0], r, pairs[1])`` with one ``[2, n, 2d]`` gradient for ``pairs``."""
        return _ComplExPairs.apply(pairs, r)

    def score_t(self, h: Tensor, r: Tensor, all_t: Tensor) -> Tensor:
        (h_re, h_im), (r_re, r_im) = complex_split(h), complex_split(r)
        q = torch.cat(
            [h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1
        )  # [B, 2d] = h * r
        return matmul_nt(q, all_t)  # [B, N]

    def score_h(self, all_h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        (r_re, r_im), (t_re, t_im) = complex_split(r), complex_split(t)
        # p = r * conj(t); Re(h p) = h_re p_re - h_im p_im, so the query is [p_re | -p_im]
        p = torch.cat([r_re * t_re + r_im * t_im, r_re * t_im - r_im * t_re], dim=-1)  # [B, 2d]
        return matmul_nt(p, all_h)  # [B, N]

    def entity_factors(self, x: Tensor) -> Tensor:
        return complex_modulus(x)

    def relation_factors(self, x: Tensor) -> Tensor | None:
        return complex_modulus(x)
