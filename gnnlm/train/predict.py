"""Top-k link prediction by name: tails of ``(h, r, ?)`` and heads of ``(?, r, t)``.

Known answers can be excluded (``exclude="train"``: answers already in the training triples; ``"all"``:
in any split; ``None``: rank everything). The result says which filter was used and which known answers
were removed, so nothing is hidden silently.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from gnnlm.data.filter_index import FilterIndex
from gnnlm.utils.modules import eval_mode

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph

EXCLUDE_CHOICES = (None, "train", "all")


@dataclass
class Prediction:
    """Top-k answers of one query, best first.

    Attributes:
        ids: ``[k]`` entity ids.
        names: their vocabulary names.
        labels: their readable names (entity text where known, else the vocabulary name).
        scores: ``[k]`` model scores (higher is more plausible).
        exclude: which known answers were removed (``None``, ``"train"`` or ``"all"``).
        excluded: ``[m]`` ids of the known answers that were removed from the ranking.
        query: the query as ``(head, relation, tail)`` names with ``"?"`` for the predicted slot.
    """

    ids: Tensor
    names: list[str]
    labels: list[str]
    scores: Tensor
    exclude: str | None
    excluded: Tensor
    query: tuple[str, str, str] = field(default=("?", "?", "?"))

    def to_dict(self) -> dict:
        return {
            "query": list(self.query),
            "exclude": self.exclude,
            "excluded": [int(i) for i in self.excluded],
            "predictions": [
                {"id": int(i), "name": n, "label": lab, "score": float(s)}
                for i, n, lab, s in zip(self.ids, self.names, self.labels, self.scores)
            ],
        }


def resolve_entity(kg: KnowledgeGraph, name: str) -> int:
    """Entity id from its vocabulary name, or from its readable name when that is unique.

    Raises:
        KeyError: naming the value and the closest known names.
    """
    if name in kg.entities:
        return kg.entities.id(name)
    if kg.entity_text is not None:
        matches = [
            i for i, n in enumerate(kg.entity_text.names) if n == name and i < kg.num_entities
        ]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(kg.entities.name(i) for i in matches[:5])
            raise KeyError(
                f"entity name {name!r} is ambiguous in {kg.name}; use one of the ids: {ids}"
            )
    raise KeyError(f"unknown entity {name!r} in {kg.name}{_close(name, kg.entities.names)}")


def resolve_relation(kg: KnowledgeGraph, name: str) -> int:
    if name in kg.relations:
        return kg.relations.id(name)
    raise KeyError(f"unknown relation {name!r} in {kg.name}{_close(name, kg.relations.names)}")


def _close(name: str, names: tuple[str, ...] | list[str]) -> str:
    if len(names) > 200_000:
        return ""
    close = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def known_answers(kg: KnowledgeGraph, exclude: str | None) -> FilterIndex | None:
    """The answers a prediction leaves out: those of the train split (``"train"``), of every split
    (``"all"``) or none (``None``)."""
    if exclude not in EXCLUDE_CHOICES:
        raise ValueError(f"exclude must be one of {EXCLUDE_CHOICES}, got {exclude!r}")
    if exclude is None:
        return None
    if exclude == "all":
        return kg.filter_index
    return FilterIndex(kg.train, kg.num_entities, kg.num_relations)


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def _top_k(scores: Tensor, known: Tensor, k: int) -> tuple[Tensor, Tensor]:
    scores = scores.clone()
    scores[known] = float("-inf")
    k = min(k, len(scores) - len(known))
    top = torch.topk(scores, k)
    return top.indices, top.values


def predict_tails(
    model: nn.Module,
    kg: KnowledgeGraph,
    head: str,
    relation: str,
    k: int = 10,
    *,
    exclude: str | None = "train",
) -> Prediction:
    """The ``k`` best tails of ``(head, relation, ?)``.

    Args:
        model: a :class:`~gnnlm.kge.LinkPredictionModel` trained on ``kg``.
        kg: the graph (for names and known triples).
        head: head entity name (vocabulary name, or a unique readable name).
        relation: relation name.
        k: how many answers.
        exclude: drop known answers from ``"train"``, ``"all"`` splits, or none (``None``).
    """
    h, r = resolve_entity(kg, head), resolve_relation(kg, relation)
    with eval_mode(model):
        hr = torch.tensor([[h, r]], device=_device(model))
        scores = model.score_t(hr)[0].cpu()  # [num_entities]
    index = known_answers(kg, exclude)
    known = (
        index.tails(torch.tensor([h]), torch.tensor([r]))[1]
        if index is not None
        else torch.empty(0, dtype=torch.long)
    )
    return top_k_prediction(kg, scores, known, k, exclude, (head, relation, "?"))


def predict_heads(
    model: nn.Module,
    kg: KnowledgeGraph,
    relation: str,
    tail: str,
    k: int = 10,
    *,
    exclude: str | None = "train",
) -> Prediction:
    """The ``k`` best heads of ``(?, relation, tail)`` (arguments in triple order); see :func:`predict_tails`."""
    r, t = resolve_relation(kg, relation), resolve_entity(kg, tail)
    with eval_mode(model):
        rt = torch.tensor([[r, t]], device=_device(model))
        scores = model.score_h(rt)[0].cpu()  # [num_entities]
    index = known_answers(kg, exclude)
    known = (
        index.heads(torch.tensor([r]), torch.tensor([t]))[1]
        if index is not None
        else torch.empty(0, dtype=torch.long)
    )
    return top_k_prediction(kg, scores, known, k, exclude, ("?", relation, tail))


def top_k_prediction(kg, scores: Tensor, known: Tensor, k: int, exclude, query) -> Prediction:
    """The :class:`Prediction` of the ``k`` best entities by ``scores: [num_entities]``, leaving out
    ``known: [n]`` entity ids (named by ``exclude``) for ``query``."""
    ids, values = _top_k(scores, known, k)
    return Prediction(
        ids=ids,
        names=[kg.entities.name(int(i)) for i in ids],
        labels=[kg.entity_label(int(i)) for i in ids],
        scores=values,
        exclude=exclude,
        excluded=known,
        query=query,
    )
