"""Dataset registry and loading entry point.

PLACEHOLDER (skeleton): a minimal loader for ConvE-format folders so other stages can start. The data-layer
work replaces this module with the full registry (resolution order, caching, OGB, errors).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gnnlm.data.knowledge_graph import SPLITS, KnowledgeGraph
from gnnlm.data.vocab import Vocabulary


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> KnowledgeGraph:
    """Load a benchmark KG by name (``umls``, ``fb15k-237``, ...)."""
    root = Path(data_dir or os.environ["GNNLM_DATA_DIR"]) / name
    entities, relations = Vocabulary(), Vocabulary()
    splits = {}
    for split in SPLITS:
        rows = []
        for line in (root / f"{split}.txt").read_text().splitlines():
            h, r, t = line.split("\t")
            rows.append((entities.add(h), relations.add(r), entities.add(t)))
        splits[split] = torch.tensor(rows, dtype=torch.long)
    return KnowledgeGraph(entities, relations, splits, name=name)
