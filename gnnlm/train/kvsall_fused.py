"""Fused KvsAll (1-N) losses: the loss and its gradient w.r.t. the scores in one pass, in place.

The unfused step materialises, besides the ``[B, N]`` scores, a dense ``[B, N]`` float target matrix
(plus its label-smoothed copy), the loss's element-wise intermediates and, in the backward, a
``[B, N]`` gradient. Here the targets stay index lists (:class:`KvsAllTargets`: the ``nnz`` true
answers of the batch) and the loss walks over the score matrix in cache-sized row slices, adding up
the loss and overwriting each slice with ``d loss / d scores``:

* binary cross-entropy with logits (:class:`~gnnlm.train.losses.BCELoss`, and
  :class:`~gnnlm.train.losses.SoftplusLoss` whose margin shifts the logits), targets
  :math:`y = (1 - \\varepsilon) 1[\\text{true}] + \\varepsilon / N`:
  :math:`\\ell = \\frac{1}{BN}\\sum \\operatorname{softplus}(s) - y s`,
  :math:`\\partial \\ell / \\partial s = (\\sigma(s) - y) / (BN)`;
* softmax cross-entropy against the row-normalised targets :math:`p = y / \\sum_j y_j`
  (:class:`~gnnlm.train.losses.CrossEntropyLoss`):
  :math:`\\ell = \\frac{1}{B}\\sum_i \\operatorname{logsumexp}(s_i) - p_i \\cdot s_i`,
  :math:`\\partial \\ell / \\partial s_i = (\\operatorname{softmax}(s_i) - p_i) / B`.

:func:`fused_kvsall_loss` wraps this in an autograd function. When the scores come straight out of
:class:`gnnlm.kge.gemm.MatmulNT` (DistMult, ComplEx, TuckER and ConvE tails), which does not keep its
output, the gradient is written into the score buffer itself, so one step holds a single ``[B, N]``
matrix and the backward is just the two products ``dQ = G @ E`` and ``dE = G.T @ Q``. Otherwise
(scores computed by other ops, which might keep them) it works on a copy.

The unfused losses (:meth:`gnnlm.train.losses.Loss.kvsall` on dense targets) stay the reference; the
tests check that values and gradients agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnlm.kge.gemm import MatmulNT

if TYPE_CHECKING:
    from gnnlm.train.losses import Loss

#: Floats per row slice of the fused passes (1 MiB: a slice is still in cache for its next pass).
SLICE_ELEMENTS: int = 2**18


@dataclass
class KvsAllTargets:
    """Multi-hot targets of a ``[num_rows, num_cols]`` score block as the positions of its ones.

    Attributes:
        rows: ``[nnz]`` row of each true answer.
        cols: ``[nnz]`` column (entity id) of each true answer; ``(row, col)`` pairs are distinct.
        num_rows: rows of the block (a row may have no true answer).
        num_cols: candidates per row (``num_entities``).
        label_smoothing: ``eps``: the dense targets are ``(1 - eps) * y + eps / num_cols``.
    """

    rows: Tensor
    cols: Tensor
    num_rows: int
    num_cols: int
    label_smoothing: float = 0.0

    def dense(self) -> Tensor:
        """The ``[num_rows, num_cols]`` smoothed float targets (the unfused losses' input)."""
        targets = torch.zeros(self.num_rows, self.num_cols, device=self.rows.device)
        targets[self.rows, self.cols] = 1.0
        if self.label_smoothing:
            eps = self.label_smoothing
            targets = (1.0 - eps) * targets + eps / self.num_cols
        return targets

    def to(self, device: torch.device | str) -> KvsAllTargets:
        return KvsAllTargets(
            self.rows.to(device),
            self.cols.to(device),
            self.num_rows,
            self.num_cols,
            self.label_smoothing,
        )


def _slices(scores: Tensor) -> list[tuple[int, int]]:
    step = max(1, SLICE_ELEMENTS // max(1, scores.shape[1]))
    return [(a, min(a + step, len(scores))) for a in range(0, len(scores), step)]


@torch.no_grad()
def bce_with_logits_fused_(
    scores: Tensor, targets: KvsAllTargets, num_rows: int, margin: float = 0.0
) -> float:
    """Binary cross-entropy with logits ``scores + margin``, in place.

    Args:
        scores: ``[b, N]`` contiguous float scores; overwritten with ``d loss / d scores``.
        targets: the true answers of the ``b`` rows.
        num_rows: rows of the whole batch (the loss is a mean over ``num_rows * N`` elements; a batch
            scored in several blocks passes its total to each).

    Returns:
        This block's share of the loss (the sum over blocks is the batch's loss).
    """
    eps, n = targets.label_smoothing, scores.shape[1]
    scale = 1.0 / (num_rows * n)
    positive = scores[targets.rows, targets.cols] + margin  # [nnz] logits of the true answers
    softplus_sum, logit_sum = 0.0, 0.0
    for a, b in _slices(scores):
        block = scores[a:b]  # [s, N] view
        if margin:
            block.add_(margin)
        if eps:
            logit_sum += float(block.sum())
        softplus_sum += float(F.softplus(block).sum())
        block.sigmoid_().sub_(eps / n).mul_(scale)  # (sigmoid(s) - eps / N) / (B N)
    # The true answers' targets carry another (1 - eps).
    scores[targets.rows, targets.cols] = (torch.sigmoid(positive) - (1.0 - eps + eps / n)) * scale
    total = softplus_sum - (eps / n) * logit_sum - (1.0 - eps) * float(positive.sum())
    return total * scale


@torch.no_grad()
def cross_entropy_fused_(scores: Tensor, targets: KvsAllTargets, num_rows: int) -> float:
    """Softmax cross-entropy against the row-normalised targets, in place.

    Args:
        scores: ``[b, N]`` contiguous float scores; overwritten with ``d loss / d scores``.
        targets: the true answers of the ``b`` rows.
        num_rows: rows of the whole batch (the loss is a mean over rows).

    Returns:
        This block's share of the loss. A row whose targets are all 0 (no true answer, no smoothing)
        contributes 0 and gets a zero gradient, like the unfused loss.
    """
    eps, n = targets.label_smoothing, scores.shape[1]
    scale = 1.0 / num_rows
    counts = torch.bincount(targets.rows, minlength=len(scores)).to(scores.dtype)  # [b]
    mass = (1.0 - eps) * counts + eps  # [b] sum of each row's smoothed targets
    inv_mass = torch.where(mass > 0, 1.0 / mass.clamp_min(1e-30), torch.zeros_like(mass))  # [b]
    positive = scores[targets.rows, targets.cols]  # [nnz]
    positive_sum = torch.zeros_like(mass).index_add_(0, targets.rows, positive)  # [b]
    logsumexp = torch.empty_like(mass)  # [b]
    row_sum = torch.zeros_like(mass)  # [b]
    for a, b in _slices(scores):
        block = scores[a:b]  # [s, N] view
        if eps:
            row_sum[a:b] = block.sum(1)
        top = block.amax(1, keepdim=True)  # [s, 1]
        z = block.sub_(top).exp_().sum(1, keepdim=True)  # [s, 1]
        logsumexp[a:b] = (top + z.log())[:, 0]
        active = (mass[a:b, None] > 0).to(scores.dtype)  # [s, 1]
        block.mul_(active * scale / z).sub_((eps / n) * scale * inv_mass[a:b, None])
    loss = (logsumexp - ((eps / n) * row_sum + (1.0 - eps) * positive_sum) * inv_mass)[mass > 0]
    scores[targets.rows, targets.cols] -= (1.0 - eps) * scale * inv_mass[targets.rows]
    return float(loss.sum()) * scale


class _FusedKvsAllLoss(torch.autograd.Function):
    """``loss(scores)`` whose forward also computes the gradient; the backward hands it over."""

    @staticmethod
    def forward(
        ctx, scores: Tensor, loss: Loss, targets: KvsAllTargets, num_rows: int, in_place: bool
    ) -> Tensor:
        buffer = scores if in_place else scores.contiguous().clone()  # [b, N]
        value = loss.kvsall_fused_(buffer, targets, num_rows)
        ctx.gradient = buffer
        return scores.new_tensor(value)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        gradient = ctx.gradient
        if gradient is None:
            raise RuntimeError("the fused KvsAll loss can be backpropagated only once")
        ctx.gradient = None  # one [B, N] buffer: handed to the products' backward, not kept
        return gradient.mul_(grad_output), None, None, None, None


def fused_kvsall_loss(
    loss: Loss, scores: Tensor, targets: KvsAllTargets, num_rows: int | None = None
) -> Tensor:
    """The KvsAll loss of ``scores: [b, N]`` against sparse ``targets``, with a fused backward.

    Equals ``loss.kvsall(scores, targets.dense())`` (for ``num_rows = b``) in value and gradient. When
    ``scores`` is the direct output of :class:`gnnlm.kge.gemm.MatmulNT`, its storage is reused for the
    gradient: ``scores`` must not be read after this call.

    Args:
        loss: a loss with ``supports_fused_kvsall``.
        scores: ``[b, N]`` scores.
        targets: true answers of the ``b`` rows.
        num_rows: rows of the whole batch when it is scored in blocks (default ``b``); the per-block
            values then add up to the batch's loss.

    Returns:
        Scalar loss (this block's share).
    """
    num_rows = len(scores) if num_rows is None else num_rows
    if not (torch.is_grad_enabled() and scores.requires_grad):
        with torch.no_grad():
            return scores.new_tensor(loss.kvsall_fused_(scores.clone(), targets, num_rows))
    # Overwrite the score buffer only when MatmulNT made it: that node keeps no reference to it.
    in_place = isinstance(scores.grad_fn, MatmulNT._backward_cls) and scores.is_contiguous()
    return _FusedKvsAllLoss.apply(scores, loss, targets, num_rows, in_place)
