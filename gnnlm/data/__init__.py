"""The knowledge-graph data layer: the :class:`KnowledgeGraph` type, loaders and the dataset registry."""

from __future__ import annotations

from gnnlm.data.filter_index import FilterIndex
from gnnlm.data.knowledge_graph import SPLITS, EntityText, KnowledgeGraph
from gnnlm.data.vocab import Vocabulary

__all__ = ["SPLITS", "EntityText", "FilterIndex", "KnowledgeGraph", "Vocabulary"]
