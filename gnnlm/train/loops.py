"""The two training regimes of KG embedding models, each a class that turns a batch into a loss.

* :class:`SLCWALoop` (stochastic local closed-world assumption): each training triple against ``K``
  corrupted triples from a :class:`~gnnlm.train.negative_sampling.NegativeSampler`, optionally with
  self-adversarial weighting of the negatives (Sun et al., 2019).
* :class:`KvsAllLoop` (1-N scoring, Dettmers et al., 2018): each distinct ``(h, r)`` query (and ``(r, t)``
  query unless the model is reciprocal) is scored against every entity at once; all its true answers in the
  training set are the multi-hot targets, with label smoothing.

A loop needs only the :class:`~gnnlm.kge.LinkPredictionModel` scoring contract (``representations``,
``score_hrt``, ``score_t``, ``score_h``). The representations are computed once per batch, so a GNN
encoder runs one forward pass per optimisation step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor, nn

from gnnlm.kge.gemm import training_output
from gnnlm.train.kvsall_fused import (
    KvsAllTargets,
    ScoreBuffer,
    fused_kvsall_loss,
    sliced_side_loss,
)
from gnnlm.train.losses import Loss
from gnnlm.train.negative_sampling import NegativeSampler
from gnnlm.train.regularizers import Regularizer
from gnnlm.utils.registry import DottedPathResolver


class TrainingLoop:
    """Base class: a set of training examples, their batching, and the loss of a batch.

    Args:
        model: the link-prediction model.
        loss: the training loss.
        batch_size: examples per optimisation step.
        regularizer: optional regulariser of the batch's representations.
    """

    #: name used in configs (``training.loop``).
    name: ClassVar[str] = ""

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        *,
        batch_size: int,
        regularizer: Regularizer | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.loss = loss
        self.batch_size = batch_size
        self.regularizer = regularizer

    @property
    def num_examples(self) -> int:
        """Number of training examples (triples or queries) in one epoch."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """Where the model lives; batches are built on the CPU (one CPU random source) and moved there."""
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def batches(self, generator: torch.Generator) -> Iterator[Tensor]:
        """Shuffled ``[batch]`` example indices covering one epoch (the last batch may be smaller)."""
        order = torch.randperm(self.num_examples, generator=generator)
        yield from order.split(self.batch_size)

    def batch_loss(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        """Scalar loss (regulariser included) of the examples ``indices: [B]``."""
        raise NotImplementedError

    def _regularization(
        self, reps: tuple[Tensor, Tensor], entities: Tensor, relations: Tensor
    ) -> Tensor | float:
        """The regulariser on the factors (``model.regularization_factors``) of the rows a batch used."""
        if self.regularizer is None or self.regularizer.weight == 0:
            return 0.0
        factors = self.model.regularization_factors(
            entities=entities, relations=relations, reps=reps
        )
        return self.regularizer(factors, batch_size=len(relations))


class SLCWALoop(TrainingLoop):
    """Negative-sampling training.

    Args:
        model: the link-prediction model.
        triples: ``[n, 3]`` training triples (already including inverse triples for reciprocal models).
        sampler: draws the negatives.
        loss: the loss, called as ``loss.slcwa(positive [B], negative [B, K], weights)``.
        batch_size: positive triples per step.
        adversarial_temperature: if set, negatives are weighted by ``softmax(alpha * score)`` over each
            row (scores detached), RotatE's self-adversarial sampling with temperature ``alpha``.
        regularizer: optional regulariser on the positives' (h, r, t) representations.
        sparse: gather only the rows the batch uses, with row-sparse gradients (needs a representation
            with :attr:`~gnnlm.kge.model.Representation.supports_row_gather` and an optimizer that
            takes sparse gradients, see :mod:`gnnlm.train.sparse`); ``False`` is the dense reference
            (the whole tables every step). Both give the same loss.

    The positives and their negatives are scored in one call of the interaction.
    """

    name = "slcwa"

    def __init__(
        self,
        model: nn.Module,
        triples: Tensor,
        sampler: NegativeSampler,
        loss: Loss,
        *,
        batch_size: int,
        adversarial_temperature: float | None = None,
        regularizer: Regularizer | None = None,
        sparse: bool = False,
    ) -> None:
        super().__init__(model, loss, batch_size=batch_size, regularizer=regularizer)
        if sparse and not getattr(model.representation, "supports_row_gather", False):
            raise ValueError(
                f"sparse updates need a representation that supports row gathers; "
                f"{type(model.representation).__name__} computes its rows together (use sparse=False)"
            )
        self.triples = triples.long()
        self.sampler = sampler
        self.adversarial_temperature = adversarial_temperature
        self.sparse = sparse

    @property
    def num_examples(self) -> int:
        return len(self.triples)

    def negative_weights(self, negative_scores: Tensor, mask: Tensor | None) -> Tensor | None:
        """``[B, K]`` weights of the negatives (rows sum to 1, or 0 when every negative is filtered).

        ``None`` means uniform weights over all ``K`` negatives.
        """
        if self.adversarial_temperature is None:
            if mask is None:
                return None
            weights = mask.float()  # [B, K]
            return weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        # Detached: the weights are constants, as in Sun et al. (2019).
        logits = self.adversarial_temperature * negative_scores.detach()  # [B, K]
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return torch.softmax(logits, dim=1).nan_to_num(0.0)  # all-masked rows -> 0

    def batch_loss(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        positive = self.triples[indices]  # [B, 3]
        batch = self.sampler.sample(positive, generator)
        b = len(positive)
        device = self.device
        triples = torch.cat([positive, batch.negatives.view(-1, 3)]).to(device)  # [B (1 + K), 3]
        # heads and tails as one [2, B (1 + K), d_e] block, the relations [B (1 + K), d_r]
        if self.sparse:
            pairs, r = self.model.gather_pairs(triples, sparse=True)  # the batch's rows only
        else:
            reps = self.model.representations()
            pairs, r = self.model.gather_pairs(triples, reps)
        scores = self.model.score_pairs(pairs, r)  # [B (1 + K)]
        pos_scores, neg_scores = scores[:b], scores[b:].view(b, -1)  # [B], [B, K]
        mask = batch.mask.to(device) if batch.mask is not None else None
        weights = self.negative_weights(neg_scores, mask)
        loss = self.loss.slcwa(pos_scores, neg_scores, weights)
        if self.regularizer is None or self.regularizer.weight == 0:
            return loss
        if self.sparse:  # the positives' rows, already gathered
            positives = pairs[:, :b].reshape(2 * b, -1)  # [2B, d_e]: heads, then tails
            factors = self.model.row_regularization_factors(positives, r[:b])
            return loss + self.regularizer(factors, batch_size=b)
        entities = torch.cat([triples[:b, 0], triples[:b, 2]])  # [2B]
        return loss + self._regularization(reps, entities, triples[:b, 1])


class KvsAllLoop(TrainingLoop):
    """1-N training on all true answers of each query.

    Args:
        model: the link-prediction model (``num_entities`` candidates per query).
        triples: ``[n, 3]`` training triples over the *base* relations.
        num_relations: number of base relations (inverse relation of ``r`` is ``r + num_relations``).
        loss: the loss, called as ``loss.kvsall(scores [B, N], targets [B, N])``.
        batch_size: queries per step.
        reciprocal: queries are ``(h, r, ?)`` and ``(t, r_inv, ?)`` all scored with ``score_t``; otherwise
            ``(h, r, ?)`` with ``score_t`` and ``(?, r, t)`` with ``score_h``.
        label_smoothing: targets become ``(1 - eps) * y + eps / num_entities``.
        regularizer: optional regulariser on each query's entity and relation representations.
        fused: when the loss ``supports_fused_kvsall``, compute the loss and its gradient in one pass
            over the scores with sparse targets (:mod:`gnnlm.train.kvsall_fused`); ``False`` is the
            reference (dense ``[B, N]`` targets, ``loss.kvsall``). Both give the same loss and gradients.
            On CPU the fused loop keeps one ``[batch_size, num_entities]`` float buffer between steps.
        max_scores: the most score floats a fused step may hold at once. A batch whose
            ``[B, num_entities]`` scores exceed it (millions of entities) is scored in bounded slices
            of candidates instead (:func:`~gnnlm.train.kvsall_fused.sliced_side_loss`: the same loss
            and gradients, about 1.3x the time, no ``[B, N]`` matrix). The default, 2^27 floats
            (512 MiB), leaves every shipped config on the one-buffer path (FB15k-237 at batch 1000:
            1.5e7; WN18RR: 4.1e7).
    """

    name = "kvsall"
    #: default of ``max_scores``: 512 MiB of float32 scores.
    MAX_SCORES: ClassVar[int] = 2**27

    def __init__(
        self,
        model: nn.Module,
        triples: Tensor,
        num_relations: int,
        loss: Loss,
        *,
        batch_size: int,
        reciprocal: bool = False,
        label_smoothing: float = 0.0,
        regularizer: Regularizer | None = None,
        fused: bool = True,
        max_scores: int | None = None,
    ) -> None:
        super().__init__(model, loss, batch_size=batch_size, regularizer=regularizer)
        self.fused = fused
        self.max_scores = self.MAX_SCORES if max_scores is None else max_scores
        if self.max_scores < 1:
            raise ValueError(f"max_scores must be >= 1, got {max_scores}")
        self._score_buffer = ScoreBuffer()
        if not loss.supports_kvsall:
            raise ValueError(
                f"the {type(loss).__name__} loss does not support KvsAll training; use slcwa"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_entities = model.num_entities
        self.label_smoothing = label_smoothing
        h, r, t = triples.long().unbind(1)
        if reciprocal:
            # (h, r, ?) and (t, r + R, ?): both answered by score_t.
            anchors = torch.cat([h, t])
            relations = torch.cat([r, r + num_relations])
            answers = torch.cat([t, h])
            sides = torch.zeros(len(anchors), dtype=torch.long)
        else:
            # side 0: (h, r, ?) answered by score_t; side 1: (?, r, t) answered by score_h.
            anchors, relations, answers = torch.cat([h, t]), torch.cat([r, r]), torch.cat([t, h])
            sides = torch.cat(
                [torch.zeros(len(h), dtype=torch.long), torch.ones(len(h), dtype=torch.long)]
            )
        num_rel = 2 * num_relations
        key = (sides * self.num_entities + anchors) * num_rel + relations  # [2n] query key
        unique_keys, query_of = torch.unique(key, return_inverse=True)  # [Q], [2n]
        self.sides = unique_keys // (self.num_entities * num_rel)  # [Q]
        self.anchors = (unique_keys // num_rel) % self.num_entities  # [Q]
        self.relations = unique_keys % num_rel  # [Q]
        # CSR of the distinct answers of each query.
        pair = torch.unique(
            torch.stack([query_of, answers], dim=1), dim=0
        )  # [nnz, 2] sorted by query
        counts = torch.bincount(pair[:, 0], minlength=len(unique_keys))
        self.ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # [Q + 1]
        self.answers = pair[:, 1].contiguous()  # [nnz]

    @property
    def num_examples(self) -> int:
        return len(self.anchors)

    def sparse_targets(self, queries: Tensor) -> KvsAllTargets:
        """The true answers of the queries ``queries: [B]`` as ``(row, entity)`` index lists."""
        start, end = self.ptr[queries], self.ptr[queries + 1]
        counts = end - start  # [B]
        rows = torch.repeat_interleave(torch.arange(len(queries)), counts)  # [nnz_batch]
        offsets = torch.arange(len(rows)) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts
        )
        cols = self.answers[torch.repeat_interleave(start, counts) + offsets]  # [nnz_batch]
        return KvsAllTargets(rows, cols, len(queries), self.num_entities, self.label_smoothing)

    def targets(self, queries: Tensor) -> Tensor:
        """``[B, num_entities]`` smoothed multi-hot targets of the queries ``queries: [B]``."""
        return self.sparse_targets(queries).dense()

    def batch_loss(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        # Tail-side queries first, then head-side ones; the targets are ordered the same way.
        sides = self.sides[indices]
        tail_q, head_q = indices[sides == 0], indices[sides == 1]
        device = self.device
        reps = self.model.representations()
        if self.fused and self.loss.supports_fused_kvsall:
            return self._fused_batch_loss(tail_q, head_q, reps)
        scores = []
        if len(tail_q):
            hr = torch.stack([self.anchors[tail_q], self.relations[tail_q]], dim=1)  # [B_t, 2]
            scores.append(self.model.score_t(hr.to(device), reps))  # [B_t, N]
        if len(head_q):
            rt = torch.stack([self.relations[head_q], self.anchors[head_q]], dim=1)  # [B_h, 2]
            scores.append(self.model.score_h(rt.to(device), reps))  # [B_h, N]
        ordered = torch.cat([tail_q, head_q])
        loss = self.loss.kvsall(torch.cat(scores), self.targets(ordered).to(device))
        entities, relations = self.anchors[ordered].to(device), self.relations[ordered].to(device)
        return loss + self._regularization(reps, entities, relations)

    def _fused_batch_loss(
        self, tail_q: Tensor, head_q: Tensor, reps: tuple[Tensor, Tensor]
    ) -> Tensor:
        """:meth:`batch_loss` with the fused loss: each side's ``[b, N]`` scores are written into
        the loop's reused buffer, turned into their gradient in place; no ``[B, N]`` concatenation,
        copy or dense targets."""
        device, num_rows, n = self.device, len(tail_q) + len(head_q), self.num_entities
        sliced = num_rows * n > self.max_scores  # no [B, N] buffer at all: bounded slices
        buffer, release = None, None
        if device.type == "cpu" and not sliced:  # reused product output (gemm.training_output)
            buffer, release = self._score_buffer.acquire(num_rows * n, device)  # [B * N] flat
        loss, offset = torch.zeros((), device=device), 0
        for queries, side in ((tail_q, 0), (head_q, 1)):
            if not len(queries):
                continue
            targets = self.sparse_targets(queries).to(device)
            if sliced:
                loss = loss + sliced_side_loss(
                    self.model, self.loss, reps, self.anchors[queries].to(device),
                    self.relations[queries].to(device), side, targets, num_rows,
                    max_elements=min(self.max_scores, 2**23),
                )  # fmt: skip
                continue
            reuse = buffer[offset : offset + len(queries) * n] if buffer is not None else None
            with training_output(reuse):
                if side == 0:
                    hr = torch.stack([self.anchors[queries], self.relations[queries]], dim=1)
                    scores = self.model.score_t(hr.to(device), reps)  # [B_t, N]
                else:
                    rt = torch.stack([self.relations[queries], self.anchors[queries]], dim=1)
                    scores = self.model.score_h(rt.to(device), reps)  # [B_h, N]
            loss = loss + fused_kvsall_loss(
                self.loss, scores, targets, num_rows, on_backward=release
            )
            del scores  # now the gradient
            offset += len(queries) * n
        ordered = torch.cat([tail_q, head_q])
        entities, relations = self.anchors[ordered].to(device), self.relations[ordered].to(device)
        return loss + self._regularization(reps, entities, relations)


loop_resolver: DottedPathResolver[TrainingLoop] = DottedPathResolver(
    [SLCWALoop, KvsAllLoop],
    base=TrainingLoop,
    default=KvsAllLoop,
    suffix="Loop",
    synonyms={"1-n": KvsAllLoop, "1n": KvsAllLoop, "negative_sampling": SLCWALoop},
)
"""Training loops by name: ``slcwa``, ``kvsall`` (aka ``1-n``)."""
