"""Dropout whose CPU mask is one uniform draw per element, for the graph encoders' large node arrays.

On CPU, ``F.dropout`` draws its mask with ``bernoulli_``, which uses MKL's parallel generator on Intel
CPUs only; elsewhere (AMD) it is a serial loop of double-precision draws, 20 ms for one
``[14541, 200]`` FB15k-237 mask on one thread, followed by passes that scale and apply it.
:func:`dropout` draws ``uniform_`` (one ``float`` per element, 10 ms) and keeps the entries ``>= p``:
the same distribution (``P(keep) = 1 - p`` to within ``2^-24``) and the same expectation (kept entries
scaled by ``1 / (1 - p)``). Forward and backward of that mask take 15 ms against ``F.dropout``'s 24
(``benchmarks/dropout.py``: 0.89-0.96x the CPU time of a CompGCN d200 step), and the stream is the
same on every CPU vendor (``F.dropout``'s differs between Intel and AMD).

It is a different random stream from ``F.dropout``'s, so a run trained before this existed
(commit ``60857e1`` and earlier) is reproduced exactly only with :data:`UNIFORM_MASK_ON_CPU` set to
``False``. Other devices always use ``F.dropout`` (a fused kernel there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: draw CPU masks with ``uniform_`` (see the module docstring); ``False`` = ``F.dropout`` everywhere
UNIFORM_MASK_ON_CPU = True


def dropout(x: Tensor, p: float, training: bool = True, inplace: bool = False) -> Tensor:
    """``x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)`` per element, as ``F.dropout``.

    Args:
        x: ``[*]`` floating-point input.
        p: probability of zeroing an element, in ``[0, 1]``.
        training: identity (``x`` itself) when ``False`` or when ``p == 0``.
        inplace: multiply ``x`` in place (only where autograd does not need ``x``, e.g. the output of a
            matrix product).

    Returns:
        ``[*]``, the same shape and dtype. The gradient is the same mask times the output gradient.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if not UNIFORM_MASK_ON_CPU or x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, training=True, inplace=inplace)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    with torch.no_grad():  # the mask is a constant of the product: autograd saves only it
        # a bfloat16 uniform_ is rounded (P(u >= 0.1) = 0.898): 16-bit types draw in float32
        dtype = x.dtype if x.element_size() >= 4 else torch.float32
        mask = torch.empty(x.shape, dtype=dtype, device=x.device).uniform_()
        mask = mask.ge_(p).mul_(scale).to(x.dtype)  # 1 / (1 - p) where u >= p, else 0
    return x.mul_(mask) if inplace else x * mask
