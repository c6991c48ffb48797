"""Masked multi-head cross-attention between two padded sets (tokens and nodes, tokens and memory)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MaskedCrossAttention(nn.Module):
    r"""Pre-norm multi-head cross-attention with a key padding mask.

    .. math::
        \mathrm{out} = W_o\,\mathrm{softmax}\!\left(\frac{(W_q\,\mathrm{LN}(x))(W_k y)^\top}{\sqrt{d_h}}
        + M\right) W_v y

    where :math:`M` is :math:`-\infty` on padded keys. A query whose example has no keys at all (a text
    without linked entities) gets a zero output rather than NaN.

    Args:
        query_channels: width of the queries (and of the output).
        key_channels: width of the keys / values.
        num_heads: attention heads.
        head_channels: width per head (default ``query_channels // num_heads``).
        dropout: dropout on the attention weights.
    """

    def __init__(
        self,
        query_channels: int,
        key_channels: int,
        num_heads: int,
        *,
        head_channels: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        head_channels = head_channels or max(query_channels // num_heads, 1)
        self.query_channels, self.key_channels = query_channels, key_channels
        self.num_heads, self.head_channels = num_heads, head_channels
        inner = num_heads * head_channels
        self.norm = nn.LayerNorm(query_channels)
        self.q = nn.Linear(query_channels, inner)
        self.k = nn.Linear(key_channels, inner)
        self.v = nn.Linear(key_channels, inner)
        self.o = nn.Linear(inner, query_channels)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        for lin in (self.q, self.k, self.v, self.o):
            lin.reset_parameters()

    def forward(self, query: Tensor, key: Tensor, key_mask: Tensor) -> Tensor:
        """Attend.

        Args:
            query: ``[batch, num_queries, query_channels]``.
            key: ``[batch, num_keys, key_channels]`` (also the values).
            key_mask: ``[batch, num_keys]`` bool, True for real keys.

        Returns:
            ``[batch, num_queries, query_channels]``.
        """
        b, nq, _ = query.shape
        nk = key.size(1)
        h, d = self.num_heads, self.head_channels
        q = self.q(self.norm(query)).view(b, nq, h, d).transpose(1, 2)  # [batch, heads, nq, d]
        k = self.k(key).view(b, nk, h, d).transpose(1, 2)  # [batch, heads, nk, d]
        v = self.v(key).view(b, nk, h, d).transpose(1, 2)  # [batch, heads, nk, d]
        if nk == 0:  # no example has keys: zero context
            return self.o(q.new_zeros(b, nq, h * d))
        has_keys = key_mask.any(-1)  # [batch]
        all_have_keys = bool(has_keys.all())
        if not all_have_keys:  # no fully masked row (NaN on some backends); zeroed below
            key_mask = key_mask | ~has_keys.unsqueeze(-1)
        # One fused SDPA call for the whole batch: the dense [batch, 1, 1, nk] mask keeps each query to
        # its own example's real keys (scale 1 / sqrt(d), as before).
        ctx = nn.functional.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout.p if self.training else 0.0,
        )  # [batch, heads, nq, d]
        if not all_have_keys:
            ctx = ctx * has_keys.to(ctx.dtype)[:, None, None, None]
        ctx = ctx.transpose(1, 2).reshape(b, nq, h * d)  # [batch, nq, heads * d]
        return self.o(ctx)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.query_channels}, {self.key_channels}, "
            f"heads={self.num_heads}, head_channels={self.head_channels})"
        )


class TanhGate(nn.Module):
    r"""A learnable scalar gate :math:`\tanh(g)` per position in a stack.

    With ``init=0`` (the default, Flamingo's gated residual) ``h + tanh(g) * f(h)`` is exactly ``h`` at
    initialisation, but only ``g`` gets a gradient at the first step (:math:`\partial/\partial f` is
    scaled by :math:`\tanh(0) = 0`). The built-in modes open it instead (``init=GATE_OPEN``, 1.0:
    :math:`\tanh(1) \approx 0.76`) and zero-initialise ``f``'s output projection, which keeps the identity
    and lets that projection learn from the first step (see :mod:`gnnlm.fusion.injection`).

    Args:
        num_gates: one gate per fused layer.
        init: initial :math:`g`.
    """

    def __init__(self, num_gates: int, *, init: float = 0.0) -> None:
        super().__init__()
        self.init = float(init)
        self.weight = nn.Parameter(torch.empty(num_gates))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.init)

    def forward(self, i: int) -> Tensor:
        """``tanh(g_i)``, a 0-d tensor."""
        return torch.tanh(self.weight[i])

    def __repr__(self) -> str:
        init = f", init={self.init:g}" if self.init else ""
        return f"{type(self).__name__}({self.weight.numel()}{init})"
