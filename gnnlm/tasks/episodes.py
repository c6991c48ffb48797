"""Meta-learning episodes of triple classification: each relation of the KG is a task.

An episode picks one relation (uniformly among those with enough examples) and draws, among the training
examples of that relation, ``shots`` positives and ``shots`` negatives for the support set and
``queries`` of each for the query set, all distinct: a 2-way (true / false) ``shots``-shot task. Every
draw comes from the given generator, so a seed gives the same episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from gnnlm.config import ConfigError
from gnnlm.strategies.meta import Episode


def example_relation(example: Any) -> int:
    """The relation of a triple-classification example (its triple is the first row of ``exclude``,
    see :func:`~gnnlm.tasks.triple_classification.make_example`)."""
    return int(example.exclude[0, 1])


def by_relation(examples: Sequence[Any]) -> dict[int, tuple[list[int], list[int]]]:
    """``{relation: (positive indices, negative indices)}`` of ``examples``, relations sorted."""
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for i, example in enumerate(examples):
        positives, negatives = groups.setdefault(example_relation(example), ([], []))
        (positives if example.label == 1.0 else negatives).append(i)
    return dict(sorted(groups.items()))


def sample_relation_episode(
    examples: Sequence[Any], generator: torch.Generator, *, shots: int, queries: int, at: str = ""
) -> Episode:
    """An episode of one relation: support ``[2 * shots]`` (positives, then negatives) and query
    ``[2 * queries]`` indices into ``examples``, disjoint.

    Args:
        examples: the task's training examples (each with ``exclude[0] = (h, r, t)`` and ``label``).
        generator: every draw comes from it (the relation, then the positives, then the negatives).
        shots: support examples per class; ``queries``: query examples per class.
        at: ``"file.yaml:12: "`` prefix of error messages.

    Raises:
        ConfigError: no relation has ``shots + queries`` positives and as many negatives.
    """
    need = shots + queries
    groups = by_relation(examples)
    eligible = [r for r, (pos, neg) in groups.items() if len(pos) >= need and len(neg) >= need]
    if not eligible:
        most = max((min(len(p), len(n)) for p, n in groups.values()), default=0)
        raise ConfigError(
            f"{at}finetuning.meta: an episode needs shots + queries = {need} positives and {need} "
            f"negatives of one relation, but the training examples have at most {most} of both for "
            "any relation; lower finetuning.meta.shots or queries, or draw more training examples"
        )
    relation = eligible[int(torch.randint(len(eligible), (1,), generator=generator))]
    pos, neg = groups[relation]
    positives = torch.tensor(pos)[torch.randperm(len(pos), generator=generator)[:need]]
    negatives = torch.tensor(neg)[torch.randperm(len(neg), generator=generator)[:need]]
    return Episode(
        support=torch.cat([positives[:shots], negatives[:shots]]),
        query=torch.cat([positives[shots:], negatives[shots:]]),
    )


__all__ = ["by_relation", "example_relation", "sample_relation_episode"]
