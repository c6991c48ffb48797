"""Exact, fast filtered rank-based evaluation of link prediction (head and tail side).

For a test triple ``(h, r, t)`` the tail side ranks ``t`` among all entities by ``score(h, r, .)``; the
filtered setting (Bordes et al. 2013) first removes every *other* known true tail of ``(h, r)``. Ties
are broken *realistically*: the rank is the mean of the optimistic rank (``1 + #better``) and the
pessimistic rank (``#better + #equal``, the target included), i.e. the expected rank under a random
order of tied candidates (Berrendorf et al. 2020).

The algorithm, per side:

1. Group the queries: test triples that share ``(h, r)`` share one row of scores, so each unique
   query is scored once (on FB15k-237 this removes 44 % of the 1-N products).
2. For a block of unique queries, one ``model.score_t``/``score_h`` call gives ``[Q, N]`` scores
   (one GEMM for DistMult/ComplEx/TuckER).
3. Read each target's true score, then overwrite the filtered entities of each row with ``-inf``
   (a scatter of the CSR from :class:`~gnnlm.data.FilterIndex`; no dense mask). A filtered target is
   itself overwritten; it is added back to the tie count.
4. Count better and tied candidates in one pass per target over its row, in cache-sized slices:
   ``s = sign(scores - true)``, ``sum(s) = #better - #worse`` and ``sum(|s|) = N - #equal``. IEEE
   subtraction is exact about sign (``a - b == 0`` iff ``a == b`` for finite floats), so these counts
   equal those of the comparisons ``scores > true`` / ``scores == true``; partial sums of ``+-1`` are
   exact integers in float32 up to ``2**24`` entities.

Peak extra memory is one ``[Q, N]`` block (``max_scores`` floats) plus one slice.

**Millions of entities.** When a single row of scores does not fit in ``max_scores``, or fewer than
:data:`MIN_QUERIES_PER_BLOCK` do (``N`` above ~500k for the default budget) and 1-N scoring is a
matrix product (``supports_gemm``), a block of ``Q`` queries is scored against *slices of entities*
instead, ``[Q, W]`` at a time with ``Q W <= max_scores``
(:meth:`RankBasedEvaluator._rank_side_sliced`): a first sweep reads the true scores from the slices
that hold the targets, a second one filters each slice and adds up its better / unequal counts. The
slices are scored by the same call with the same shapes in both sweeps, so the comparisons are
those of one score matrix; the counts equal the unsliced path's (tested), memory stays at
``max_scores`` floats whatever ``N``, and the products stay matrix-matrix (``Q`` queries at once)
instead of one matrix-vector product per query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import Tensor

from gnnlm.data.filter_index import FilterIndex
from gnnlm.eval.metrics import HEADLINE_KS, RankBasedMetrics
from gnnlm.kge.model import LinkPredictionModel
from gnnlm.utils.modules import eval_mode
from gnnlm.utils.progress import progress as progress_bar

SIDES = ("head", "tail")


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run the counting loop's many small CPU ops on one thread.

    Each op on a cache-sized slice is too small to gain from intra-op threads (the whole loop is ~10 %
    of an evaluation), and every op would be a fork/join barrier: on a busy machine a barrier waits for
    a descheduled worker, which measured 0.23 s -> 33 s for this loop with two threads at load 8 on two
    cores. The 1-N products (few, large) keep all threads.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _num_threads(threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)`` (``None``: unchanged); the caller's count is restored."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: The evaluator's default intra-op thread count (see :class:`RankBasedEvaluator`, ``num_threads``).
DEFAULT_NUM_THREADS: int | None = 1

#: Fewer queries per ``[Q, N]`` block than this and the evaluator scores entity slices instead.
MIN_QUERIES_PER_BLOCK: int = 16
#: Queries per block of the entity-sliced path (when ``batch_size`` is not given).
SLICED_QUERIES: int = 256
#: The column-major copy of the entity table (faster 1-N products) is made only below this many
#: floats (256 MiB): above, it would double a large table's memory (or read a memory-mapped one).
MAX_COPY_ELEMENTS: int = 2**26


class RankableModel(Protocol):
    """What the evaluator needs (:class:`gnnlm.kge.LinkPredictionModel` provides it)."""

    training: bool

    def representations(self) -> tuple[Tensor, Tensor]: ...
    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor: ...
    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor: ...
    def train(self, mode: bool = True) -> object: ...


class RankBasedEvaluator:
    """Filtered (or raw) rank-based link-prediction evaluation on both sides.

    Args:
        filter_index: known true triples to filter (usually ``kg.filter_index``: train + valid + test);
            ``None`` for the raw (unfiltered) setting.
        batch_size: unique queries scored per model call; default: as many as fit in ``max_scores``.
        max_scores: memory budget, in floats, of one ``[batch_size, num_entities]`` score block.
        ks: the ``k`` of Hits@k.
        sides: which sides to rank, ``("head", "tail")`` by default.
        quiet: no progress bar.
        slice_entities: score slices of entities (see the module docstring) instead of whole rows:
            ``None`` (auto) when one row does not fit in ``max_scores``, or fewer than
            :data:`MIN_QUERIES_PER_BLOCK` rows do and the interaction ``supports_gemm``; needs a
            :class:`~gnnlm.kge.LinkPredictionModel` (others are scored by whole rows). The ranks
            do not depend on it.
        num_threads: intra-op CPU threads while evaluating (``torch.set_num_threads``; the caller's
            count is restored afterwards); ``None`` keeps the caller's. The default, 1, is measured
            (``benchmarks/evaluator.py``, FB15k-237 test, ComplEx d=200, two cores): two threads gain
            at most ~1.6x on an idle machine and lose up to ~3-4x as soon as other processes keep
            the cores busy (every fork/join barrier then waits for a descheduled thread), while one
            thread is barely affected by load. Pass ``num_threads=None`` (or a count) on a machine
            you have to yourself. The ranks do not depend on it.

    Example:
        >>> evaluator = RankBasedEvaluator(kg.filter_index)  # doctest: +SKIP
        >>> evaluator.evaluate(model, kg.test).to_dict()["mrr"]  # doctest: +SKIP
    """

    def __init__(
        self,
        filter_index: FilterIndex | None = None,
        *,
        batch_size: int | None = None,
        max_scores: int = 2**23,
        ks: Sequence[int] = HEADLINE_KS,
        sides: Sequence[str] = SIDES,
        quiet: bool = True,
        num_threads: int | None = DEFAULT_NUM_THREADS,
        slice_entities: bool | None = None,
    ) -> None:
        unknown = set(sides) - set(SIDES)
        if unknown or not sides:
            raise ValueError(f"sides must be a non-empty subset of {SIDES}, got {tuple(sides)}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be positive or None, got {num_threads}")
        self.num_threads = num_threads
        self.filter_index = filter_index
        self.batch_size = batch_size
        self.max_scores = max_scores
        self.ks = tuple(ks)
        self.sides = tuple(sides)
        self.quiet = quiet
        self.slice_entities = slice_entities

    def sliced(self, model: RankableModel, num_entities: int) -> bool:
        """Whether :meth:`ranks` scores entity slices for ``model`` (see ``slice_entities``)."""
        if not isinstance(model, LinkPredictionModel):
            return False
        if self.slice_entities is not None:
            return self.slice_entities
        if num_entities > self.max_scores:  # not even one row fits the budget
            return True
        # Fewer than 16 rows per block: slices turn matrix-vector products into matrix-matrix ones
        # but cost a second sweep. DistMult d=32 at 2.5M entities: level on 300 test triples
        # (15.7 s against 15.8 s, benchmarks/scale.py), 1.9x faster on 150 (5.3 s against 10.2 s);
        # where 1-N scoring is no product the second sweep loses (TransE: 64 s against 34 s).
        few_rows = self.max_scores // max(1, num_entities) < MIN_QUERIES_PER_BLOCK
        return few_rows and model.interaction.supports_gemm

    @torch.no_grad()
    def evaluate(self, model: RankableModel, triples: Tensor) -> RankBasedMetrics:
        """Rank every triple of ``triples`` (``[n, 3]`` long) on each side and aggregate."""
        ranks = self.ranks(model, triples)
        return RankBasedMetrics.from_side_ranks(ranks, triples[:, 1].long(), self.ks)

    def ranks(self, model: RankableModel, triples: Tensor) -> dict[str, Tensor]:
        """``{side: [n] realistic ranks}`` (float64, half-integers), aligned with ``triples``."""
        triples = triples.long()
        if triples.ndim != 2 or triples.shape[1] != 3:
            raise ValueError(f"triples must be [n, 3], got {tuple(triples.shape)}")
        with eval_mode(model), _num_threads(self.num_threads):
            return self._ranks(model, triples)

    def _ranks(self, model: RankableModel, triples: Tensor) -> dict[str, Tensor]:
        """:meth:`ranks` once the model is in eval mode and the thread count set."""
        reps = model.representations()
        sliced = self.sliced(model, reps[0].shape[0])
        if (
            isinstance(model, LinkPredictionModel)
            and model.interaction.supports_gemm
            and reps[0].numel() <= MAX_COPY_ELEMENTS
            and not sliced  # a row slice of it is a strided operand: ~300x slower products (MKL)
        ):
            # Same [N, d] values, column-major storage: the 1-N products `q @ ent.t()` then read a
            # contiguous [d, N] operand (measured 2-10 % faster, MKL and oneDNN).
            reps = (reps[0].t().contiguous().t(), reps[1])
        num_entities = reps[0].shape[0]
        entities = triples[:, [0, 2]]
        if len(triples) and (entities.min() < 0 or entities.max() >= num_entities):
            row = int(((entities < 0) | (entities >= num_entities)).any(1).nonzero()[0])
            raise ValueError(
                f"triple {row} {triples[row].tolist()} has an entity id outside "
                f"[0, {num_entities}) of the model"
            )
        triples = triples.to(reps[0].device)  # rank where the model lives
        out = {}
        if sliced:
            for side in self.sides:
                keys, targets = (
                    (triples[:, [0, 1]], triples[:, 2])
                    if side == "tail"
                    else (triples[:, [1, 2]], triples[:, 0])
                )
                out[side] = self._rank_side_sliced(side, model, reps, keys, targets)
            return out
        for side in self.sides:
            if side == "tail":
                keys, targets = triples[:, [0, 1]], triples[:, 2]  # (h, r) -> t
                score = lambda k: model.score_t(k, reps=reps)  # noqa: E731
            else:
                keys, targets = triples[:, [1, 2]], triples[:, 0]  # (r, t) -> h
                score = lambda k: model.score_h(k, reps=reps)  # noqa: E731
            out[side] = self._rank_side(side, score, keys, targets, num_entities)
        return out

    def _filter(self, side: str, keys: Tensor) -> tuple[Tensor, Tensor]:
        assert self.filter_index is not None
        if side == "tail":
            return self.filter_index.tails(keys[:, 0], keys[:, 1])
        return self.filter_index.heads(keys[:, 0], keys[:, 1])

    def _rank_side(
        self,
        side: str,
        score: Callable[[Tensor], Tensor],
        keys: Tensor,
        targets: Tensor,
        num_entities: int,
    ) -> Tensor:
        n = len(keys)
        ranks = torch.empty(n, dtype=torch.float64)
        if n == 0:
            return ranks
        unique_keys, inverse = torch.unique(keys, dim=0, return_inverse=True)  # [U, 2], [n]
        order = torch.argsort(inverse, stable=True)  # triples grouped by unique query
        key_ptr = torch.zeros(len(unique_keys) + 1, dtype=torch.long)
        key_ptr[1:] = torch.bincount(inverse, minlength=len(unique_keys)).cumsum(0)
        block = self.batch_size or max(1, self.max_scores // max(1, num_entities))
        start = 0
        progress = progress_bar(total=n, desc=f"ranking {side}s", unit="triple", disable=self.quiet)
        while start < len(unique_keys):
            stop = min(start + block, len(unique_keys))
            scores = score(unique_keys[start:stop])  # [Q, N]
            idx = order[key_ptr[start] : key_ptr[stop]]  # [T] triples of this block
            rows = inverse[idx] - start  # [T] row of each triple in `scores`
            block_ranks = self._rank_block(
                side, scores, unique_keys[start:stop], rows, targets[idx]
            )
            ranks[idx.cpu()] = block_ranks.cpu()
            progress.update(len(idx))
            start = stop
        progress.close()
        return ranks

    def _rank_block(
        self, side: str, scores: Tensor, keys: Tensor, rows: Tensor, targets: Tensor
    ) -> Tensor:
        """Realistic ranks ``[T]`` of ``targets`` in their ``rows`` of ``scores`` ``[Q, N]``."""
        scores = scores.float().contiguous()  # owned below: the filter writes into it
        num_entities = scores.shape[1]
        true = scores[rows, targets]  # [T]
        if not torch.isfinite(true).all():
            bad = int(torch.nonzero(~torch.isfinite(true))[0])
            raise ValueError(
                f"the model gave a non-finite score {true[bad].item()} to a true {side} "
                f"(query {keys[rows[bad]].tolist()}, target {int(targets[bad])})"
            )
        filtered_self = torch.zeros_like(true)
        if self.filter_index is not None:
            ptr, values = self._filter(side, keys.cpu())  # CSR over the Q queries
            owner = torch.repeat_interleave(
                torch.arange(len(keys)), ptr.diff(), output_size=len(values)
            )
            flat = (owner * num_entities + values).to(scores.device)  # [nnz] positions in `scores`
            scores.view(-1).index_fill_(0, flat, float("-inf"))
            filtered_self = (
                scores[rows, targets] == float("-inf")
            ).float()  # [T] 1: target filtered
        better = torch.empty_like(true)
        unequal = torch.empty_like(true)
        step = max(1, 2**19 // num_entities)  # ~2 MiB slices stay in L2 cache
        buffer = scores.new_empty(min(step, len(rows)), num_entities)
        with _one_thread(scores.device):
            for a in range(0, len(rows), step):
                b = min(a + step, len(rows))
                diff = torch.index_select(scores, 0, rows[a:b], out=buffer[: b - a])  # [s, N]
                diff.sub_(true[a:b, None]).sign_()  # +1 better, 0 tie, -1 worse
                signed = diff.sum(1)  # [s]: #better - #worse
                unequal[a:b] = diff.abs_().sum(1)  # [s]: #better + #worse
                better[a:b] = (unequal[a:b] + signed) / 2
        if torch.isnan(unequal).any():
            raise ValueError(f"the model gave NaN scores to some candidate {side}s")
        equal = num_entities - unequal + filtered_self  # ties, the target included
        return better.double() + (equal.double() + 1.0) / 2.0

    # -- entity slices (millions of entities) ------------------------------------------------------
    def _rank_side_sliced(
        self,
        side: str,
        model: LinkPredictionModel,
        reps: tuple[Tensor, Tensor],
        keys: Tensor,
        targets: Tensor,
    ) -> Tensor:
        """:meth:`_rank_side` with ``[Q, W]`` score slices (see the module docstring)."""
        n, num_entities = len(keys), reps[0].shape[0]
        ranks = torch.empty(n, dtype=torch.float64)
        if n == 0:
            return ranks
        unique_keys, inverse = torch.unique(keys, dim=0, return_inverse=True)  # [U, 2], [n]
        order = torch.argsort(inverse, stable=True)
        key_ptr = torch.zeros(len(unique_keys) + 1, dtype=torch.long)
        key_ptr[1:] = torch.bincount(inverse, minlength=len(unique_keys)).cumsum(0)
        block = min(self.batch_size or SLICED_QUERIES, self.max_scores)
        progress = progress_bar(total=n, desc=f"ranking {side}s", unit="triple", disable=self.quiet)
        for start in range(0, len(unique_keys), block):
            stop = min(start + block, len(unique_keys))
            width = max(1, self.max_scores // (stop - start))  # entities per slice: Q W <= budget
            idx = order[key_ptr[start] : key_ptr[stop]]  # [T] triples of this block
            rows = (inverse[idx] - start).to(reps[0].device)  # [T] row of each triple
            score = _slice_scorer(side, model, reps, unique_keys[start:stop])
            block_ranks = self._rank_block_sliced(
                side, score, unique_keys[start:stop], rows, targets[idx], num_entities, width
            )
            ranks[idx.cpu()] = block_ranks.cpu()
            progress.update(len(idx))
        progress.close()
        return ranks

    def _rank_block_sliced(
        self,
        side: str,
        score: Callable[[int, int], Tensor],
        keys: Tensor,
        rows: Tensor,
        targets: Tensor,
        num_entities: int,
        width: int,
    ) -> Tensor:
        """Realistic ranks ``[T]`` of ``targets`` in their ``rows`` of the scores of ``keys``
        against every entity, read slice by slice from ``score(a, b) -> [Q, b - a]``."""
        device, num_rows = rows.device, len(rows)
        slices = [(a, min(a + width, num_entities)) for a in range(0, num_entities, width)]
        targets = targets.to(device)
        # Sweep 1: each target's score, from the slice that holds it.
        true = torch.empty(num_rows, device=device)
        slice_of = torch.div(targets, width, rounding_mode="floor")  # [T]
        for k in torch.unique(slice_of).tolist():
            a, b = slices[k]
            at = (slice_of == k).nonzero().flatten()  # [t] triples whose target is in [a, b)
            true[at] = score(a, b).float()[rows[at], targets[at] - a]
        if not torch.isfinite(true).all():
            bad = int(torch.nonzero(~torch.isfinite(true))[0])
            raise ValueError(
                f"the model gave a non-finite score {true[bad].item()} to a true {side} "
                f"(query {keys[rows[bad]].tolist()}, target {int(targets[bad])})"
            )
        owner = values = None
        if self.filter_index is not None:
            ptr, values = self._filter(side, keys.cpu())  # CSR over the Q queries
            owner = torch.repeat_interleave(
                torch.arange(len(keys)), ptr.diff(), output_size=len(values)
            )
            owner, values = owner.to(device), values.to(device)
        # Sweep 2: filter each slice, count better and unequal candidates (float64 sums: exact).
        better = torch.zeros(num_rows, dtype=torch.float64, device=device)
        unequal = torch.zeros(num_rows, dtype=torch.float64, device=device)
        filtered_self = torch.zeros(num_rows, dtype=torch.float64, device=device)
        step = max(1, self.max_scores // width)  # triples compared at once: [s, W] <= max_scores
        for k, (a, b) in enumerate(slices):
            scores = score(a, b).float().contiguous()  # [Q, W]
            if values is not None:
                inside = (values >= a) & (values < b)
                flat = owner[inside] * (b - a) + (values[inside] - a)  # [nnz] positions in `scores`
                scores.view(-1).index_fill_(0, flat, float("-inf"))
                at = (slice_of == k).nonzero().flatten()
                filtered_self[at] = (scores[rows[at], targets[at] - a] == float("-inf")).double()
            with _one_thread(scores.device):
                for c in range(0, num_rows, step):
                    d = min(c + step, num_rows)
                    diff = scores.index_select(0, rows[c:d]).sub_(true[c:d, None]).sign_()  # [s, W]
                    signed = diff.sum(1)  # [s]: #better - #worse
                    count = diff.abs_().sum(1)  # [s]: #better + #worse
                    unequal[c:d] += count.double()
                    better[c:d] += ((count + signed) / 2).double()
        if torch.isnan(unequal).any():
            raise ValueError(f"the model gave NaN scores to some candidate {side}s")
        equal = num_entities - unequal + filtered_self  # ties, the target included
        return better + (equal + 1.0) / 2.0


def _slice_scorer(
    side: str, model: LinkPredictionModel, reps: tuple[Tensor, Tensor], keys: Tensor
) -> Callable[[int, int], Tensor]:
    """``score(a, b) -> [Q, b - a]``: the queries ``keys: [Q, 2]`` of ``side`` against entities
    ``a..b-1``, as :meth:`LinkPredictionModel.score_t` / ``score_h`` score them against all."""
    ent, rel = reps
    keys = keys.to(ent.device)
    interaction = model.interaction
    if side == "tail" or model.reciprocal:
        if side == "tail":  # (h, r, ?)
            anchor, relation = keys[:, 0], keys[:, 1]
        else:  # (?, r, t) as (t, r + R, ?)
            anchor, relation = keys[:, 1], keys[:, 0] + model.num_relations
        h, r = ent.index_select(0, anchor), rel.index_select(0, relation)  # [Q, d_e], [Q, d_r]
        return lambda a, b: interaction.score_t(h, r, ent[a:b])
    r, t = rel.index_select(0, keys[:, 0]), ent.index_select(0, keys[:, 1])  # [Q, d_r], [Q, d_e]
    return lambda a, b: interaction.score_h(ent[a:b], r, t)
