"""A user's own knowledge graph from delimited text files: ``load_dataset("tsv:/path/to/dir", ...)``.

The folder holds one file per split. With no options, ``train`` / ``valid`` / ``test`` files with the
extension ``.txt``, ``.tsv`` or ``.csv`` are found automatically (train required), tab-separated
``head, relation, tail`` (comma-separated for ``.csv``). A config block (YAML ``dataset_kwargs`` or
keyword arguments) names anything else::

    dataset: tsv:data/my_kg
    dataset_kwargs:
      files: {train: edges_train.csv, valid: edges_dev.csv, test: edges_test.csv}
      delimiter: ","
      header: true
      columns: [subject, predicate, object]   # header names, or 0-based indices like [1, 0, 2]
      entity_text: names.tsv                   # optional id<TAB>name file

Lines are checked strictly: every line must have the same number of fields as the first (or the
header), no empty field, valid text in ``encoding``; errors name the file, line and value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gnnlm.data.build import build_knowledge_graph, read_triples
from gnnlm.data.dataset import Dataset
from gnnlm.data.errors import DataFormatError, DatasetNotFoundError
from gnnlm.data.io import iter_lines
from gnnlm.data.knowledge_graph import SPLITS, EntityText, KnowledgeGraph
from gnnlm.data.sources import Location
from gnnlm.data.text import read_id_text

EXTENSIONS = (".txt", ".tsv", ".csv")


class TSVDataset(Dataset):
    """Triples from delimited text files in a folder.

    Args:
        path: the folder (``tsv:PATH``); relative paths are taken relative to ``data_dir`` when given.
        files: ``{split: file name}``; default: ``train``/``valid``/``test`` + ``.txt``/``.tsv``/``.csv``
            found in the folder (train required).
        columns: where head, relation and tail are: three 0-based indices or three header names.
        delimiter: field separator; default tab (comma when every file ends in ``.csv``).
        header: the first line of each file is a header.
        num_columns: fields per line; default: the header's (or the first line's) count.
        encoding: text encoding of the files.
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
        self.columns = list(columns)
        self.delimiter = delimiter
        self.header = header
        self.num_columns = num_columns
        self.encoding = encoding
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
            for ext in EXTENSIONS:
                if (folder / f"{split}{ext}").is_file():
                    found[split] = f"{split}{ext}"
                    break
        if "train" not in found:
            raise DatasetNotFoundError(
                f"{folder}: no train file (looked for train{', train'.join(EXTENSIONS)}); name the "
                f"files with files={{train: ..., valid: ..., test: ...}}"
            )
        return found

    def locate(self, data_dir: str | os.PathLike | None = None) -> Location:
        folder = self.path
        if data_dir is not None and not folder.is_absolute():
            folder = Path(data_dir) / folder
        if not folder.is_dir():
            raise DatasetNotFoundError(f"{folder}: no such folder")
        for file in self.split_files(folder).values():
            if not (folder / file).is_file():
                raise DatasetNotFoundError(f"{folder / file}: file not found")
        return Location(folder, "tsv")

    def fetch(self, data_dir: str | os.PathLike | None = None) -> Location:
        return self.locate(data_dir)

    def source_files(self, folder: Path) -> dict[str, Path]:
        names = list(self.split_files(folder).values())
        names += [f for f in (self.entity_text_file, self.relation_text_file) if f]
        return {n: folder / n for n in names if (folder / n).is_file()}

    # -- parsing -----------------------------------------------------------------------------------
    def _layout(self, path: Path, delimiter: str) -> tuple[int, tuple[int, int, int]]:
        """Column count and (head, relation, tail) indices, from the header or the first line."""
        first = next(iter_lines(path, encoding=self.encoding), None)
        if first is None:  # an empty valid/test split is allowed; train is checked in read()
            first = (1, delimiter.join(str(c) for c in self.columns))
        number, line = first
        fields = line.split(delimiter)
        num_columns = self.num_columns or len(fields)
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

    def read(self, folder: Path) -> KnowledgeGraph:
        files = self.split_files(folder)
        delimiter = self.delimiter
        if delimiter is None:
            delimiter = "," if all(f.endswith(".csv") for f in files.values()) else "\t"
        raw = {}
        for split, file in files.items():
            path = folder / file
            num_columns, columns = self._layout(path, delimiter)
            raw[split] = read_triples(
                path,
                columns=columns,
                num_columns=num_columns,
                delimiter=delimiter,
                encoding=self.encoding,
                skip_header=self.header,
            )
            if split == "train" and not raw[split].triples:
                raise DataFormatError(path, None, "the training file holds no triples")
        kg = build_knowledge_graph(
            raw,
            name=self.display_name,
            unseen=self.unseen,
            duplicates=self.duplicates,
            extra={"files": files, "delimiter": delimiter},
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
