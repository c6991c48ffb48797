"""From labelled triples to a :class:`KnowledgeGraph`, with nothing lost silently.

Every loader reads its files into :class:`RawTriples` (names plus the line each came from) and calls
:func:`build_knowledge_graph`, which assigns ids, applies the ``unseen`` and ``duplicates`` policies and
records what it found in ``kg.extra``:

* ``unseen_triples``: per evaluation split, triples whose head, relation or tail never occurs in train
  (FB15k-237 has 28 in test, WN18RR 210 across valid and test);
* ``unseen_entities`` / ``unseen_relations``: vocabulary entries that never occur in train;
* ``duplicate_triples``: per split, lines repeating a triple of the same split;
* ``overlapping_triples``: per split, triples already in an earlier split (valid/test leakage);
* ``dropped_triples``: per split, what the policies removed; ``source_lines``: lines read per split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gnnlm.data.errors import DataFormatError
from gnnlm.data.io import read_rows
from gnnlm.data.schema import SPLITS
from gnnlm.data.vocab import Vocabulary

if TYPE_CHECKING:  # torch is imported when a graph is built, not with the loaders
    from gnnlm.data.knowledge_graph import KnowledgeGraph

Policy = Literal["keep", "drop", "error"]
POLICIES: tuple[str, ...] = ("keep", "drop", "error")


@dataclass
class RawTriples:
    """Labelled triples of one split and where each came from.

    Args:
        path: the source file (for messages).
        triples: ``(head, relation, tail)`` names.
        lines: the 1-based line number of each triple in its file.
        more_paths: further source files, when a split joins several (see :meth:`concat`).
        file_index: per triple, its file (0 = ``path``, ``k`` = ``more_paths[k - 1]``); empty when
            every triple comes from ``path``.
    """

    path: Path
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    more_paths: list[Path] = field(default_factory=list)
    file_index: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.triples)

    def where(self, i: int) -> str:
        """``path:line`` of triple ``i``."""
        k = self.file_index[i] if self.file_index else 0
        path = self.path if k == 0 else self.more_paths[k - 1]
        return f"{path}:{self.lines[i]}"

    def file_of(self, i: int) -> Path:
        k = self.file_index[i] if self.file_index else 0
        return self.path if k == 0 else self.more_paths[k - 1]

    @classmethod
    def concat(cls, parts: list[RawTriples]) -> RawTriples:
        """One split made of several files, each triple remembering its file and line."""
        out = cls(parts[0].path, more_paths=[p.path for p in parts[1:]])
        for k, part in enumerate(parts):
            out.triples.extend(part.triples)
            out.lines.extend(part.lines)
            out.file_index.extend([k] * len(part))
        return out


def read_triples(
    path: str | os.PathLike,
    *,
    columns: tuple[int, int, int] = (0, 1, 2),
    num_columns: int = 3,
    delimiter: str = "\t",
    encoding: str = "utf-8",
    skip_header: bool = False,
    map_value: Callable[[str], str] | None = None,
    quotechar: str | None = None,
    hint: str = "",
) -> RawTriples:
    """Read one split file of labelled triples.

    Args:
        path: the file.
        columns: the columns (0-based) holding head, relation and tail, e.g. ``(1, 0, 2)`` for
            ConceptNet's ``relation<TAB>head<TAB>tail``.
        num_columns: the number of columns every line must have.
        delimiter: the field separator.
        encoding: the text encoding.
        skip_header: skip the first line.
        map_value: optional function applied to every field (e.g. stripping).
        quotechar: fields may be quoted with this character (CSV style; quotes are removed).
        hint: added to a wrong-column-count message (e.g. how to read extra columns on purpose).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: a malformed line (wrong column count, empty field, undecodable bytes).
    """
    h_col, r_col, t_col = columns
    if max(columns) >= num_columns or min(columns) < 0:
        raise ValueError(f"columns {columns} out of range for {num_columns} columns")
    out = RawTriples(Path(path))
    rows = read_rows(
        path,
        num_columns,
        delimiter=delimiter,
        encoding=encoding,
        skip_header=skip_header,
        quotechar=quotechar,
        hint=hint,
    )
    for number, fields in rows:
        h, r, t = fields[h_col], fields[r_col], fields[t_col]
        if map_value is not None:
            h, r, t = map_value(h), map_value(r), map_value(t)
        out.triples.append((h, r, t))
        out.lines.append(number)
    return out


def _check_policy(option: str, value: str) -> None:
    if value not in POLICIES:
        raise ValueError(f"{option}={value!r}: expected one of {', '.join(POLICIES)}")


def build_knowledge_graph(
    raw: Mapping[str, RawTriples],
    *,
    name: str,
    unseen: Policy = "keep",
    duplicates: Policy = "keep",
    entities: Vocabulary | None = None,
    relations: Vocabulary | None = None,
    **kg_kwargs,
) -> KnowledgeGraph:
    """Assign ids to labelled triples and build the graph.

    Args:
        raw: ``{"train": RawTriples, "valid": ..., "test": ...}`` (other split names are kept too,
            after these three).
        name: the dataset name.
        unseen: what to do with a valid/test triple whose head, relation or tail never occurs in
            train: ``"keep"`` it (its new entities join the vocabulary, as the published statistics
            count them), ``"drop"`` it (and any entity seen only there), or raise (``"error"``).
        duplicates: what to do with a triple that repeats one of its own split or of an earlier split:
            ``"keep"``, ``"drop"`` (the later occurrence) or ``"error"``.
        entities: a fixed entity vocabulary (names outside it are an error); default: built from the
            triples in order of first appearance (train first).
        relations: a fixed relation vocabulary; default: built like ``entities``.
        **kg_kwargs: passed to :class:`KnowledgeGraph` (``entity_text``, ``extra``, ...).

    Raises:
        DataFormatError: with ``unseen="error"`` / ``duplicates="error"``, or a name outside a fixed
            vocabulary; the message names the file, the line and the value.
    """
    import torch

    from gnnlm.data.knowledge_graph import KnowledgeGraph

    _check_policy("unseen", unseen)
    _check_policy("duplicates", duplicates)
    if "train" not in raw:
        raise ValueError(f"{name}: no training split")
    order = [s for s in SPLITS if s in raw] + [s for s in raw if s not in SPLITS]
    fixed_entities, fixed_relations = entities is not None, relations is not None
    entities = entities if entities is not None else Vocabulary()
    relations = relations if relations is not None else Vocabulary()

    # plain dicts in the hot loop; the vocabularies are rebuilt from them at the end
    entity_ids = {n: i for i, n in enumerate(entities.names)}
    relation_ids = {n: i for i, n in enumerate(relations.names)}

    def lookup(table: dict[str, int], fixed: bool, value: str, what: str, src: RawTriples, i: int):
        idx = table.get(value)
        if idx is None:
            if fixed:
                raise DataFormatError(
                    src.file_of(i), src.lines[i], f"{what} not in the {name} vocabulary", value
                )
            idx = table[value] = len(table)
        return idx

    train_entities: set[str] = set()
    train_relations: set[str] = set()
    first_seen: dict[tuple[str, str, str], tuple[int, int]] = {}  # triple -> (split, index)
    report: dict[str, dict[str, int]] = {
        key: {}
        for key in (
            "source_lines",
            "unseen_triples",
            "duplicate_triples",
            "overlapping_triples",
            "dropped_triples",
        )
    }
    splits = {}
    for index, split in enumerate(order):
        src = raw[split]
        is_train = split == "train"
        rows: list[tuple[int, int, int]] = []
        n_unseen = n_dup = n_overlap = n_dropped = 0
        for i, ((h, r, t), line) in enumerate(zip(src.triples, src.lines)):
            if not is_train:
                missing = None
                if h not in train_entities:
                    missing = ("head entity", h)
                elif t not in train_entities:
                    missing = ("tail entity", t)
                elif r not in train_relations:
                    missing = ("relation", r)
                if missing is not None:
                    n_unseen += 1
                    if unseen == "error":
                        raise DataFormatError(
                            src.file_of(i),
                            line,
                            f"{missing[0]} never occurs in the training split",
                            missing[1],
                        )
                    if unseen == "drop":
                        n_dropped += 1
                        continue
            key = (h, r, t)
            first = first_seen.get(key)
            if first is None:
                first_seen[key] = (index, i)
            else:
                first_split = order[first[0]]
                if first_split == split:
                    n_dup += 1
                else:
                    n_overlap += 1
                if duplicates == "error":
                    where = raw[first_split].where(first[1])
                    raise DataFormatError(
                        src.file_of(i), line, f"duplicate triple (first at {where})", "\t".join(key)
                    )
                if duplicates == "drop":
                    n_dropped += 1
                    continue
            rows.append(
                (
                    lookup(entity_ids, fixed_entities, h, "head entity", src, i),
                    lookup(relation_ids, fixed_relations, r, "relation", src, i),
                    lookup(entity_ids, fixed_entities, t, "tail entity", src, i),
                )
            )
            if is_train:
                train_entities.add(h)
                train_entities.add(t)
                train_relations.add(r)
        splits[split] = torch.tensor(rows, dtype=torch.long).reshape(-1, 3)  # [n, 3]
        report["source_lines"][split] = len(src)
        report["duplicate_triples"][split] = n_dup
        report["dropped_triples"][split] = n_dropped
        if not is_train:
            report["unseen_triples"][split] = n_unseen
            report["overlapping_triples"][split] = n_overlap

    if not fixed_entities:
        entities = Vocabulary(entity_ids)  # dicts keep insertion order: ids are unchanged
    if not fixed_relations:
        relations = Vocabulary(relation_ids)
    extra = dict(kg_kwargs.pop("extra", None) or {})
    extra.update(report)
    extra["unseen_policy"] = unseen
    extra["duplicates_policy"] = duplicates
    extra["unseen_entities"] = _count_outside(entities.names, train_entities)
    extra["unseen_relations"] = _count_outside(relations.names, train_relations)
    return KnowledgeGraph(entities, relations, splits, name=name, extra=extra, **kg_kwargs)


def _count_outside(names: Iterable[str], inside: set[str]) -> int:
    return sum(1 for n in names if n not in inside)
