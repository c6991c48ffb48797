"""FewRel-format relation instances, read with nothing dropped silently.

A FewRel file (Han et al., 2018, https://aclanthology.org/D18-1514) is one JSON object mapping each
relation id to its instances::

    {"P177": [{"tokens": ["In", "June", "1987", ",", ...],
               "h": ["cape girardeau bridge", "Q5034838", [[26, 27, 28]]],
               "t": ["mississippi river", "Q1497", [[19, 20]]]}, ...], ...}

``h`` and ``t`` are the head and tail entity: name, Wikidata id (``null`` where the set has none) and the
token positions of each of its occurrences (a list of index lists). The relation instances are read in
file order; the first occurrence of each entity is the one marked and linked. Any file in this format
reads the same way (``val_wiki.json``, ``val_nyt.json``, a user's own set). A malformed entry raises
:class:`~gnnlm.data.errors.DataFormatError` naming the file, the relation, the instance's index and the
value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnnlm.data.errors import DataFormatError


@dataclass(frozen=True)
class Entity:
    """An entity mention of an instance.

    Attributes:
        name: the entity's name as the file gives it.
        id: its Wikidata id (``"Q1497"``), ``None`` when the file has none.
        start: first token of its first occurrence.
        end: one past its last token (``tokens[start:end]`` is the mention).
        occurrences: how many occurrences the file lists (only the first is marked).
    """

    name: str
    id: str | None
    start: int
    end: int
    occurrences: int = 1


@dataclass(frozen=True)
class Instance:
    """One sentence expressing ``relation`` between ``head`` and ``tail``.

    Attributes:
        tokens: the sentence's tokens.
        head: the head entity; ``tail``: the tail entity.
        relation: the relation id (``"P177"``).
        index: the instance's position in its relation's list (0-based, file order).
    """

    tokens: tuple[str, ...]
    head: Entity
    tail: Entity
    relation: str
    index: int


@dataclass
class FewRelData:
    """A FewRel file's instances, per relation in file order.

    Attributes:
        path: the file.
        relations: relation id -> its instances.
        counts: ``{"relations", "instances", "per_relation": {id: n}, "extra_occurrences"}``, the last
            the entity occurrences beyond the first (listed in the file, not marked).
    """

    path: Path
    relations: dict[str, list[Instance]]
    counts: dict[str, Any]


def read_fewrel(path: str | os.PathLike) -> FewRelData:
    """Every relation instance of a FewRel-format JSON file.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: invalid JSON, a top level that is not an object of lists, an instance without
            ``tokens`` (a non-empty list of strings), ``h`` or ``t`` (``[name, id or null, [[positions],
            ...]]`` with positions a non-empty, increasing run of token indices inside the sentence),
            or head and tail sharing a token.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"invalid JSON ({err.msg})", None) from None
    if not isinstance(record, dict) or not record:
        raise DataFormatError(
            path,
            None,
            "expected a non-empty object of relation id -> instances",
            type(record).__name__,
        )
    relations: dict[str, list[Instance]] = {}
    extra = 0
    for relation, items in record.items():
        if not isinstance(items, list) or not items:
            raise DataFormatError(
                path, None, f"relation {relation}: expected a non-empty list of instances", items
            )
        out = []
        for i, item in enumerate(items):
            instance = parse_instance(item, relation, i, path)
            extra += instance.head.occurrences + instance.tail.occurrences - 2
            out.append(instance)
        relations[relation] = out
    counts = {
        "relations": len(relations),
        "instances": sum(len(v) for v in relations.values()),
        "per_relation": {r: len(v) for r, v in relations.items()},
        "extra_occurrences": extra,
    }
    return FewRelData(path, relations, counts)


def parse_instance(item: Any, relation: str, index: int, path: Path) -> Instance:
    """One instance (``index`` in the list of ``relation``) of the file ``path``."""

    def fail(problem: str, value: object) -> DataFormatError:
        return DataFormatError(
            path, None, f"relation {relation}, instance {index}: {problem}", value
        )

    if not isinstance(item, dict):
        raise fail("expected an object with tokens, h and t", item)
    tokens = item.get("tokens")
    if (
        not isinstance(tokens, list)
        or not tokens
        or not all(isinstance(t, str) and t for t in tokens)
    ):
        raise fail("tokens must be a non-empty list of non-empty strings", tokens)
    head = _entity(item.get("h"), "h", len(tokens), fail)
    tail = _entity(item.get("t"), "t", len(tokens), fail)
    if head.start < tail.end and tail.start < head.end:
        raise fail(
            "head and tail mentions overlap", [[head.start, head.end], [tail.start, tail.end]]
        )
    return Instance(tuple(tokens), head, tail, relation, index)


def _entity(value: Any, key: str, length: int, fail) -> Entity:
    """An ``h`` / ``t`` entry: ``[name, wikidata id or null, [[token indices], ...]]``."""
    if not isinstance(value, list) or len(value) != 3:
        raise fail(f"{key} must be [name, id, [[positions], ...]]", value)
    name, wikidata, occurrences = value
    if not isinstance(name, str) or not name:
        raise fail(f"{key} name must be a non-empty string", name)
    if wikidata is not None and (not isinstance(wikidata, str) or not wikidata):
        raise fail(f"{key} id must be a string or null", wikidata)
    if not isinstance(occurrences, list) or not occurrences:
        raise fail(f"{key} positions must be a non-empty list of token-index lists", occurrences)
    for positions in occurrences:
        if (
            not isinstance(positions, list)
            or not positions
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in positions)
        ):
            raise fail(f"{key} positions must be non-empty lists of token indices", positions)
        if positions != list(range(positions[0], positions[0] + len(positions))):
            raise fail(f"{key} positions must be consecutive increasing token indices", positions)
        if positions[0] < 0 or positions[-1] >= length:
            raise fail(f"{key} positions outside the sentence's {length} tokens", positions)
    first = occurrences[0]
    return Entity(name, wikidata, first[0], first[-1] + 1, len(occurrences))


__all__ = ["Entity", "FewRelData", "Instance", "parse_instance", "read_fewrel"]
