"""The knowledge-graph data layer: the :class:`KnowledgeGraph` type, loaders, the dataset registry and
:class:`SubgraphSampler` (k-hop subgraphs around linked entities, for fusion, QA and entity linking).

The names below are imported on first use (:mod:`gnnlm.utils.lazy`): ``import gnnlm.data`` and the error
types are free, and only loading a graph brings in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnlm.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from gnnlm.data.dataset import Dataset
    from gnnlm.data.errors import DataError, DataFormatError, DatasetNotFoundError
    from gnnlm.data.filter_index import FilterIndex
    from gnnlm.data.knowledge_graph import SPLITS, EntityText, KnowledgeGraph
    from gnnlm.data.registry import dataset_names, dataset_resolver, get_dataset, load_dataset
    from gnnlm.data.subgraph import SubgraphSampler
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
    "SubgraphSampler",
    "Vocabulary",
    "dataset_names",
    "dataset_resolver",
    "get_dataset",
    "load_dataset",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "Dataset": "gnnlm.data.dataset",
        "dataset_names": "gnnlm.data.registry",
        "dataset_resolver": "gnnlm.data.registry",
        "get_dataset": "gnnlm.data.registry",
        "load_dataset": "gnnlm.data.registry",
        "DataError": "gnnlm.data.errors",
        "DataFormatError": "gnnlm.data.errors",
        "DatasetNotFoundError": "gnnlm.data.errors",
        "FilterIndex": "gnnlm.data.filter_index",
        "SPLITS": "gnnlm.data.knowledge_graph",
        "EntityText": "gnnlm.data.knowledge_graph",
        "KnowledgeGraph": "gnnlm.data.knowledge_graph",
        "SubgraphSampler": "gnnlm.data.subgraph",
        "Vocabulary": "gnnlm.data.vocab",
    },
)
