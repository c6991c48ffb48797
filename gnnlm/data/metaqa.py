"""The MetaQA movie knowledge base (Zhang et al. 2018), as integer-id triples with entity names.

Files: ``kb_train.tsv``, ``kb_dev.tsv``, ``kb_test_old.tsv``, ``kb_test.tsv`` hold ``head<TAB>rel<TAB>tail``
integer ids; ``kb_entity2text.txt`` / ``kb_relation2text.txt`` hold ``id<TAB>text`` where the id is the
0-based line number. Entity names are unique, so the vocabulary uses them (``kg.entities.id("Kismet")``
works and the ids equal MetaQA's); relation names get underscores (``directed_by``).

Known quirk of this copy: line 22,447 of ``kb_entity2text.txt`` carries the id ``29`` but is entity 22,446
("Michèle Mercier"). The loader corrects exactly that line, records it in ``kg.extra["corrected_lines"]``
(the CLI prints it) and rejects any other id that differs from its line number.

Layouts (option ``layout``):

* ``"kb"`` (default): the whole KB as the training graph (the four files joined; repeated triples are
  dropped by default, ``duplicates="drop"``, with the count reported), for multi-hop QA over it.
* ``"splits"``: ``kb_train`` / ``kb_dev`` / ``kb_test`` as train / valid / test and ``kb_test_old`` as an
  extra split ``test_old``; most of their valid/test triples also occur in train (reported).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gnnlm.data.build import RawTriples, build_knowledge_graph, read_triples
from gnnlm.data.dataset import Dataset
from gnnlm.data.errors import DataError, DataFormatError
from gnnlm.data.io import read_rows
from gnnlm.data.schema import EntityText
from gnnlm.data.sources import Download
from gnnlm.data.vocab import Vocabulary

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

KEALLM_URL = (
    "https://raw.githubusercontent.com/vaijsc/keallm/cf68f911e2484809bf5b0da413ba3d9768a747b7/"
    "data/MetaQA/{file}"
)
KB_FILES = ("kb_train.tsv", "kb_dev.tsv", "kb_test_old.tsv", "kb_test.tsv")
#: published line counts of the KB files and the unique triples of their union
PUBLISHED_LINES = {
    "kb_train.tsv": 129000,
    "kb_dev.tsv": 1000,
    "kb_test_old.tsv": 4741,
    "kb_test.tsv": 19344,
}
PUBLISHED_UNIQUE = 129413
#: the one known wrong id: (1-based line, id found, name) -> the id it should have
KNOWN_ID_FIX = {(22447, "29", "Michèle Mercier"): 22446}


def read_indexed_names(path: Path, *, what: str) -> tuple[list[str], list[dict]]:
    """Read ``id<TAB>text`` lines whose id must be the 0-based line number.

    Returns:
        ``(texts, corrections)``; ``corrections`` lists the known-quirk lines fixed.

    Raises:
        DataFormatError: an id that is not the line number (other than the known quirk).
    """
    texts: list[str] = []
    corrections: list[dict] = []
    for number, (key, text) in read_rows(path, 2):
        expected = number - 1
        if key != str(expected):
            fix = KNOWN_ID_FIX.get((number, key, text))
            if fix != expected:
                raise DataFormatError(
                    path, number, f"{what} id is not the 0-based line number {expected}", key
                )
            corrections.append({"file": str(path), "line": number, "found": key, "used": fix})
        texts.append(text)
    return texts, corrections


class MetaQADataset(Dataset):
    """The MetaQA movie KB: 43,234 entities, 9 relations, 129,413 unique triples.

    Args:
        layout: ``"kb"`` (default, everything as train) or ``"splits"``.
        duplicates: default ``"drop"`` here (the KB is a set of facts; its files repeat 24,672 lines).
        **kwargs: the other common options of :class:`~gnnlm.data.dataset.Dataset`.
    """

    name = "metaqa"
    folder = "metaqa"
    description = "MetaQA movie KB (id triples + names) for multi-hop QA"
    required = (*KB_FILES, "kb_entity2text.txt", "kb_relation2text.txt")

    def __init__(self, *, layout: str = "kb", duplicates: str = "drop", **kwargs) -> None:
        super().__init__(duplicates=duplicates, **kwargs)
        if layout not in ("kb", "splits"):
            raise ValueError(f"metaqa: layout={layout!r}: expected 'kb' or 'splits'")
        self.layout = layout

    def options(self) -> dict:
        return {**super().options(), "layout": self.layout}

    def downloads(self) -> list[Download]:
        upstream = {
            "kb_train.tsv": "train.tsv",
            "kb_dev.tsv": "dev.tsv",
            "kb_test_old.tsv": "test_old.tsv",
            "kb_test.tsv": "test.tsv",
            "kb_entity2text.txt": "entity2text.txt",
            "kb_relation2text.txt": "relation2text.txt",
        }
        return [Download(f, KEALLM_URL.format(file=u)) for f, u in upstream.items()]

    def read(self, folder: Path) -> KnowledgeGraph:
        names, corrections = read_indexed_names(folder / "kb_entity2text.txt", what="entity")
        rel_text, rel_corrections = read_indexed_names(
            folder / "kb_relation2text.txt", what="relation"
        )
        corrections += rel_corrections
        seen: dict[str, int] = {}
        for i, n in enumerate(names):
            if n in seen:
                raise DataFormatError(
                    folder / "kb_entity2text.txt", i + 1, f"name repeats line {seen[n] + 1}", n
                )
            seen[n] = i
        rel_names = [t.replace(" ", "_") for t in rel_text]

        def to_name(table: list[str], what: str, path: Path):
            def convert(value: str) -> str:
                if not value.isdigit() or int(value) >= len(table):
                    raise DataFormatError(
                        path, None, f"{what} id out of range [0, {len(table)})", value
                    )
                return table[int(value)]

            return convert

        parts = {}
        for file in KB_FILES:
            path = folder / file
            raw = read_triples(path)
            ent, rel = to_name(names, "entity", path), to_name(rel_names, "relation", path)
            try:
                raw.triples = [(ent(h), rel(r), ent(t)) for h, r, t in raw.triples]
            except DataFormatError:
                self._locate_bad_id(raw, len(names), len(rel_names))
            parts[file] = raw
        if self.verify:
            for file, expected in PUBLISHED_LINES.items():
                if len(parts[file]) != expected:
                    raise DataFormatError(
                        folder / file,
                        None,
                        f"{len(parts[file])} lines where MetaQA's copy has {expected}; this folder "
                        f"holds another version (verify=False loads it anyway)",
                    )
        if self.layout == "kb":
            raw_splits = {"train": RawTriples.concat([parts[f] for f in KB_FILES])}
        else:
            raw_splits = {
                "train": parts["kb_train.tsv"],
                "valid": parts["kb_dev.tsv"],
                "test": parts["kb_test.tsv"],
                "test_old": parts["kb_test_old.tsv"],
            }
        kg = build_knowledge_graph(
            raw_splits,
            name="metaqa",
            unseen=self.unseen,
            duplicates=self.duplicates,
            entities=Vocabulary(names),
            relations=Vocabulary(rel_names),
            entity_text=EntityText(
                names=list(names),
                descriptions=[None] * len(names),
                aliases=[[] for _ in names],
            ),
            relation_text=rel_text,
            extra={"layout": self.layout, "corrected_lines": corrections},
        )
        if (
            self.verify
            and self.layout == "kb"
            and self.duplicates == "drop"
            and len(kg.train) != PUBLISHED_UNIQUE
        ):
            raise DataError(
                f"{folder}: {len(kg.train)} unique KB triples where MetaQA's copy has "
                f"{PUBLISHED_UNIQUE} (verify=False loads it anyway)"
            )
        return kg

    @staticmethod
    def _locate_bad_id(raw: RawTriples, num_entities: int, num_relations: int) -> None:
        for (h, r, t), line in zip(raw.triples, raw.lines):
            for value, bound, what in (
                (h, num_entities, "entity"),
                (r, num_relations, "relation"),
                (t, num_entities, "entity"),
            ):
                if not value.isdigit() or int(value) >= bound:
                    raise DataFormatError(
                        raw.path, line, f"{what} id is not an integer in [0, {bound})", value
                    )
        raise AssertionError("unreachable")
