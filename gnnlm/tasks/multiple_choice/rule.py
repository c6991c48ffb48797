"""Baselines with no parameters for multiple choice over a KG: does the graph alone point at the answer?

Each choice is scored from its (question, choice) subgraph only, and the rule picks uniformly among the
top-scored choices, so its expected accuracy on a question is ``[gold is top] / |top|``:

* ``path``: 1 if the subgraph joins a question concept to a choice concept at all (a bridge node or a
  direct edge, :func:`~gnnlm.tasks.multiple_choice.data.linked`), else 0: "is there a path?".
* ``links``: how many of the question's concepts touch the choice's concepts or a bridge node (every
  bridge node lies on a question-choice path of at most ``max_hops`` edges): the more of the question
  the choice connects to, the higher.

A model that reads the graph has to beat these to show it uses more than connectivity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gnnlm.tasks.multiple_choice.extraction import QUESTION


def path_score(graph) -> float:
    """1.0 if the pair's subgraph joins the question to the choice, else 0.0."""
    from gnnlm.tasks.multiple_choice.data import linked

    return float(linked(graph))


def links_score(graph) -> float:
    """The number of question-concept nodes with an edge to a choice concept or a bridge node."""
    kinds = graph.node_type[graph.edge_index]  # [2, e]
    touching = (kinds[0] == QUESTION) & (kinds[1] != QUESTION)  # inverse edges give the other way
    return float(len(set(graph.edge_index[0, touching].tolist())))


RULES: dict[str, Callable[[Any], float]] = {"path": path_score, "links": links_score}


def expected_correct(scores: Sequence[float], answer: int) -> float:
    """The expected accuracy of picking uniformly among the top-scored choices."""
    top = max(scores)
    best = [i for i, s in enumerate(scores) if s == top]
    return (answer in best) / len(best)


def rule_baselines(task: Any, split: str) -> dict[str, dict[str, Any]]:
    """Every rule's expected accuracy on ``split`` of a set-up
    :class:`~gnnlm.tasks.multiple_choice.MultipleChoiceTask` (the models' subgraphs).

    Returns:
        ``{rule: {"accuracy", "expected": [per question, split order]}}``.
    """
    questions = task.qa.questions[split]
    out = {}
    for name, score in RULES.items():
        expected = [
            expected_correct([score(p.graph) for p in task.qa.pairs(split, i)], q.question.answer)
            for i, q in enumerate(questions)
        ]
        out[name] = {"accuracy": sum(expected) / max(len(expected), 1), "expected": expected}
    return out


__all__ = ["RULES", "expected_correct", "links_score", "path_score", "rule_baselines"]
