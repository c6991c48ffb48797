"""Training losses for link prediction, one small class each, found by name through :data:`loss_resolver`.

Every loss handles both training regimes:

* **sLCWA** (negative sampling): :meth:`Loss.slcwa` gets the scores of the positive triples ``[B]`` and of
  their corrupted versions ``[B, K]``, plus optional per-negative ``weights [B, K]`` (self-adversarial
  weights, or 0 for filtered-out negatives) that sum to 1 over each row where given.
* **KvsAll / 1-N**: :meth:`Loss.kvsall` gets the scores of each query against every entity ``[B, N]`` and
  multi-hot targets ``[B, N]`` in ``[0, 1]`` (label smoothing already applied).

Scores are "higher is more plausible" for every interaction, distances included (they are negated).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnlm.train.kvsall_fused import KvsAllTargets, bce_with_logits_fused_, cross_entropy_fused_
from gnnlm.utils.registry import DottedPathResolver


def _negative_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """``[B, K] -> [B]``: plain mean over negatives, or the weighted sum when ``weights`` is given."""
    if weights is None:
        return values.mean(dim=1)
    return (values * weights).sum(dim=1)


class Loss(nn.Module):
    """Base class of link-prediction losses (see the module docstring for the two regimes)."""

    #: False for losses only defined for sLCWA (pairwise margins over all of N x N would be quadratic).
    supports_kvsall: ClassVar[bool] = True
    #: True when :meth:`kvsall_fused_` computes the KvsAll loss and its gradient in one pass.
    supports_fused_kvsall: ClassVar[bool] = False

    def slcwa(self, positive: Tensor, negative: Tensor, weights: Tensor | None = None) -> Tensor:
        """Loss of ``positive: [B]`` scores against ``negative: [B, K]`` scores; returns a scalar."""
        raise NotImplementedError

    def kvsall(self, scores: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``scores: [B, N]`` against multi-hot ``targets: [B, N]``; returns a scalar."""
        raise NotImplementedError(
            f"{type(self).__name__} does not support KvsAll training; use slcwa"
        )

    def kvsall_fused_(self, scores: Tensor, targets: KvsAllTargets, num_rows: int) -> float:
        """Fused :meth:`kvsall` (see :mod:`gnnlm.train.kvsall_fused`): returns the loss of the block
        ``scores: [b, N]`` (as a share of a ``num_rows``-row batch) against sparse ``targets`` and
        overwrites ``scores`` with the loss's gradient."""
        raise NotImplementedError(f"{type(self).__name__} has no fused KvsAll loss")


class MarginRankingLoss(Loss):
    r"""Pairwise hinge loss (Bordes et al., 2013, `TransE <https://papers.nips.cc/paper/5071>`_).

    .. math:: \mathcal{L} = \frac{1}{B} \sum_i \sum_k w_{ik} \max(0, \gamma - s(x_i) + s(x'_{ik}))

    with :math:`w_{ik} = 1/K` unless weights are given.

    Args:
        margin: :math:`\gamma`.
    """

    supports_kvsall = False

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def slcwa(self, positive: Tensor, negative: Tensor, weights: Tensor | None = None) -> Tensor:
        hinge = F.relu(self.margin - positive[:, None] + negative)  # [B, K]
        return _negative_mean(hinge, weights).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class SoftplusLoss(Loss):
    r"""Logistic loss, the positive and the negative halves weighted equally (Sun et al., 2019,
    `RotatE <https://arxiv.org/abs/1902.10197>`_, eq. 5; Trouillon et al., 2016 with ``margin=0``).

    .. math::
        \mathcal{L} = \frac{1}{B} \sum_i \Big[\operatorname{softplus}(-(\gamma + s(x_i)))
        + \sum_k w_{ik} \operatorname{softplus}(\gamma + s(x'_{ik}))\Big]

    ``softplus(-x) = -log sigmoid(x)``. RotatE's scores are negated distances ``-d``, so ``gamma + s`` is
    its ``gamma - d``. In KvsAll mode this is the element-wise mean of the same logistic loss (equal to
    :class:`BCELoss` with targets; the margin still shifts the scores).

    Args:
        margin: :math:`\gamma`, added to every score before the sigmoid.
    """

    def __init__(self, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = margin

    def slcwa(self, positive: Tensor, negative: Tensor, weights: Tensor | None = None) -> Tensor:
        pos = F.softplus(-(positive + self.margin))  # [B]
        neg = _negative_mean(F.softplus(negative + self.margin), weights)  # [B]
        return (pos + neg).mean()

    def kvsall(self, scores: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(scores + self.margin, targets)

    supports_fused_kvsall = True

    def kvsall_fused_(self, scores: Tensor, targets: KvsAllTargets, num_rows: int) -> float:
        return bce_with_logits_fused_(scores, targets, num_rows, margin=self.margin)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class BCELoss(Loss):
    r"""Binary cross-entropy on ``sigmoid(score)``, averaged over every scored element (Dettmers et al.,
    2018, `ConvE <https://arxiv.org/abs/1707.01476>`_).

    .. math:: \mathcal{L} = -\frac{1}{|S|} \sum_{x \in S} y_x \log \sigma(s_x) + (1 - y_x) \log(1 - \sigma(s_x))

    In sLCWA mode ``S`` is every positive (label 1) and negative (label 0) triple of the batch, each
    element with the same weight; weights given for negatives rescale each negative by ``K * w``.
    """

    def slcwa(self, positive: Tensor, negative: Tensor, weights: Tensor | None = None) -> Tensor:
        pos = F.softplus(-positive)  # [B], = BCE with label 1
        neg = F.softplus(negative)  # [B, K], = BCE with label 0
        if weights is not None:
            neg = neg * weights * negative.shape[1]  # uniform weights give back the plain mean
        return (pos.sum() + neg.sum()) / (positive.numel() + negative.numel())

    def kvsall(self, scores: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(scores, targets)

    supports_fused_kvsall = True

    def kvsall_fused_(self, scores: Tensor, targets: KvsAllTargets, num_rows: int) -> float:
        return bce_with_logits_fused_(scores, targets, num_rows)


class CrossEntropyLoss(Loss):
    r"""Softmax cross-entropy over the candidates of each query (Lacroix et al., 2018; Ruffinelli et al.,
    2020 "KL" / 1vsAll loss).

    KvsAll: the targets of each row are normalised to a distribution,
    :math:`\mathcal{L} = -\frac{1}{B}\sum_i \sum_j \frac{y_{ij}}{\sum_j y_{ij}} \log \operatorname{softmax}(s_i)_j`.
    sLCWA: the positive competes with its ``K`` negatives,
    :math:`-\log \frac{e^{s_i}}{e^{s_i} + \sum_k e^{s'_{ik}}}`; negatives with weight 0 are left out,
    other weights are ignored (this loss has no per-negative weighting).
    """

    def slcwa(self, positive: Tensor, negative: Tensor, weights: Tensor | None = None) -> Tensor:
        if weights is not None:
            negative = negative.masked_fill(weights == 0, float("-inf"))
        logits = torch.cat([positive[:, None], negative], dim=1)  # [B, 1 + K]
        return -(logits.log_softmax(dim=1)[:, 0]).mean()

    def kvsall(self, scores: Tensor, targets: Tensor) -> Tensor:
        distribution = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)  # [B, N]
        return -(distribution * scores.log_softmax(dim=1)).sum(dim=1).mean()

    supports_fused_kvsall = True

    def kvsall_fused_(self, scores: Tensor, targets: KvsAllTargets, num_rows: int) -> float:
        return cross_entropy_fused_(scores, targets, num_rows)


loss_resolver: DottedPathResolver[Loss] = DottedPathResolver(
    [MarginRankingLoss, SoftplusLoss, BCELoss, CrossEntropyLoss],
    base=Loss,
    default=BCELoss,
    synonyms={
        "margin": MarginRankingLoss,
        "logistic": SoftplusLoss,
        "ce": CrossEntropyLoss,
        "kl": CrossEntropyLoss,
    },
)
"""Losses by name: ``marginranking``/``margin``, ``softplus``/``logistic``, ``bce``, ``crossentropy``/``ce``.

A user-defined :class:`Loss` subclass can be passed directly as a class or instance; to find it by name in a
YAML config, register it first with ``loss_resolver.register(MyLoss)``.
"""
