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

**Millions of entities.** The fused step still holds one ``[B, N]`` score matrix: 2.5 GB for
``ogbl-wikikg2``'s 2.5M entities and a batch of 256. :func:`sliced_kvsall_loss` bounds it: the
candidates are scored in slices of ``W`` entities (``B W <= max_elements``, :func:`slice_width`, 2^23 floats by default),
and each slice's loss, its gradient (in place, as above) and that gradient's pull-back to the
queries and the candidates are computed in one sweep, in the forward; the backward hands the summed
input gradients over (memory ``O(B W)`` plus the dense ``[N, d]`` table gradient, no recomputed
products). Softmax cross-entropy needs each row's log-sum-exp first: one more sweep of products.

The unfused losses (:meth:`gnnlm.train.losses.Loss.kvsall` on dense targets) stay the reference; the
tests check that values and gradients agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gnnlm.kge.gemm import MatmulNT

if TYPE_CHECKING:
    from gnnlm.kge.model import LinkPredictionModel
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
        scores: ``[b, W]`` float scores, :func:`column_major`; overwritten with ``d loss / d scores``.
            ``W = targets.num_cols`` (all candidates), or fewer for a slice of the candidates whose
            ``targets`` hold the slice's answers (columns relative to the slice) with
            ``num_cols = N``: the mean and the smoothing are over all ``N``, the slices' values add up.
        targets: the true answers of the ``b`` rows.
        num_rows: rows of the whole batch (the loss is a mean over ``num_rows * N`` elements; a batch
            scored in several blocks passes its total to each).

    Returns:
        This block's share of the loss (the sum over blocks is the batch's loss).
    """
    transposed = _check(scores)  # [N, b]
    # n: candidates of a whole row (targets.num_cols); scores may be a slice of them (sliced_kvsall_loss)
    eps, n = targets.label_smoothing, targets.num_cols
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


# -- slices of the candidates (millions of entities) -----------------------------------------------
#: Default budget, in floats, of one ``[B, W]`` slice of :func:`sliced_kvsall_loss` (32 MiB; a step
#: holds about three slices at once: the scores, their gradient and a product's output).
MAX_SLICE_ELEMENTS: int = 2**23


def slice_width(num_rows: int, num_cols: int, max_elements: int = MAX_SLICE_ELEMENTS) -> int:
    """Candidates per slice so that ``[num_rows, width]`` stays within ``max_elements`` floats."""
    return max(1, min(num_cols, max_elements // max(1, num_rows)))


@dataclass
class _SlicedTargets:
    """The targets of a ``[b, N]`` block grouped by column, to cut out those of a slice cheaply."""

    targets: KvsAllTargets
    order: Tensor  # [nnz] targets sorted by column
    sorted_cols: Tensor  # [nnz]

    @classmethod
    def of(cls, targets: KvsAllTargets) -> _SlicedTargets:
        sorted_cols, order = torch.sort(targets.cols)
        return cls(targets, order, sorted_cols)

    def slice(self, a: int, b: int) -> KvsAllTargets:
        """The answers in columns ``[a, b)``, columns relative to ``a``, ``num_cols`` still ``N``."""
        lo, hi = torch.searchsorted(
            self.sorted_cols, torch.tensor([a, b], device=self.order.device)
        )
        pick = self.order[lo:hi]
        t = self.targets
        return KvsAllTargets(
            t.rows[pick], t.cols[pick] - a, t.num_rows, t.num_cols, t.label_smoothing
        )


def _entity_major(scores: Tensor) -> Tensor:
    """``scores: [b, W]`` as float32 stored entity-major (a copy unless it already is)."""
    scores = scores.float()
    return scores if column_major(scores) else scores.t().contiguous().t()


def _is_softmax(loss: Loss) -> bool:
    from gnnlm.train.losses import CrossEntropyLoss

    return isinstance(loss, CrossEntropyLoss)


class _SlicedKvsAllLoss(torch.autograd.Function):
    """The KvsAll loss of ``score(*queries, candidates[a:b])`` over slices; the gradients of the
    inputs are computed slice by slice in the forward sweep and handed over by the backward."""

    @staticmethod
    def forward(ctx, loss, score, targets, num_rows, width, num_queries, candidates, *rest):
        queries, params = rest[:num_queries], rest[num_queries:]
        n = len(candidates)
        slices = [(a, min(a + width, n)) for a in range(0, n, width)]
        by_col = _SlicedTargets.of(targets)
        needs_grad = any(ctx.needs_input_grad[6:])
        softmax = None
        if _is_softmax(loss):  # a first sweep for the row-wise log-sum-exp
            with _replayed_random_state(candidates.device):
                value, softmax = _softmax_stats(
                    score, queries, candidates, slices, by_col, num_rows
                )
            if not needs_grad:
                ctx.grads = None
                return candidates.new_tensor(value)
        else:
            value = 0.0
        grad_candidates = torch.zeros_like(candidates) if ctx.needs_input_grad[6] else None
        grad_rest = [torch.zeros_like(t) for t in rest]
        leaves = [q.detach().requires_grad_(q.requires_grad) for q in queries]
        for a, b in slices:
            part = by_col.slice(a, b)
            cand = candidates[a:b].detach().requires_grad_(candidates.requires_grad)
            with torch.enable_grad():
                scores = score(*leaves, cand)  # [B, W], with a graph when needed
            # the gradient overwrites this copy (the product's output may be kept by its graph)
            block = scores.detach().float().t().clone(memory_format=torch.contiguous_format).t()
            if softmax is not None:
                _softmax_gradient_(block, part, softmax)
            else:
                value += loss.kvsall_fused_(block, part, num_rows)
            if not needs_grad or not scores.requires_grad:
                continue
            inputs = [t for t in (*leaves, cand, *params) if t.requires_grad]
            grads = iter(torch.autograd.grad(scores, inputs, block, allow_unused=True))
            for i, leaf in enumerate((*leaves, cand, *params)):
                g = next(grads) if leaf.requires_grad else None
                if g is None:
                    continue
                if leaf is cand:
                    grad_candidates[a:b] = g
                else:
                    grad_rest[i if i < len(leaves) else i - 1].add_(g)
        ctx.grads = (grad_candidates, *grad_rest) if needs_grad else None
        return candidates.new_tensor(value)

    @staticmethod
    def backward(ctx, grad_output):
        grads = ctx.grads
        if grads is None:
            raise RuntimeError("the sliced KvsAll loss can be backpropagated only once")
        ctx.grads = None  # handed over, not kept
        if grad_output.device.type != "cpu" or float(grad_output) != 1.0:
            grads = tuple(g.mul_(grad_output) if g is not None else None for g in grads)
        return (None, None, None, None, None, None, *grads)


@contextlib.contextmanager
def _replayed_random_state(device: torch.device) -> Iterator[None]:
    """Run a block, then put the random state back as it was before it: the next block draws the
    same numbers (the softmax's statistics sweep and its gradient sweep see the same dropout)."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        yield


@dataclass
class _SoftmaxStats:
    logsumexp: Tensor  # [B]
    scale: float  # 1 / num_rows
    inv_mass: Tensor  # [B] 1 / sum of each row's smoothed targets (0 for an empty row)
    active: Tensor  # [B] rows with some target mass
    num_cols: int
    eps: float


@torch.no_grad()
def _softmax_stats(score, queries, candidates, slices, by_col, num_rows):
    """Sweep 1 of the sliced cross-entropy: the loss and each row's log-sum-exp (online)."""
    t = by_col.targets
    eps, n = t.label_smoothing, t.num_cols
    b, device = t.num_rows, candidates.device
    counts = torch.bincount(t.rows, minlength=b).float()  # [B]
    mass = (1.0 - eps) * counts + eps
    active = mass > 0
    inv_mass = torch.where(active, 1.0 / mass.clamp_min(1e-30), torch.zeros_like(mass))
    top = torch.full((b,), float("-inf"), device=device)  # running maximum
    z, row_sum, positive_sum = (torch.zeros(b, device=device) for _ in range(3))
    for a, c in slices:
        block = score(*queries, candidates[a:c]).float()  # [B, W]
        part = by_col.slice(a, c)
        positive_sum.index_add_(0, part.rows, block[part.rows, part.cols])
        if eps:
            row_sum += block.sum(1)
        new_top = torch.maximum(top, block.amax(1))
        z.mul_(torch.exp(top - new_top)).add_(torch.exp(block - new_top[:, None]).sum(1))
        top = new_top
    logsumexp = top + z.log()  # [B]
    scale = 1.0 / num_rows
    loss = (logsumexp - ((eps / n) * row_sum + (1.0 - eps) * positive_sum) * inv_mass)[active]
    stats = _SoftmaxStats(logsumexp, scale, inv_mass, active, n, eps)
    return float(loss.sum()) * scale, stats


def _softmax_gradient_(block: Tensor, part: KvsAllTargets, stats: _SoftmaxStats) -> None:
    """Overwrite ``block: [B, W]`` (a slice of the scores) with its cross-entropy gradient."""
    factor = stats.active.float() * stats.scale  # [B]
    offset = (stats.eps / stats.num_cols) * stats.scale * stats.inv_mass  # [B]
    block.sub_(stats.logsumexp[:, None]).exp_().mul_(factor[:, None]).sub_(offset[:, None])
    block[part.rows, part.cols] -= (1.0 - stats.eps) * stats.scale * stats.inv_mass[part.rows]


def sliced_kvsall_loss(
    loss: Loss,
    score: Callable[..., Tensor],
    queries: tuple[Tensor, ...],
    candidates: Tensor,
    targets: KvsAllTargets,
    num_rows: int | None = None,
    *,
    width: int | None = None,
    params: tuple[Tensor, ...] = (),
) -> Tensor:
    """The KvsAll loss of ``score(*queries, candidates) [B, N]`` in ``[B, W]`` slices of candidates.

    Equals ``fused_kvsall_loss(loss, score(*queries, candidates), targets, num_rows)`` in value and
    gradients (float rounding), holding one ``[B, W]`` slice at a time instead of ``[B, N]``.

    Args:
        loss: a loss with ``supports_fused_kvsall`` (BCE, softplus, cross-entropy).
        score: ``score(*queries, candidate_slice [W, d]) -> [B, W]``, e.g. an interaction's
            ``score_t`` with ``queries = (h [B, d_e], r [B, d_r])``. Called once per slice (twice
            for cross-entropy, the random state replayed so that dropout draws the same masks in
            both sweeps); a score with dropout on the queries draws one mask per slice (the
            unsliced call draws one for all candidates), and batch norm in train mode updates its
            running statistics at every call.
        queries: the query-side tensors (gradients flow back to them).
        candidates: ``[N, d]`` candidate representations (e.g. every entity).
        targets: the true answers of the ``B`` rows (``num_cols = N``).
        num_rows: rows of the whole batch (default ``B``).
        width: candidates per slice (default :func:`slice_width` of ``B`` and ``N``).
        params: tensors ``score`` uses besides its arguments that need gradients (an
            interaction's own weights, e.g. TuckER's core): ``tuple(interaction.parameters())``.

    Returns:
        Scalar loss (this block's share).
    """
    if not loss.supports_fused_kvsall:
        raise ValueError(f"the {type(loss).__name__} loss has no fused KvsAll form")
    if targets.num_cols != len(candidates):
        raise ValueError(
            f"targets have {targets.num_cols} columns for {len(candidates)} candidates"
        )
    num_rows = targets.num_rows if num_rows is None else num_rows
    width = width or slice_width(targets.num_rows, len(candidates))
    return _SlicedKvsAllLoss.apply(
        loss, score, targets, num_rows, width, len(queries), candidates, *queries, *params
    )


def sliced_side_loss(
    model: LinkPredictionModel,
    loss: Loss,
    reps: tuple[Tensor, Tensor],
    anchors: Tensor,
    relations: Tensor,
    side: int,
    targets: KvsAllTargets,
    num_rows: int | None = None,
    *,
    max_elements: int = MAX_SLICE_ELEMENTS,
) -> Tensor:
    """:func:`sliced_kvsall_loss` of one side of a KvsAll batch, as :class:`~gnnlm.train.loops.
    KvsAllLoop` scores it: ``side=0`` tail queries ``(anchor, relation, ?)`` (``score_t``),
    ``side=1`` head queries ``(?, relation, anchor)`` (``score_h``).

    Args:
        model: the link-prediction model (its interaction scores the slices).
        loss: the loss.
        reps: ``model.representations()``: ``(entity [N, d_e], relation [R', d_r])``.
        anchors: ``[b]`` anchor entity of each query; relations: ``[b]`` their relations.
        side: 0 (tails) or 1 (heads).
        targets: the true answers of the ``b`` queries.
        num_rows: rows of the whole batch (default ``b``).
        max_elements: floats of one ``[b, W]`` slice (:func:`slice_width`).
    """
    ent, rel = reps
    interaction = model.interaction
    anchor = ent.index_select(0, anchors)  # [b, d_e]
    relation = rel.index_select(0, relations)  # [b, d_r]
    if side == 0:
        score, queries = interaction.score_t, (anchor, relation)
    else:
        score = lambda r, t, candidates: interaction.score_h(candidates, r, t)  # noqa: E731
        queries = (relation, anchor)
    params = tuple(p for p in interaction.parameters() if p.requires_grad)
    width = slice_width(len(anchors), len(ent), max_elements)
    return sliced_kvsall_loss(
        loss, score, queries, ent, targets, num_rows, width=width, params=params
    )
