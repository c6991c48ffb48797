"""SemEval-2010 Task 8 files, read with nothing dropped silently.

Every example is a block of lines (``TRAIN_FILE.TXT``, ``TEST_FILE_FULL.TXT``; ``\\r\\n`` or ``\\n``)::

    1<TAB>"The system ... in an arrayed <e1>configuration</e1> of antenna <e2>elements</e2>."
    Component-Whole(e2,e1)
    Comment: Not a collection: there is structure here, organisation.
    <blank line>

The sentence carries the two nominals, each tagged once; the next line is one of the 19 labels (9
relations in both directions and ``Other``); the ``Comment:`` line may be empty after the colon. Any other
file in this format reads the same way. A malformed line raises
:class:`~gnnlm.data.errors.DataFormatError` naming the file, the line and the value; blank lines between
blocks are separators, not data.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gnnlm.data.errors import DataFormatError

#: the 9 relation types of the task, in the order of the official scorer's tables
RELATIONS: tuple[str, ...] = (
    "Cause-Effect", "Component-Whole", "Content-Container", "Entity-Destination", "Entity-Origin",
    "Instrument-Agency", "Member-Collection", "Message-Topic", "Product-Producer",
)  # fmt: skip
#: the label that is no relation (excluded from the official macro-F1)
OTHER = "Other"
#: the 19 labels: ``Other`` (id 0), then each relation ``(e1,e2)`` and ``(e2,e1)``: label ``1 + 2 r``
#: is relation ``r`` from e1 to e2, ``2 + 2 r`` the reverse
LABELS: tuple[str, ...] = (OTHER,) + tuple(
    f"{r}({a},{b})" for r in RELATIONS for a, b in (("e1", "e2"), ("e2", "e1"))
)
LABEL_IDS: dict[str, int] = {label: i for i, label in enumerate(LABELS)}

_SENTENCE = re.compile(r'^(\d+)\t"(.*)"$')
_TAG = re.compile(r"</?e[12]>")


@dataclass(frozen=True)
class RelationExample:
    """One sentence with its two nominals.

    Attributes:
        id: the example's id in its file (``"1"``; test ids start at ``"8001"``).
        sentence: the sentence without the ``<e1>``/``<e2>`` tags.
        e1: ``(start, end)`` characters of the first nominal in ``sentence`` (end exclusive).
        e2: ``(start, end)`` of the second nominal.
        label: index into :data:`LABELS`, ``None`` when read without labels.
        comment: the annotators' comment (``None`` when empty).
        source: ``"path:line"`` of the sentence line.
    """

    id: str
    sentence: str
    e1: tuple[int, int]
    e2: tuple[int, int]
    label: int | None
    comment: str | None
    source: str

    @property
    def e1_text(self) -> str:
        return self.sentence[self.e1[0] : self.e1[1]]

    @property
    def e2_text(self) -> str:
        return self.sentence[self.e2[0] : self.e2[1]]


def parse_sentence(line: str, path: str | os.PathLike, number: int) -> tuple[str, str, dict]:
    """``id<TAB>"sentence with tags"`` -> ``(id, untagged sentence, {"e1": span, "e2": span})``.

    Raises:
        DataFormatError: not ``id<TAB>"..."``; a tag missing, repeated, unclosed or nested; an empty
            nominal.
    """
    match = _SENTENCE.match(line)
    if match is None:
        raise DataFormatError(path, number, 'expected id<TAB>"sentence"', line)
    identifier, tagged = match.groups()
    pieces, spans, open_tag, position = [], {}, None, 0
    start = 0
    for tag in _TAG.finditer(tagged):
        pieces.append(tagged[position : tag.start()])
        offset = sum(len(p) for p in pieces)
        name = tag.group().strip("</>")
        closing = tag.group().startswith("</")
        if not closing:
            if open_tag is not None or name in spans:
                raise DataFormatError(path, number, f"<{name}> repeated or nested", tagged)
            open_tag, start = name, offset
        else:
            if open_tag != name:
                raise DataFormatError(path, number, f"</{name}> without its <{name}>", tagged)
            if offset == start:
                raise DataFormatError(path, number, f"empty nominal <{name}></{name}>", tagged)
            spans[name], open_tag = (start, offset), None
        position = tag.end()
    pieces.append(tagged[position:])
    if open_tag is not None or set(spans) != {"e1", "e2"}:
        missing = open_tag or ({"e1", "e2"} - set(spans)).pop()
        raise DataFormatError(
            path, number, f"<{missing}>...</{missing}> missing or unclosed", tagged
        )
    return identifier, "".join(pieces), spans


def read_examples(path: str | os.PathLike) -> list[RelationExample]:
    """Every example of a SemEval-2010 Task 8 file, in file order (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: a malformed sentence line (:func:`parse_sentence`), an unknown label, a
            missing ``Comment:`` line, a block not ended by a blank line, or an id given twice.
    """
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    out: list[RelationExample] = []
    first: dict[str, int] = {}
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        number = i + 1
        identifier, sentence, spans = parse_sentence(lines[i], path, number)
        if identifier in first:
            raise DataFormatError(
                path, number, f"id given twice (first at line {first[identifier]})", identifier
            )
        first[identifier] = number
        label = lines[i + 1] if i + 1 < len(lines) else ""
        if label.strip() not in LABEL_IDS:
            raise DataFormatError(path, i + 2, "unknown relation label", label)
        comment = lines[i + 2] if i + 2 < len(lines) else None
        if comment is None or not comment.startswith("Comment:"):
            raise DataFormatError(path, i + 3, "expected a 'Comment:' line", comment or "")
        if i + 3 < len(lines) and lines[i + 3].strip():
            raise DataFormatError(
                path, i + 4, "expected a blank line after the comment", lines[i + 3]
            )
        out.append(RelationExample(
            id=identifier, sentence=sentence, e1=spans["e1"], e2=spans["e2"],
            label=LABEL_IDS[label.strip()], comment=comment[len("Comment:"):].strip() or None,
            source=f"{path}:{number}",
        ))  # fmt: skip
        i += 4
    return out


def example_counts(examples: list[RelationExample]) -> dict[str, object]:
    """``{"examples", "labels": {label: n}, "relations": {relation: n} (both directions), "other",
    "with_comment", "e2_before_e1"}`` (JSON-friendly)."""
    labels = Counter(LABELS[x.label] for x in examples if x.label is not None)
    relations = Counter(label.partition("(")[0] for label in labels.elements())
    return {
        "examples": len(examples),
        "labels": {label: labels[label] for label in LABELS if labels[label]},
        "relations": {r: relations[r] for r in (*RELATIONS, OTHER) if relations[r]},
        "other": labels[OTHER],
        "with_comment": sum(x.comment is not None for x in examples),
        "e2_before_e1": sum(x.e2[0] < x.e1[0] for x in examples),
    }
