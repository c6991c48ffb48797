"""A user's own knowledge graph from delimited text files: ``load_dataset("tsv:/path/to/dir", ...)``.

The folder holds one file per split. With no options, ``train`` / ``valid`` / ``test`` files with the
extension ``.txt``, ``.tsv`` or ``.csv`` are found automatically, tab-separated ``head, relation, tail``
(comma-separated for ``.csv``, where fields may be quoted as pandas and Excel write them). All three splits
must be there: a missing ``valid`` or ``test`` file is an error naming the folder and the files it holds,
because a misspelt name (``dev.txt``, ``validation.txt``) would otherwise load as an empty split. A dataset
without a validation (or test) split says so by naming its files. A config block (YAML ``dataset_kwargs``
or keyword arguments) names anything else::

    dataset: tsv:data/my_kg
    dataset_kwargs:
      files: {train: edges_train.csv, test: edges_test.csv}   # no validation split
      delimiter: ","
      header: true
      columns: [subject, predicate, object]   # header names, or 0-based indices like [1, 0, 2]
      entity_text: names.tsv                   # optional id<TAB>name file

Lines are checked strictly: every line must have the same number of fields (3, or the header's, or
``num_columns`` for files with extra columns), no empty field, valid text in ``encoding``; errors name
the file, line, column and value. A UTF-8 byte-order mark is removed.

``header: true`` says that the first line of *every* file is a header (pandas' ``header=0``). Since a
header-less file would lose its first triple, the header is checked: with ``columns`` given by name, the
header must hold those names; with column indices, every file's first line must equal the training
file's, and the header's head, relation and tail must not occur as ids in the triples (a data line
almost always shares an entity with the rest of the graph). ``kg.extra["header"]`` records it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gnnlm.data.build import RawTriples, build_knowledge_graph, read_triples
from gnnlm.data.dataset import Dataset
from gnnlm.data.errors import DataFormatError, DatasetNotFoundError, shorten
from gnnlm.data.io import describe_missing, iter_lines, split_fields
from gnnlm.data.schema import SPLITS, EntityText
from gnnlm.data.sources import Location
from gnnlm.data.text import read_id_text

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

EXTENSIONS = (".txt", ".tsv", ".csv")
#: fields of a triple file without ``num_columns`` or a header
TRIPLE_COLUMNS = 3


class TSVDataset(Dataset):
    """Triples from delimited text files in a folder.

    Args:
        path: the folder (``tsv:PATH``); relative paths are taken relative to ``data_dir`` when given.
        files: ``{split: file name}``; default: ``train``/``valid``/``test`` + ``.txt``/``.tsv``/``.csv``
            found in the folder (all three required). Leave a split out here when the dataset has none.
        columns: where head, relation and tail are: three 0-based indices or three header names.
        delimiter: field separator; default tab (comma when every file ends in ``.csv``).
        header: the first line of each file is a header (checked; see the module docstring).
        num_columns: fields per line; default: the header's count, else 3 (a triple file). Set it to
            read files with extra columns (weights, timestamps), which are then ignored.
        encoding: text encoding of the files.
        quotechar: fields may be quoted with this character (the quotes are removed); ``"auto"``
            (default): ``'"'`` for comma-separated files, none otherwise; ``None``: no quoting.
        entity_text: optional ``identifier<TAB>name`` file for entity names.
        relation_text: optional ``identifier<TAB>name`` file for relation names.
        name: the graph's name; default the folder name.
        **kwargs: the common options of :class:`~gnnlm.data.dataset.Dataset`.
    """

    name = "tsv"
    folder = ""
    description = "your own triples: tsv:/path/to/dir (+ files, columns, delimiter, header)"

    def __init__(
        self,
        *,
        path: str | os.PathLike,
        files: Mapping[str, str] | None = None,
        columns: Sequence[int | str] = (0, 1, 2),
        delimiter: str | None = None,
        header: bool = False,
        num_columns: int | None = None,
        encoding: str = "utf-8",
        quotechar: str | None = "auto",
        entity_text: str | None = None,
        relation_text: str | None = None,
        name: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not str(path):
            raise ValueError("tsv: expected tsv:/path/to/dir")
        self.path = Path(path).expanduser()
        self.files = dict(files) if files is not None else None
        if len(columns) != 3:
            raise ValueError(f"tsv: columns must name head, relation, tail; got {list(columns)}")
        if any(isinstance(c, str) for c in columns) and not header:
            raise ValueError(f"tsv: columns by name {list(columns)} need header=true")
        if not isinstance(header, bool):
            raise ValueError(f"tsv: header must be true or false, got {header!r}")
        if num_columns is not None and (not isinstance(num_columns, int) or num_columns < 3):
            raise ValueError(f"tsv: num_columns must be an integer >= 3, got {num_columns!r}")
        if quotechar not in (None, "auto") and (
            not isinstance(quotechar, str) or len(quotechar) != 1
        ):
            raise ValueError(
                f"tsv: quotechar must be one character, 'auto' or null; got {quotechar!r}"
            )
        self.columns = list(columns)
        self.delimiter = delimiter
        self.header = header
        self.num_columns = num_columns
        self.encoding = encoding
        self.quotechar = quotechar
        self.entity_text_file = entity_text
        self.relation_text_file = relation_text
        self.display_name = name or self.path.name or "tsv"

    def options(self) -> dict:
        return {
            **super().options(),
            "files": self.files,
            "columns": self.columns,
            "delimiter": self.delimiter,
            "header": self.header,
            "num_columns": self.num_columns,
            "encoding": self.encoding,
            "quotechar": self.quotechar,
            "entity_text": self.entity_text_file,
            "relation_text": self.relation_text_file,
        }

    # -- files -------------------------------------------------------------------------------------
    def split_files(self, folder: Path) -> dict[str, str]:
        if self.files is not None:
            unknown = set(self.files) - set(SPLITS)
            if "train" not in self.files:
                raise ValueError(f"tsv: files must name a train file; got {sorted(self.files)}")
            if unknown:
                raise ValueError(f"tsv: unknown splits {sorted(unknown)} (expected {SPLITS})")
            return dict(self.files)
        found = {}
        for split in SPLITS:
            # lexists: a broken symbolic link is found, and reported, rather than skipped
            names = [
                f"{split}{ext}" for ext in EXTENSIONS if os.path.lexists(folder / f"{split}{ext}")
            ]
            if len(names) > 1:
                raise DatasetNotFoundError(
                    f"{folder}: {' and '.join(names)} both look like the {split} split; name the "
                    f"files with files={{train: ..., valid: ..., test: ...}}"
                )
            if names:
                found[split] = names[0]
        missing = [s for s in SPLITS if s not in found]
        if missing:
            looked = ", ".join(f"{s}{ext}" for s in missing for ext in EXTENSIONS)
            present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            holds = ", ".join(present[:20]) or "nothing"
            if len(present) > 20:
                holds += f", ... ({len(present)} in all)"
            message = (
                f"{folder}: no {' or '.join(missing)} file (looked for {looked}; the folder holds "
                f"{holds}). Name the files with files={{train: ..., valid: ..., test: ...}}"
            )
            if "train" in found:
                named = ", ".join(f"{s}: {found[s]}" for s in SPLITS if s in found)
                message += (
                    f"; a dataset without a {' or '.join(missing)} split names only the files it "
                    f"has: files={{{named}}}"
                )
            raise DatasetNotFoundError(message)
        return found

    def locate(self, data_dir: str | os.PathLike | None = None) -> Location:
        folder = self.path
        if data_dir is not None and not folder.is_absolute():
            folder = Path(data_dir) / folder
        if not folder.is_dir():
            raise DatasetNotFoundError(f"{folder}: no such folder")
        for file in self.split_files(folder).values():
            if not (folder / file).is_file():
                raise DatasetNotFoundError(describe_missing(folder / file))
        return Location(folder, "tsv")

    def fetch(self, data_dir: str | os.PathLike | None = None) -> Location:
        return self.locate(data_dir)

    def source_files(self, folder: Path) -> dict[str, Path]:
        names = list(self.split_files(folder).values())
        names += [f for f in (self.entity_text_file, self.relation_text_file) if f]
        return {n: folder / n for n in names if (folder / n).is_file()}

    # -- parsing -----------------------------------------------------------------------------------
    def _quotechar(self, delimiter: str) -> str | None:
        if self.quotechar == "auto":
            return '"' if delimiter == "," else None
        return self.quotechar

    def _first_line(self, path: Path, delimiter: str) -> tuple[int, str, list[str]] | None:
        first = next(iter_lines(path, encoding=self.encoding), None)
        if first is None:
            return None
        number, line = first
        try:
            fields, _ = split_fields(line, delimiter, self._quotechar(delimiter))
        except ValueError as err:
            raise DataFormatError(path, number, err.args[0], line, column=err.args[1]) from None
        return number, line, fields

    def _layout(
        self, path: Path, delimiter: str, first: tuple[int, str, list[str]] | None
    ) -> tuple[int, tuple[int, int, int]]:
        """Column count and (head, relation, tail) indices, from the header or the column options."""
        if first is None:  # an empty valid/test split is allowed; train is checked in read()
            first = (1, "", [str(c) for c in self.columns])
        number, line, fields = first
        if self.num_columns is not None:
            num_columns = self.num_columns
        elif self.header:
            num_columns = len(fields)
        else:
            indices = [c for c in self.columns if isinstance(c, int)]
            num_columns = max([TRIPLE_COLUMNS - 1, *indices]) + 1
        indices = []
        for c in self.columns:
            if isinstance(c, str):
                if c not in fields:
                    raise DataFormatError(path, number, f"header has no column {c!r}", line)
                indices.append(fields.index(c))
            else:
                if not 0 <= int(c) < num_columns:
                    raise DataFormatError(
                        path, number, f"column {c} out of range for {num_columns} columns", line
                    )
                indices.append(int(c))
        return num_columns, (indices[0], indices[1], indices[2])

    def _check_header(
        self,
        headers: dict[str, tuple[Path, tuple[int, str, list[str]] | None]],
        columns: tuple[int, int, int],
        raw: dict[str, RawTriples],
    ) -> None:
        """With ``header=true`` and column indices: the first lines must be a header, not a triple."""
        train_path, train_first = headers["train"]
        assert train_first is not None
        fields = train_first[2]
        h, r, t = (fields[c] for c in columns)
        entities = {e for triples in raw.values() for x, _, y in triples.triples for e in (x, y)}
        relations = {rel for triples in raw.values() for _, rel, _ in triples.triples}
        clash = next(
            (
                (what, value)
                for what, value, names in (
                    ("head", h, entities),
                    ("tail", t, entities),
                    ("relation", r, relations),
                )
                if value in names
            ),
            None,
        )
        if clash is not None:
            what, value = clash
            split, i = next(
                (s, i)
                for s, triples in raw.items()
                for i, triple in enumerate(triples.triples)
                if value in ((triple[1],) if what == "relation" else (triple[0], triple[2]))
            )
            raise DataFormatError(
                train_path,
                1,
                f"header=true, but the first line looks like a triple: its {what} {value!r} is also "
                f"{'a relation' if what == 'relation' else 'an entity'} at {raw[split].where(i)}; "
                f"header=false reads it as data (or name the columns, columns=[...], to keep it)",
                train_first[1],
            )
        for path, first in headers.values():
            if first is not None and first[2] != train_first[2]:
                raise DataFormatError(
                    path,
                    1,
                    f"header=true, but the first line differs from the header of {train_path.name} "
                    f"({shorten(train_first[1])!r}); is this file without a header? (header=false "
                    f"reads every line as data)",
                    first[1],
                )

    def read(self, folder: Path) -> KnowledgeGraph:
        files = self.split_files(folder)
        delimiter = self.delimiter
        if delimiter is None:
            delimiter = "," if all(f.endswith(".csv") for f in files.values()) else "\t"
        quotechar = self._quotechar(delimiter)
        hint = (
            ""
            if self.num_columns is not None or self.header
            else f" (a triple file has {TRIPLE_COLUMNS}; to read files with more, set num_columns "
            f"and pick head, relation and tail with columns)"
        )
        raw: dict[str, RawTriples] = {}
        headers: dict[str, tuple[Path, tuple[int, str, list[str]] | None]] = {}
        columns = (0, 1, 2)
        for split, file in files.items():
            path = folder / file
            first = self._first_line(path, delimiter)
            headers[split] = (path, first)
            num_columns, columns_here = self._layout(path, delimiter, first)
            if split == "train":
                columns = columns_here
            raw[split] = read_triples(
                path,
                columns=columns_here,
                num_columns=num_columns,
                delimiter=delimiter,
                encoding=self.encoding,
                skip_header=self.header,
                quotechar=quotechar,
                hint=hint,
            )
            if split == "train" and not raw[split].triples:
                raise DataFormatError(path, None, "the training file holds no triples")
        extra = {"files": files, "delimiter": delimiter}
        if self.header:
            if all(isinstance(c, int) for c in self.columns):
                self._check_header(headers, columns, raw)
            extra["header"] = headers["train"][1][1]  # type: ignore[index]
        kg = build_knowledge_graph(
            raw,
            name=self.display_name,
            unseen=self.unseen,
            duplicates=self.duplicates,
            extra=extra,
        )
        if self.entity_text_file:
            names, outside = read_id_text(folder / self.entity_text_file, kg.entities)
            n = kg.num_entities
            kg.entity_text = EntityText(names, [None] * n, [[] for _ in range(n)])
            kg.extra["entity_text_lines_outside_graph"] = outside
            kg.extra["entities_without_name"] = sum(1 for x in names if not x)
        if self.relation_text_file:
            kg.relation_text, outside = read_id_text(folder / self.relation_text_file, kg.relations)
            kg.extra["relation_text_lines_outside_graph"] = outside
        return kg
