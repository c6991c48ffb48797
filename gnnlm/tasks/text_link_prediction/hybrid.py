r"""Rankers over a text model's cached query vectors, and score ensembling with a KGE model.

Encoding a query runs the LM; ranking it is one row of a GEMM. :class:`QueryCache` encodes every
distinct query of a split once (``(h, r)`` for tails, ``(t, r + R)`` for heads), so the text model, the
KGE model and every ensemble weight are ranked by the same
:class:`~gnnlm.eval.RankBasedEvaluator` (both sides, filtered, realistic ties) without encoding a
query twice.

The ensemble standardises each query's scores over all entities before mixing them, since a cosine
and a KGE score live on different scales:

.. math::
    s(q, e) = w\, z\big(s_{\text{text}}(q, \cdot)\big)_e + (1 - w)\, z\big(s_{\text{KGE}}(q, \cdot)\big)_e,
    \qquad z(x) = \frac{x - \operatorname{mean}(x)}{\operatorname{std}(x)}

with ``w`` chosen on validation (:func:`choose_weight`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gnnlm.eval import RankBasedEvaluator
    from gnnlm.tasks.text_link_prediction.model import TextKGCModel


def query_pairs(triples: Tensor, num_relations: int) -> Tensor:
    """``[U, 2]`` distinct queries ``(entity, relation)`` of both sides of ``triples`` ``[n, 3]``:
    ``(h, r)`` (tails) and ``(t, r + R)`` (heads)."""
    tails = triples[:, [0, 1]]
    heads = torch.stack([triples[:, 2], triples[:, 1] + num_relations], 1)
    return torch.unique(torch.cat([tails, heads]), dim=0)


class QueryCache:
    """The text model's query vectors of every query of some triples, encoded once.

    Args:
        model: the text model (in eval mode, under ``torch.no_grad``).
        triples: ``[n, 3]`` the triples whose queries (both sides) are encoded.
        states: the graph states of ``model.representations()`` (``[N, 0]`` without a tower).
        batch_size: queries per LM pass.
    """

    def __init__(
        self, model: TextKGCModel, triples: Tensor, states: Tensor, *, batch_size: int = 256
    ) -> None:
        self.num_relations = model.num_relations
        self.num_entities = model.num_entities
        queries = query_pairs(triples.long().cpu(), self.num_relations)  # [U, 2], sorted
        self.codes = self._code(queries[:, 0], queries[:, 1])  # sorted: unique sorts rows
        graph = states if model.graph is not None else None
        chunks = [
            model.query_vectors(
                queries[s : s + batch_size, 0], queries[s : s + batch_size, 1], graph
            )
            for s in range(0, len(queries), batch_size)
        ]
        self.vectors = torch.cat(chunks) if chunks else states.new_zeros(0, 0)  # [U, H]

    def _code(self, entities: Tensor, relations: Tensor) -> Tensor:
        return entities.long() * (2 * self.num_relations) + relations.long()

    def lookup(self, entities: Tensor, relations: Tensor) -> Tensor:
        """``[B, H]`` cached vectors of queries ``(entities[i], relations[i])``.

        Raises:
            KeyError: a query that was not cached.
        """
        codes = self._code(entities.cpu(), relations.cpu())
        pos = torch.searchsorted(self.codes, codes).clamp_max(max(len(self.codes) - 1, 0))
        if len(self.codes) == 0 or not bool((self.codes[pos] == codes).all()):
            raise KeyError("a query outside the cached triples")
        return self.vectors[pos.to(self.vectors.device)]


class CachedTextRanker(nn.Module):
    """The text model as a :class:`~gnnlm.eval.rank_based.RankableModel` over a :class:`QueryCache`
    and the key table ``keys [N, H]``: the same scores as ``model.score_t`` / ``score_h``."""

    def __init__(self, cache: QueryCache, keys: Tensor) -> None:
        super().__init__()
        self.cache, self.keys = cache, keys

    def representations(self) -> tuple[Tensor, Tensor]:
        return self.keys, self.keys.new_zeros(0)

    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (h, r) -> ``[B, N]``."""
        return self.cache.lookup(hr[:, 0], hr[:, 1]) @ self.keys.t()

    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (r, t) -> ``[B, N]``: the tails of ``(t, r + R)``."""
        inverse = rt[:, 0] + self.cache.num_relations
        return self.cache.lookup(rt[:, 1], inverse) @ self.keys.t()


def standardize(scores: Tensor) -> Tensor:
    """``[Q, N]`` scores, each row shifted to mean 0 and scaled to standard deviation 1."""
    mean = scores.mean(1, keepdim=True)
    std = scores.std(1, keepdim=True).clamp_min(1e-12)
    return (scores - mean) / std


class EnsembleRanker(nn.Module):
    """``w * z(text) + (1 - w) * z(kge)`` (see the module docstring) as a ranker.

    Args:
        text: the text ranker (e.g. :class:`CachedTextRanker`).
        kge: a link-prediction model over the same entity and relation ids.
        weight: ``w`` in ``[0, 1]``.
    """

    def __init__(self, text: nn.Module, kge: nn.Module, weight: float) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.text, self.kge, self.weight = text, kge, weight
        with torch.no_grad():
            self._text_reps = text.representations()
            self._kge_reps = kge.representations()

    def representations(self) -> tuple[Tensor, Tensor]:
        return self._text_reps

    def _mix(self, text: Tensor, kge: Tensor) -> Tensor:
        w = self.weight
        return w * standardize(text.float()) + (1 - w) * standardize(kge.float().to(text.device))

    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        text = self.text.score_t(hr, self._text_reps)
        return self._mix(text, self.kge.score_t(hr, self._kge_reps))

    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        text = self.text.score_h(rt, self._text_reps)
        return self._mix(text, self.kge.score_h(rt, self._kge_reps))


def choose_weight(
    evaluator: RankBasedEvaluator,
    text: nn.Module,
    kge: nn.Module,
    triples: Tensor,
    weights: Sequence[float],
) -> tuple[float, dict[str, float]]:
    """The ``w`` of ``weights`` with the best filtered MRR on ``triples`` (validation), and the MRR
    of each (keys ``"0.3"``); ties go to the first."""
    curve = {}
    for w in weights:
        curve[f"{w:g}"] = evaluator.evaluate(EnsembleRanker(text, kge, w), triples).mrr
    best = max(weights, key=lambda w: curve[f"{w:g}"])
    return float(best), curve
