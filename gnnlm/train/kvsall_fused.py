"""Fused KvsAll (1-N) losses: the loss and its gradient w.r.t. the scores in one pass, in place.

The unfused step materialises, besides the ``[B, N]`` scores, a dense ``[B, N]`` float target matrix
(plus its label-smoothed copy), the loss's element-wise intermediates and, in the backward, a
``[B, N]`` gradient. Here the targets stay index lists (:class:`KvsAllTargets`: the ``nnz`` true
answers of the batch) and the loss walks over the score matrix in cache-sized slices, adding up the
loss and overwriting each slice with ``d loss / d scores``. The scores are stored entity-major
(``scores.t()`` contiguous, the layout :class:`gnnlm.kge.gemm.MatmulNT` produces because BLAS is
fastest there), so a slice is a range of entities for every query of the block:

* binary cross-entropy with logits (:class:`~gnnlm.train.losses.BCELoss`, and
  :class:`~gnnlm.train.losses.SoftplusLoss` whose margin shifts the logits), targets
  :math:`y = (1 - \\varepsilon) 1[\\text{true}] + \\varepsilon / N`:
  :math:`\\ell = \\frac{1}{BN}\\sum \\operatorname{softplus}(s) - y s`,
  :math:`\\partial \\ell / \\partial s = (\\sigma(s) - y) / (BN)`;
* softmax cross-entropy against the row-normalised targets :math:`p = y / \\sum_j y_j`
  (:class:`~gnnlm.train.losses.CrossEntropyLoss`):
  :math:`\\ell = \\frac{1}{B}\\sum_i \\operatorname{logsumexp}(s_i) - p_i \\cdot s_i`,
  :math:`\\partial \\ell / \\partial s_i = (\\operatorname{softmax}(s_i) - p_i) / B`, with an
  online log-sum-exp over the entity slices (two sweeps).

:func:`fused_kvsall_loss` wraps this in an autograd function. When the scores come straight out of
:class:`gnnlm.kge.gemm.MatmulNT` (DistMult, ComplEx, TuckER and ConvE tails), which does not keep its
output, the gradient is written into the score buffer itself, so one step holds a single ``[B, N]``
matrix and the backward is just the two products ``dQ = G @ E`` and ``dE = G.T @ Q``. Otherwise
(scores computed by other ops, which might keep them) it works on a copy.

The unfused losses (:meth:`gnnlm.train.losses.Loss.kvsall` on dense targets) stay the reference; the
tests check that values and gradients agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gnnlm.kge.gemm import MatmulNT

if TYPE_CHECKING:
    from gnnlm.train.losses import Loss

#: Floats per slice of the fused passes (1 MiB: a slice is still in cache for its next pass).
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


def column_major(scores: Tensor) -> bool:
    """Whether ``scores: [b, N]`` is stored entity-major (``scores.t()`` contiguous), the layout of
    :class:`gnnlm.kge.gemm.MatmulNT`'s output and of the fused losses' input."""
    return scores.t().is_contiguous()


def _slices(transposed: Tensor) -> list[tuple[int, int]]:
    """Row ranges of ``transposed: [N, b]`` of about :data:`SLICE_ELEMENTS` floats each."""
    step = max(1, SLICE_ELEMENTS // max(1, transposed.shape[1]))
    return [(a, min(a + step, len(transposed))) for a in range(0, len(transposed), step)]


def _check(scores: Tensor) -> Tensor:
    if scores.ndim != 2 or not column_major(scores):
        raise ValueError(
            "fused KvsAll losses need [b, N] scores stored entity-major (scores.t() contiguous), "
            f"got shape {tuple(scores.shape)} with strides {scores.stride()}"
        )
    return scores.t()  # [N, b] contiguous


@torch.no_grad()
def bce_with_logits_fused_(
    scores: Tensor, targets: KvsAllTargets, num_rows: int, margin: float = 0.0
) -> float:
    """Binary cross-entropy with logits ``scores + margin``, in place.

    Args:
        scores: ``[b, N]`` float scores, :func:`column_major`; overwritten with ``d loss / d scores``.
        targets: the true answers of the ``b`` rows.
        num_rows: rows of the whole batch (the loss is a mean over ``num_rows * N`` elements; a batch
            scored in several blocks passes its total to each).

    Returns:
        This block's share of the loss (the sum over blocks is the batch's loss).
    """
    transposed = _check(scores)  # [N, b]
    eps, n = targets.label_smoothing, scores.shape[1]
    scale = 1.0 / (num_rows * n)
    positive = scores[targets.rows, targets.cols] + margin  # [nnz] logits of the true answers
    softplus_sum, logit_sum = 0.0, 0.0
    for a, b in _slices(transposed):
        block = transposed[a:b]  # [s, b] view, in cache for the passes below
        if margin:
            block.add_(margin)
        if eps:
            logit_sum += float(block.sum())
        # softplus(s) = relu(s) - log(sigmoid(|s|)) = relu(s) - log(max(p, 1 - p)) with p = sigmoid(s):
        # one exp and one log per element instead of F.softplus's two transcendentals + sigmoid's.
        softplus_sum += float(block.clamp_min(0.0).sum())
        p = block.sigmoid_()
        softplus_sum -= float(torch.maximum(p, 1.0 - p).log_().sum())
        p.sub_(eps / n).mul_(scale)  # (sigmoid(s) - eps / N) / (B N)
    # The true answers' targets carry another (1 - eps).
    scores[targets.rows, targets.cols] = (torch.sigmoid(positive) - (1.0 - eps + eps / n)) * scale
    total = softplus_sum - (eps / n) * logit_sum - (1.0 - eps) * float(positive.sum())
    return total * scale


@torch.no_grad()
def cross_entropy_fused_(scores: Tensor, targets: KvsAllTargets, num_rows: int) -> float:
    """Softmax cross-entropy against the row-normalised targets, in place.

    Two sweeps over the entity-major scores: an online log-sum-exp (running maximum, rescaled sum)
    that leaves ``exp(s - running max)`` in place, then one scaling into the softmax gradient.

    Args:
        scores: ``[b, N]`` float scores, :func:`column_major`; overwritten with ``d loss / d scores``.
        targets: the true answers of the ``b`` rows.
        num_rows: rows of the whole batch (the loss is a mean over rows).

    Returns:
        This block's share of the loss. A row whose targets are all 0 (no true answer, no smoothing)
        contributes 0 and gets a zero gradient, like the unfused loss.
    """
    transposed = _check(scores)  # [N, b]
    eps, (b, n) = targets.label_smoothing, scores.shape
    scale = 1.0 / num_rows
    counts = torch.bincount(targets.rows, minlength=b).to(scores.dtype)  # [b]
    mass = (1.0 - eps) * counts + eps  # [b] sum of each row's smoothed targets
    active = mass > 0  # [b]
    inv_mass = torch.where(active, 1.0 / mass.clamp_min(1e-30), torch.zeros_like(mass))  # [b]
    positive = scores[targets.rows, targets.cols]  # [nnz]
    positive_sum = torch.zeros_like(mass).index_add_(0, targets.rows, positive)  # [b]
    row_sum = torch.zeros_like(mass)  # [b]
    top = torch.full_like(mass, float("-inf"))  # [b] running maximum
    z = torch.zeros_like(mass)  # [b] running sum of exp(s - top)
    shifts = []
    slices = _slices(transposed)
    for a, c in slices:
        block = transposed[a:c]  # [s, b] view
        if eps:
            row_sum += block.sum(0)
        new_top = torch.maximum(top, block.amax(0))  # [b]
        z.mul_(torch.exp(top - new_top)).add_(block.sub_(new_top).exp_().sum(0))
        top = new_top
        shifts.append(new_top)
    logsumexp = top + z.log()  # [b]
    offset = (eps / n) * scale * inv_mass  # [b] the smoothing part of the targets
    factor = active.to(scores.dtype) * scale / z  # [b]
    for (a, c), shift in zip(slices, shifts):
        # exp(s - shift) * exp(shift - top) / z = softmax(s)
        transposed[a:c].mul_(torch.exp(shift - top) * factor).sub_(offset)
    loss = (logsumexp - ((eps / n) * row_sum + (1.0 - eps) * positive_sum) * inv_mass)[active]
    scores[targets.rows, targets.cols] -= (1.0 - eps) * scale * inv_mass[targets.rows]
    return float(loss.sum()) * scale


class _Lease:
    """One use of a :class:`ScoreBuffer`, held until the loss's backward has started."""

    busy: bool = True

    def release(self) -> None:
        self.busy = False


class ScoreBuffer:
    """A flat float buffer for the ``[B, N]`` scores of consecutive fused steps.

    Writing each step's product into the same memory (see :func:`gnnlm.kge.gemm.training_output`)
    saves the page faults of a fresh multi-megabyte allocation per step. :meth:`acquire` hands out the
    buffer again only once the previous step's backward has released it; otherwise (gradient
    accumulation over several batches, a graph dropped without backward) it allocates a new one.
    """

    def __init__(self) -> None:
        self._buffer: Tensor | None = None
        self._lease: _Lease | None = None

    def acquire(self, numel: int, device: torch.device) -> tuple[Tensor, Callable[[], None]]:
        """A ``[>= numel]`` float32 buffer and the callback that releases it."""
        if (
            self._buffer is None
            or (self._lease is not None and self._lease.busy)
            or self._buffer.numel() < numel
            or self._buffer.device != device
        ):
            self._buffer = torch.empty(numel, device=device)
        self._lease = _Lease()
        return self._buffer, self._lease.release


class _FusedKvsAllLoss(torch.autograd.Function):
    """``loss(scores)`` whose forward also computes the gradient; the backward hands it over."""

    @staticmethod
    def forward(
        ctx,
        scores: Tensor,
        loss: Loss,
        targets: KvsAllTargets,
        num_rows: int,
        in_place: bool,
        on_backward: Callable[[], None] | None,
    ) -> Tensor:
        ctx.on_backward = on_backward
        buffer = (
            scores if in_place else scores.t().clone(memory_format=torch.contiguous_format).t()
        )  # [b, N] copy
        value = loss.kvsall_fused_(buffer, targets, num_rows)
        ctx.gradient = buffer
        return scores.new_tensor(value)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        gradient = ctx.gradient
        if gradient is None:
            raise RuntimeError("the fused KvsAll loss can be backpropagated only once")
        ctx.gradient = None  # one [B, N] buffer: handed to the products' backward, not kept
        if ctx.on_backward is not None:
            ctx.on_backward()
        if grad_output.device.type != "cpu" or float(grad_output) != 1.0:
            gradient.mul_(grad_output)  # (skipped for the usual 1: a sweep over [B, N])
        return gradient, None, None, None, None, None


def fused_kvsall_loss(
    loss: Loss,
    scores: Tensor,
    targets: KvsAllTargets,
    num_rows: int | None = None,
    *,
    on_backward: Callable[[], None] | None = None,
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
        on_backward: called when the backward starts (e.g. :class:`ScoreBuffer`'s release).

    Returns:
        Scalar loss (this block's share).
    """
    num_rows = len(scores) if num_rows is None else num_rows
    if not (torch.is_grad_enabled() and scores.requires_grad):
        with torch.no_grad():
            copy = scores.t().clone(memory_format=torch.contiguous_format).t()  # [b, N]
            return scores.new_tensor(loss.kvsall_fused_(copy, targets, num_rows))
    # Overwrite the score buffer only when MatmulNT made it: that node keeps no reference to it.
    in_place = isinstance(scores.grad_fn, MatmulNT._backward_cls) and column_major(scores)
    return _FusedKvsAllLoss.apply(scores, loss, targets, num_rows, in_place, on_backward)
