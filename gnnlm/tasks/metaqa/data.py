"""MetaQA question files: ``<k>-hop/{dev,test}.txt`` with lines ``question with
[topic]<TAB>ans1|ans2``.

The reader accepts any folder in that layout (``1-hop``, ``2-hop``, and a ``3-hop`` folder
unchanged). A question keeps its text with the brackets removed and the character span of the topic
mention, so the collator can point the mention's tokens at the topic entity's node.

There is no training split in this copy of MetaQA (see ``$GNNLM_DATA_DIR/README.md``): the task
trains on most of ``dev``, selects on the rest of ``dev`` (:func:`split_dev`: a fixed, seeded 90/10
split by default) and reports on the full ``test`` files.

Nothing is dropped silently: :func:`link_questions` links topics and answers to the KB and counts
how many questions have their topic in the KB, their answers in the KB and an answer within ``k``
hops; the questions that fail stay in the evaluation as misses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from torch import Tensor

from gnnlm.data.errors import DataFormatError

#: folder names of question sets: ``1-hop``, ``2-hop``, ...
HOP_FOLDER = re.compile(r"^(\d+)-hop$")
#: the split files of a hop folder
QUESTION_SPLITS = ("dev", "test")
T = TypeVar("T")


@dataclass
class Question:
    """One MetaQA question.

    Attributes:
        text: the question without the brackets (``"what movies did Temuera Morrison act in"``).
        span: ``(start, end)`` character span of the topic mention in ``text`` (``end`` exclusive).
        topic: the topic entity's name (the text inside the brackets).
        answers: the gold answers' names (``[]`` for a question to answer, e.g. in ``predict``).
        hops: the question's hop count (its folder's ``k``).
        source: ``"path:line"`` where it was read.
    """

    text: str
    span: tuple[int, int]
    topic: str
    answers: list[str] = field(default_factory=list)
    hops: int = 0
    source: str = ""


def parse_question(
    text: str, *, path: str | Path = "<input>", line: int | None = None
) -> tuple[str, tuple[int, int], str]:
    """``"what did [X] do"`` -> ``("what did X do", (9, 10), "X")``.

    Raises:
        DataFormatError: no ``[...]`` pair, an empty topic, or more than one bracket pair.
    """
    opening, closing = text.count("["), text.count("]")
    start = text.find("[")
    end = text.find("]", start + 1)
    if opening != 1 or closing != 1 or start < 0 or end < 0:
        raise DataFormatError(path, line, "expected one [topic entity] in the question", text)
    topic = text[start + 1 : end]
    if not topic.strip():
        raise DataFormatError(path, line, "empty [topic entity] in the question", text)
    plain = text[:start] + topic + text[end + 1 :]
    return plain, (start, start + len(topic)), topic


def read_questions(path: str | Path, hops: int) -> list[Question]:
    """The questions of one file, in file order.

    Raises:
        DataFormatError: naming ``path:line`` and the value, for a line without a tab, without one
            ``[topic]``, or with an empty answer list or an empty answer between ``|``.
    """
    path = Path(path)
    questions = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            row = raw.rstrip("\r\n")
            if not row.strip():
                raise DataFormatError(path, number, "empty line", raw)
            if "\t" not in row:
                raise DataFormatError(path, number, "expected question<TAB>answers", row)
            question, answer_field = row.split("\t", 1)
            text, span, topic = parse_question(question, path=path, line=number)
            answers = answer_field.split("|")
            if not answer_field.strip() or any(not a.strip() for a in answers):
                raise DataFormatError(path, number, "empty answer (expected ans1|ans2|...)", row)
            questions.append(Question(text, span, topic, answers, hops, f"{path}:{number}"))
    return questions


def hop_folders(root: str | Path) -> dict[int, Path]:
    """``{k: root/"<k>-hop"}`` for every hop folder under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    for child in root.iterdir():
        match = HOP_FOLDER.match(child.name)
        if match and child.is_dir():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def read_hops(root: str | Path, hops: Sequence[int], split: str) -> list[Question]:
    """The questions of ``root/<k>-hop/<split>.txt`` for each ``k`` in ``hops``, in that order.

    Raises:
        FileNotFoundError: a missing folder or file (naming what exists).
    """
    folders = hop_folders(root)
    questions = []
    for k in hops:
        path = Path(root) / f"{k}-hop" / f"{split}.txt"
        if not path.is_file():
            have = ", ".join(f"{h}-hop" for h in folders) or "none"
            raise FileNotFoundError(
                f"{path}: no such question file (hop folders in {root}: {have})"
            )
        questions += read_questions(path, k)
    return questions


def split_dev(num: int, valid_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a fixed train / valid split of ``num`` dev questions: a permutation drawn from
    ``random.Random(seed)``, its first ``round(valid_fraction * num)`` (at least one when
    ``valid_fraction > 0``) for validation, the rest for training; both returned sorted.

    The seed is ``data.split_seed``, not the run's seed, so every arm and every seed of a comparison
    selects on the same questions.
    """
    order = list(range(num))
    random.Random(seed).shuffle(order)
    size = round(valid_fraction * num)
    if valid_fraction > 0 and num > 1:
        size = min(max(size, 1), num - 1)
    return sorted(order[size:]), sorted(order[:size])


def sample_in_order(items: Sequence[T], size: int, seed: int) -> list[T]:
    """``size`` items drawn with ``random.Random(seed)``, in their original order (all for ``size``
    0 or at least ``len(items)``): a small budget still mixes the hop files, which are read one
    after the other."""
    if not size or size >= len(items):
        return list(items)
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), size))]


@dataclass
class LinkedQuestion:
    """A question linked to the KB.

    Attributes:
        question: the question.
        topic: the topic's entity id, ``None`` when its name is not in the KB.
        answers: ids of the gold answers found in the KB (answers not in the KB cannot be hit).
        reachable: whether some answer lies within ``question.hops`` hops of the topic in the whole
            KB.
        relation_weight: ``[num_relations]`` the question's own subgraph pruning weights
            (``data.pruning: question``), ``None`` for the sampler's.
    """

    question: Question
    topic: int | None
    answers: frozenset[int]
    reachable: bool
    relation_weight: Tensor | None = None


def link_questions(
    questions: Iterable[Question],
    entity_id: Mapping[str, int],
    reachable: Callable[[int, int, frozenset[int]], bool],
) -> tuple[list[LinkedQuestion], dict[str, int]]:
    """Link topics and answers by name and count what can be answered.

    Args:
        questions: the questions.
        entity_id: entity name -> id.
        reachable: ``(topic id, k, answer ids)`` -> whether an answer lies within ``k`` hops of the
            topic.

    Returns:
        ``(linked, counts)``: every question (none dropped) and the counts ``num_questions``,
        ``topic_found``, ``answers_in_kb`` (questions with at least one answer that is a KB entity),
        ``all_answers_in_kb``, ``answers_reachable_within_k_hops`` (an answer within the question's
        ``k`` hops of its topic).
    """
    linked = []
    for q in questions:
        topic = entity_id.get(q.topic)
        answers = frozenset(entity_id[a] for a in q.answers if a in entity_id)
        reached = topic is not None and reachable(topic, q.hops, answers)
        linked.append(LinkedQuestion(q, topic, answers, reached))
    return linked, count_linked(linked)


def count_linked(linked: Iterable[LinkedQuestion]) -> dict[str, int]:
    """The counts of :func:`link_questions` over ``linked``."""
    counts = dict.fromkeys(
        ("num_questions", "topic_found", "answers_in_kb", "all_answers_in_kb",
         "answers_reachable_within_k_hops"), 0,
    )  # fmt: skip
    for q in linked:
        counts["num_questions"] += 1
        counts["topic_found"] += q.topic is not None
        counts["answers_in_kb"] += bool(q.answers)
        counts["all_answers_in_kb"] += len(q.answers) == len(set(q.question.answers))
        counts["answers_reachable_within_k_hops"] += q.reachable
    return counts


__all__ = [
    "LinkedQuestion",
    "Question",
    "count_linked",
    "hop_folders",
    "link_questions",
    "parse_question",
    "read_hops",
    "read_questions",
    "sample_in_order",
    "split_dev",
]
