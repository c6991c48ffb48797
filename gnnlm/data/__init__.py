"""The knowledge-graph data layer: the :class:`KnowledgeGraph` type, loaders and the dataset registry."""

from __future__ import annotations

from gnnlm.data.dataset import Dataset
from gnnlm.data.datasets import dataset_names, dataset_resolver, get_dataset, load_dataset
from gnnlm.data.errors import DataError, DataFormatError, DatasetNotFoundError
from gnnlm.data.filter_index import FilterIndex
from gnnlm.data.knowledge_graph import SPLITS, EntityText, KnowledgeGraph
from gnnlm.data.vocab import Vocabulary

__all__ = [
    "SPLITS",
    "DataError",
    "DataFormatError",
    "Dataset",
    "DatasetNotFoundError",
    "EntityText",
    "FilterIndex",
    "KnowledgeGraph",
    "Vocabulary",
    "dataset_names",
    "dataset_resolver",
    "get_dataset",
    "load_dataset",
]
