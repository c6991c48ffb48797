"""The ConvE-format link-prediction benchmarks: FB15k-237, WN18RR, UMLS, Kinship, Nations.

Triples come as ``head<TAB>relation<TAB>tail`` in ``train.txt`` / ``valid.txt`` / ``test.txt``, the files
of the ConvE repository (Dettmers et al. 2018), which PyG and PyKEEN download too; text as KG-BERT
(Yao et al. 2019) distributes it, plus ``entity2wikidata.json`` for FB15k-237.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gnnlm.data.build import build_knowledge_graph, read_triples
from gnnlm.data.dataset import Dataset
from gnnlm.data.schema import SPLITS, EntityText
from gnnlm.data.sources import Download
from gnnlm.data.text import fill, optional_file, read_id_text, read_wikidata_json, split_name_gloss

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

CONVE_URL = "https://github.com/TimDettmers/ConvE/raw/master/{archive}"
KGBERT_URL = "https://raw.githubusercontent.com/yao8839836/kg-bert/master/data/{folder}/{file}"
WIKIDATA_URL = (
    "https://raw.githubusercontent.com/villmow/datasets_knowledge_embedding/master/"
    "FB15k-237/entity2wikidata.json"
)


class ConvEFormatDataset(Dataset):
    """A KG in ConvE's format, with optional KG-BERT text files.

    Text files read when present: ``entity2text.txt`` (names), ``entity2textlong.txt``
    (descriptions), ``relation2text.txt`` (relation names).
    """

    #: archive name in the ConvE repository
    archive: str = ""
    #: folder name in the KG-BERT repository (``None``: no text upstream)
    kgbert_folder: str | None = None

    def downloads(self) -> list[Download]:
        files = [
            Download(f"{s}.txt", CONVE_URL.format(archive=self.archive), member=f"{s}.txt")
            for s in SPLITS
        ]
        if self.kgbert_folder:
            files += [
                Download(name, KGBERT_URL.format(folder=self.kgbert_folder, file=name))
                for name in self.optional
            ]
        return files

    def read(self, folder: Path) -> KnowledgeGraph:
        raw = {s: read_triples(folder / f"{s}.txt") for s in SPLITS}
        self.check_identifiers(raw["train"])
        kg = build_knowledge_graph(
            raw, name=self.name, unseen=self.unseen, duplicates=self.duplicates
        )
        self.attach_text(kg, folder)
        return kg

    def attach_text(self, kg: KnowledgeGraph, folder: Path) -> None:
        """Read the text files present in ``folder`` into ``kg.entity_text`` / ``kg.relation_text``."""
        names = descriptions = None
        if path := optional_file(folder, "entity2text.txt"):
            names, kg.extra["entity2text_lines_outside_graph"] = read_id_text(path, kg.entities)
        if path := optional_file(folder, "entity2textlong.txt"):
            descriptions, kg.extra["entity2textlong_lines_outside_graph"] = read_id_text(
                path, kg.entities
            )
        if names is not None or descriptions is not None:
            n = kg.num_entities
            kg.entity_text = EntityText(
                names=names or [None] * n,
                descriptions=descriptions or [None] * n,
                aliases=[[] for _ in range(n)],
            )
        if path := optional_file(folder, "relation2text.txt"):
            kg.relation_text, kg.extra["relation2text_lines_outside_graph"] = read_id_text(
                path, kg.relations
            )
        if kg.entity_text is not None:
            kg.extra["entities_without_name"] = sum(1 for x in kg.entity_text.names if not x)


class FB15k237Dataset(ConvEFormatDataset):
    """FB15k-237 (Toutanova & Chen 2015): Freebase with inverse-relation leakage removed.

    Text: KG-BERT names, and from ``entity2wikidata.json`` Wikidata ids, descriptions and aliases (its
    label fills a name KG-BERT lacks). 28 test triples hold an entity never seen in train.
    """

    name = "fb15k-237"
    folder = "fb15k-237"
    description = "Freebase subset, Toutanova & Chen 2015 (ConvE files, KG-BERT + Wikidata text)"
    archive = "FB15k-237.tar.gz"
    kgbert_folder = "FB15k-237"
    optional = ("entity2text.txt", "relation2text.txt", "entity2wikidata.json")
    published = {
        "num_entities": 14541,
        "num_relations": 237,
        "num_train": 272115,
        "num_valid": 17535,
        "num_test": 20466,
    }
    entity_pattern = r"/[mg]/[0-9a-z_]+"
    synonyms = ("fb15k237",)

    def downloads(self) -> list[Download]:
        files = [d for d in super().downloads() if d.target != "entity2wikidata.json"]
        return files + [Download("entity2wikidata.json", WIKIDATA_URL)]

    def attach_text(self, kg: KnowledgeGraph, folder: Path) -> None:
        super().attach_text(kg, folder)
        path = optional_file(folder, "entity2wikidata.json")
        if path is None:
            return
        wiki = read_wikidata_json(path, kg.entities)
        n = kg.num_entities
        text = kg.entity_text or EntityText([None] * n, [None] * n, [[] for _ in range(n)])
        text.names = fill(text.names, wiki["label"])
        text.descriptions = fill(text.descriptions, wiki["description"])
        text.aliases = wiki["alternatives"]
        text.wikidata_ids = wiki["wikidata_id"]
        kg.entity_text = text
        kg.extra["entities_without_wikidata"] = sum(1 for x in text.wikidata_ids if not x)
        kg.extra["entities_without_name"] = sum(1 for x in text.names if not x)


class WN18RRDataset(ConvEFormatDataset):
    """WN18RR (Dettmers et al. 2018): WordNet with inverse-relation leakage removed.

    Text: KG-BERT's ``"synset name, gloss"`` split into name and description. 210 valid/test triples
    hold an entity never seen in train.
    """

    name = "wn18rr"
    folder = "wn18rr"
    description = "WordNet subset, Dettmers et al. 2018 (ConvE files, KG-BERT text)"
    archive = "WN18RR.tar.gz"
    kgbert_folder = "WN18RR"
    optional = ("entity2text.txt", "relation2text.txt")
    published = {
        "num_entities": 40943,
        "num_relations": 11,
        "num_train": 86835,
        "num_valid": 3034,
        "num_test": 3134,
    }
    entity_pattern = r"\d{8}"

    def attach_text(self, kg: KnowledgeGraph, folder: Path) -> None:
        super().attach_text(kg, folder)
        if kg.entity_text is not None:
            names, glosses = split_name_gloss(kg.entity_text.names)
            kg.entity_text.names = names
            kg.entity_text.descriptions = fill(kg.entity_text.descriptions, glosses)


class UMLSDataset(ConvEFormatDataset):
    """UMLS (Kok & Domingos 2007): biomedical concepts; KG-BERT short and long text."""

    name = "umls"
    folder = "umls"
    description = "Unified Medical Language System semantic network (ConvE files, KG-BERT text)"
    archive = "umls.tar.gz"
    kgbert_folder = "umls"
    optional = ("entity2text.txt", "entity2textlong.txt", "relation2text.txt")
    published = {
        "num_entities": 135,
        "num_relations": 46,
        "num_train": 5216,
        "num_valid": 652,
        "num_test": 661,
    }
    entity_pattern = r"[a-z_]+"


class KinshipDataset(ConvEFormatDataset):
    """Kinship (Denham 1973; Kok & Domingos 2007): Alyawarra kinship terms, no text."""

    name = "kinship"
    folder = "kinship"
    description = "Alyawarra kinship (ConvE files)"
    archive = "kinship.tar.gz"
    published = {
        "num_entities": 104,
        "num_relations": 25,
        "num_train": 8544,
        "num_valid": 1068,
        "num_test": 1074,
    }
    entity_pattern = r"person\d+"
    synonyms = ("kinships",)


class NationsDataset(ConvEFormatDataset):
    """Nations (Rummel 1950-1965; Kok & Domingos 2007): relations between 14 countries, no text."""

    name = "nations"
    folder = "nations"
    description = "Relations between 14 nations (ConvE files)"
    archive = "nations.tar.gz"
    published = {
        "num_entities": 14,
        "num_relations": 55,
        "num_train": 1592,
        "num_valid": 199,
        "num_test": 201,
    }
    entity_pattern = r"[a-z]+"
