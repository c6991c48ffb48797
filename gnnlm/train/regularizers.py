"""Weight regularisers on the representations a training batch uses, found by name (``l2``, ``n3``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor, nn

from gnnlm.utils.registry import DottedPathResolver


class Regularizer(nn.Module):
    r"""``weight / B * sum_x sum_j |x_j|^p`` over the factors of a batch's representations.

    Args:
        weight: the regularisation weight (``0`` disables it).

    ``forward(factors, batch_size)`` takes the list of ``[n, k]`` factor tensors that
    :meth:`gnnlm.kge.LinkPredictionModel.regularization_factors` gives for the rows a batch used (the
    interaction decides the factors, e.g. complex moduli for ComplEx) and returns a scalar.
    """

    #: the exponent ``p``.
    p: ClassVar[float] = 2.0

    def __init__(self, weight: float = 0.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, factors: Sequence[Tensor], batch_size: int) -> Tensor:
        total = sum(x.abs().pow(self.p).sum() for x in factors)
        return self.weight * total / max(1, batch_size)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, p={self.p:g}"


class L2Regularizer(Regularizer):
    r"""Squared L2 norm, :math:`\lambda \frac{1}{B}\sum (\|h\|_2^2 + \|r\|_2^2 + \|t\|_2^2)`."""

    p = 2.0


class N3Regularizer(Regularizer):
    r"""Nuclear 3-norm of Lacroix et al., 2018 (`Canonical Tensor Decomposition for Knowledge Base
    Completion <https://arxiv.org/abs/1806.07297>`_): :math:`\lambda \frac{1}{B}\sum (|h|^3 + |r|^3 + |t|^3)`.

    The factors come from the interaction: the complex modulus of each coordinate for ComplEx (as in the
    paper), the coordinates themselves for real-valued models.
    """

    p = 3.0


regularizer_resolver: DottedPathResolver[Regularizer] = DottedPathResolver(
    [L2Regularizer, N3Regularizer], base=Regularizer, default=L2Regularizer
)
"""Regularisers by name: ``l2``, ``n3`` (register a :class:`Regularizer` subclass to add one)."""
