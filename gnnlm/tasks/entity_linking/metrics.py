"""The metrics of entity linking over gold mentions (in-KB disambiguation, ELEVANT / GERBIL's D2KB).

Every gold mention of a test file is one of:

* *in KB*: its Wikidata id is an entity of the KB;
* *out of KB*: a Wikidata id that is not in the KB, or ``<NIL>`` / ``<NO_MAPPING>``.

The linker predicts an entity for every gold mention that has at least one candidate (its top-scored
candidate) and abstains on the others (no NIL threshold). Then

* ``correct``: in-KB mentions whose prediction is the gold entity (an in-KB mention whose entity is
  not among its candidates, or that has none, is a miss);
* ``accuracy`` = correct / in-KB mentions (in-KB accuracy);
* ``precision`` = correct / predictions, where a prediction on an out-of-KB mention is always wrong;
* ``recall`` = correct / in-KB mentions (equal to ``accuracy``: gold mentions are given);
* ``f1`` = their harmonic mean (0 when both are 0);
* ``in_kb_share`` = in-KB mentions / all gold mentions.

Since the linker never abstains on a mention with candidates, ``precision``'s denominator is the same
for every arm of a comparison: arms differ in ``correct`` only.
"""

from __future__ import annotations

from typing import Any


def linking_metrics(gold: list[int | None], predicted: list[int | None]) -> dict[str, Any]:
    """The metrics of the module docstring.

    Args:
        gold: per gold mention, its KB entity (``None``: out of KB).
        predicted: per gold mention, the predicted entity (``None``: no candidate, abstained).

    Returns:
        ``{"accuracy", "precision", "recall", "f1", "in_kb_share", "mentions", "in_kb",
        "predictions", "correct"}`` (ratios ``None`` when their denominator is 0).
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold mentions but {len(predicted)} predictions")
    in_kb = sum(g is not None for g in gold)
    predictions = sum(p is not None for p in predicted)
    correct = sum(g is not None and g == p for g, p in zip(gold, predicted))
    precision = correct / predictions if predictions else None
    recall = correct / in_kb if in_kb else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": recall,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "in_kb_share": in_kb / len(gold) if gold else None,
        "mentions": len(gold),
        "in_kb": in_kb,
        "predictions": predictions,
        "correct": correct,
    }


__all__ = ["linking_metrics"]
