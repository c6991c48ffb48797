"""ConceptNet commonsense subsets CN-100K (Li et al. 2016) and CN-82K (Wang et al. 2021).

The files hold ``relation<TAB>head<TAB>tail`` (relation first, unlike the ConvE files), with free-text
English concepts as nodes (``"AtLocation\\trestroom\\trest area"``). Valid and test hold positives
only. CN-82K is an inductive split: about half of its valid/test triples involve a concept never seen in
train, which ``kg.extra["unseen_triples"]`` reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gnnlm.data.build import build_knowledge_graph, read_triples
from gnnlm.data.dataset import Dataset
from gnnlm.data.schema import SPLITS
from gnnlm.data.sources import Download

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

INDUCTIVE_URL = (
    "https://raw.githubusercontent.com/BinWang28/InductivE/"
    "28ac8f2799ee01b6fa8f8648e2e68cf09f929eb7/dataset_only/{subset}/{split}.txt"
)

#: published triple and relation counts per subset
SUBSETS: dict[str, dict[str, int]] = {
    "CN-100K": {"num_relations": 34, "num_train": 100000, "num_valid": 1200, "num_test": 1200},
    "CN-82K": {"num_relations": 34, "num_train": 81920, "num_valid": 10240, "num_test": 10240},
}


class ConceptNetDataset(Dataset):
    """ConceptNet CN-100K (default) or CN-82K; columns ``relation, head, tail``.

    Args:
        subset: ``"CN-100K"`` or ``"CN-82K"``.
        **kwargs: the common options of :class:`~gnnlm.data.dataset.Dataset`.
    """

    name = "conceptnet"
    folder = "conceptnet"
    description = "ConceptNet commonsense subsets CN-100K (default) / CN-82K (relation, head, tail)"
    synonyms = ("cn100k",)

    def __init__(self, *, subset: str = "CN-100K", **kwargs) -> None:
        super().__init__(**kwargs)
        match = {s.lower().replace("-", ""): s for s in SUBSETS}
        key = subset.lower().replace("-", "").replace("_", "")
        if key not in match:
            raise ValueError(
                f"conceptnet: unknown subset {subset!r}; expected one of {list(SUBSETS)}"
            )
        self.subset = match[key]
        self.published = SUBSETS[self.subset]

    def options(self) -> dict:
        return {**super().options(), "subset": self.subset}

    def folder_name(self) -> str:
        return f"{self.folder}/{self.subset}"

    def downloads(self) -> list[Download]:
        return [
            Download(f"{s}.txt", INDUCTIVE_URL.format(subset=self.subset, split=s)) for s in SPLITS
        ]

    def read(self, folder: Path) -> KnowledgeGraph:
        raw = {s: read_triples(folder / f"{s}.txt", columns=(1, 0, 2)) for s in SPLITS}
        return build_knowledge_graph(
            raw,
            name=f"conceptnet/{self.subset}",
            unseen=self.unseen,
            duplicates=self.duplicates,
            extra={"subset": self.subset},
        )
