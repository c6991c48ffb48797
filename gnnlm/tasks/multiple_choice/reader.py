"""Multiple-choice questions in the CommonsenseQA JSONL schema, read with nothing dropped silently.

One JSON object per line::

    {"id": "075e...", "answerKey": "A",
     "question": {"stem": "The sanctions ... seemed to what ...?", "question_concept": "punishing",
                  "choices": [{"label": "A", "text": "ignore"}, {"label": "B", "text": "enforce"}, ...]}}

``question_concept`` is optional, as is ``answerKey`` when the file is read without answers (the official
CommonsenseQA test file). Any other multiple-choice set written in this schema reads the same way. A
malformed line raises :class:`~gnnlm.data.errors.DataFormatError` naming the file, the line and the value;
blank lines hold no question and are skipped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gnnlm.data.errors import DataFormatError


@dataclass(frozen=True)
class Question:
    """One multiple-choice question.

    Attributes:
        id: the question's id (``"<file>:<line>"`` when the line has none).
        stem: the question text.
        choices: the answer texts, in file order.
        labels: the choice labels (``"A"``, ``"B"``, ...), aligned with ``choices``.
        answer: index of the correct choice, ``None`` without an answer key.
        question_concept: the concept the question was written about, when given.
        source: ``"path:line"`` of the question.
    """

    id: str
    stem: str
    choices: tuple[str, ...]
    labels: tuple[str, ...]
    answer: int | None
    question_concept: str | None
    source: str


def read_questions(path: str | os.PathLike, *, answers: bool = True) -> list[Question]:
    """Every question of a JSONL file, in file order.

    Args:
        path: the file.
        answers: require an ``answerKey`` naming one of the choice labels.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: invalid JSON, a missing or empty stem, fewer than two choices, a choice without
            label or text, repeated labels, a missing or unknown answer key.
    """
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                out.append(parse_question(line, path, number, answers=answers))
    return out


def parse_question(line: str, path: Path, number: int, *, answers: bool = True) -> Question:
    """One line of the file (see :func:`read_questions`)."""

    def fail(problem: str, value: object) -> DataFormatError:
        return DataFormatError(path, number, problem, value)

    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise fail(f"invalid JSON ({err.msg})", line.rstrip("\n")) from None
    question = record.get("question") if isinstance(record, dict) else None
    if not isinstance(question, dict):
        raise fail('no "question" object', line.rstrip("\n"))
    stem = question.get("stem")
    if not isinstance(stem, str) or not stem.strip():
        raise fail('"question.stem" must be a non-empty string', stem)
    choices = question.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        raise fail('"question.choices" must be a list of at least 2 choices', choices)
    labels, texts = [], []
    for k, choice in enumerate(choices):
        label = choice.get("label") if isinstance(choice, dict) else None
        text = choice.get("text") if isinstance(choice, dict) else None
        if not isinstance(label, str) or not isinstance(text, str) or not text.strip():
            raise fail(f"choice {k} needs a string label and a non-empty text", choice)
        if label in labels:
            raise fail(f"choice label {label!r} repeated", [c.get("label") for c in choices])
        labels.append(label)
        texts.append(text.strip())
    answer = None
    key = record.get("answerKey")
    if key is not None or answers:
        if key not in labels:
            raise fail(f"answerKey must be one of {labels}", key)
        answer = labels.index(key)
    concept = question.get("question_concept")
    if concept is not None and not isinstance(concept, str):
        raise fail('"question.question_concept" must be a string', concept)
    source = f"{path}:{number}"
    return Question(
        id=str(record.get("id") or source),
        stem=" ".join(stem.split()),
        choices=tuple(texts),
        labels=tuple(labels),
        answer=answer,
        question_concept=concept or None,
        source=source,
    )


def question_counts(questions: list[Question]) -> dict[str, object]:
    """``{"questions": n, "choices_per_question": {k: count}, "with_answer": n,
    "with_question_concept": n, "repeated_ids": n}`` (JSON-friendly: string keys)."""
    ids = Counter(q.id for q in questions)
    per = Counter(len(q.choices) for q in questions)
    return {
        "questions": len(questions),
        "choices_per_question": {str(k): v for k, v in sorted(per.items())},
        "with_answer": sum(q.answer is not None for q in questions),
        "with_question_concept": sum(q.question_concept is not None for q in questions),
        "repeated_ids": sum(c - 1 for c in ids.values()),
    }
