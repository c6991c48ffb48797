"""Top-k answers of a text model, where the query entity may be new text outside the KG.

``gnnlm predict RUN_DIR --head "..." --relation "..."`` calls :func:`predict_tails_text` for a text
run: a head that names an entity of the KG (its id, or a unique readable name) is that entity (its text
and graph state); any other string is read as the text of a new entity (``"name: description"`` like
the KG's entity texts) and ranked against every entity of the KG with no graph state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gnnlm.train.predict import (
    Prediction,
    known_answers,
    resolve_entity,
    resolve_relation,
    top_k_prediction,
)
from gnnlm.utils.modules import eval_mode

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph
    from gnnlm.tasks.text_link_prediction.model import TextKGCModel


def _entity_or_text(kg: KnowledgeGraph, model: TextKGCModel, name: str) -> tuple[int, str]:
    """``(id, text)`` of a KG entity, or ``(-1, name)`` for new text."""
    try:
        entity = resolve_entity(kg, name)
    except KeyError:
        return -1, name
    return entity, model.entity_texts[entity]


def _rank(model, kg, name: str, relation: int, k: int, exclude: str | None, inverse: bool):
    entity, text = _entity_or_text(kg, model, name)
    with eval_mode(model):
        relations = torch.tensor([relation + (model.num_relations if inverse else 0)])
        scores = model.score_text([text], relations, entities=torch.tensor([entity]))[0].cpu()
    index = known_answers(kg, exclude)
    if entity < 0 or index is None:
        known = torch.empty(0, dtype=torch.long)
    elif inverse:
        known = index.heads(torch.tensor([relation]), torch.tensor([entity]))[1]
    else:
        known = index.tails(torch.tensor([entity]), torch.tensor([relation]))[1]
    return scores, known


def predict_tails_text(
    model: TextKGCModel,
    kg: KnowledgeGraph,
    head: str,
    relation: str,
    k: int = 10,
    *,
    exclude: str | None = "train",
) -> Prediction:
    """The ``k`` best tails of ``(head, relation, ?)``; ``head`` is an entity of ``kg`` or new text
    (then nothing is known about it, so ``exclude`` removes nothing)."""
    r = resolve_relation(kg, relation)
    scores, known = _rank(model, kg, head, r, k, exclude, inverse=False)
    return top_k_prediction(kg, scores, known, k, exclude, (head, relation, "?"))


def predict_heads_text(
    model: TextKGCModel,
    kg: KnowledgeGraph,
    relation: str,
    tail: str,
    k: int = 10,
    *,
    exclude: str | None = "train",
) -> Prediction:
    """The ``k`` best heads of ``(?, relation, tail)``: the tails of ``(tail, inverse relation, ?)``."""
    r = resolve_relation(kg, relation)
    scores, known = _rank(model, kg, tail, r, k, exclude, inverse=True)
    return top_k_prediction(kg, scores, known, k, exclude, ("?", relation, tail))
