"""Entity-linking benchmarks in ELEVANT's JSONL format, read with nothing dropped silently.

One document per line (ELEVANT, Bast et al. 2022, ``benchmarks/<name>.benchmark.jsonl``)::

    {"id": 0, "title": "...", "text": "After the death of Steve, the former CEO of Apple, ...",
     "evaluation_span": [0, 118],
     "labels": [{"id": 0, "span": [19, 24], "entity_id": "Q19837", "name": "Steve Jobs",
                 "type": "Q215627"}, ...]}

``span`` is ``[start, end)`` in characters of ``text``; ``entity_id`` is a Wikidata id (``Q<digits>``),
``<NIL>`` (no Wikidata entity) or ``<NO_MAPPING>`` (an entity of the original benchmark without a
Wikidata id). Nested labels (``parent`` / ``children``: MSNBC, Spotlight) are kept as mentions of their
own and counted. ``evaluation_span``, ``title``, ``name`` and ``type`` are not used. Any file in this
format reads by path; a malformed line raises :class:`~gnnlm.data.errors.DataFormatError` naming the
file, the line and the value; blank lines hold no document and are counted.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gnnlm.data.errors import DataFormatError

#: the file suffix of a benchmark; its name is the file name without it
SUFFIX = ".benchmark.jsonl"
#: entity ids that are not Wikidata entities, and the kind each counts as
SPECIAL_IDS = {"<NIL>": "nil", "<NO_MAPPING>": "no_mapping"}
_QID = re.compile(r"Q[1-9][0-9]*")


@dataclass(frozen=True)
class GoldMention:
    """A gold mention of a document.

    Attributes:
        start, end: the span ``text[start:end]`` in characters.
        entity_id: its Wikidata id, ``None`` for ``<NIL>`` and ``<NO_MAPPING>``.
        kind: ``"qid"``, ``"nil"`` or ``"no_mapping"``.
        nested: whether the label has a parent or children (overlapping gold spans).
    """

    start: int
    end: int
    entity_id: str | None
    kind: str
    nested: bool = False


@dataclass
class Document:
    """One benchmark document.

    Attributes:
        id: ``"<benchmark>:<id>"``.
        text: the full text.
        mentions: its gold mentions in file order.
        source: ``"path:line"``.
    """

    id: str
    text: str
    mentions: list[GoldMention]
    source: str = ""


@dataclass
class Benchmark:
    """The documents of one file and their counts.

    Attributes:
        name: the file name without ``.benchmark.jsonl``.
        path: the file.
        documents: in file order.
        counts: ``documents``, ``blank_lines``, ``mentions``, ``with_qid``, ``nil``, ``no_mapping``,
            ``nested``.
    """

    name: str
    path: str
    documents: list[Document]
    counts: dict[str, int] = field(default_factory=dict)


def benchmark_name(path: str | os.PathLike) -> str:
    """``kore50`` for ``.../kore50.benchmark.jsonl`` (the file name without ``.jsonl`` otherwise)."""
    name = Path(path).name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name.removesuffix(".jsonl")


def read_benchmark(path: str | os.PathLike) -> Benchmark:
    """Read one ELEVANT-format JSONL file.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: a line that is not a JSON object, without a string ``text`` or a list of
            ``labels``, a label without a ``span`` of two integers ``0 <= start < end <= len(text)``,
            or an ``entity_id`` that is neither ``Q<digits>`` nor ``<NIL>`` / ``<NO_MAPPING>``.
    """
    path = Path(path)
    name = benchmark_name(path)
    documents: list[Document] = []
    counts: Counter[str] = Counter()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                counts["blank_lines"] += 1
                continue
            document = _parse_line(line, path, number, name)
            documents.append(document)
            for m in document.mentions:
                counts["mentions"] += 1
                counts["with_qid" if m.kind == "qid" else m.kind] += 1
                counts["nested"] += m.nested
    keys = ("documents", "blank_lines", "mentions", "with_qid", "nil", "no_mapping", "nested")
    counts["documents"] = len(documents)
    return Benchmark(name, str(path), documents, {k: counts[k] for k in keys})


def _parse_line(line: str, path: Path, number: int, name: str) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, number, f"not JSON ({err.msg})", line.strip(),
                              column=err.colno) from None  # fmt: skip
    if not isinstance(record, dict):
        raise DataFormatError(path, number, "not a JSON object", line.strip())
    text = record.get("text")
    if not isinstance(text, str):
        raise DataFormatError(path, number, "no string 'text'", text)
    labels = record.get("labels")
    if not isinstance(labels, list):
        raise DataFormatError(path, number, "no list 'labels'", labels)
    mentions = [_parse_label(label, text, path, number) for label in labels]
    doc_id = record.get("id", number - 1)
    return Document(f"{name}:{doc_id}", text, mentions, f"{path}:{number}")


def _parse_label(label: object, text: str, path: Path, number: int) -> GoldMention:
    if not isinstance(label, dict):
        raise DataFormatError(path, number, "a label is not a JSON object", label)
    span = label.get("span")
    if (
        not isinstance(span, list)
        or len(span) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
    ):
        raise DataFormatError(path, number, "a label's span is not [start, end]", span)
    start, end = span
    if not 0 <= start < end <= len(text):
        raise DataFormatError(
            path, number, f"a label's span is outside the text of {len(text)} characters", span
        )
    entity = label.get("entity_id")
    if not isinstance(entity, str) or not (entity in SPECIAL_IDS or _QID.fullmatch(entity)):
        raise DataFormatError(
            path, number, "entity_id is not Q<digits>, <NIL> or <NO_MAPPING>", entity
        )
    nested = bool(label.get("children")) or label.get("parent") is not None
    if entity in SPECIAL_IDS:
        return GoldMention(start, end, None, SPECIAL_IDS[entity], nested)
    return GoldMention(start, end, entity, "qid", nested)


__all__ = [
    "Benchmark",
    "Document",
    "GoldMention",
    "SPECIAL_IDS",
    "SUFFIX",
    "benchmark_name",
    "read_benchmark",
]
