"""The injection modes, one small module each (see :mod:`gnnlm.fusion.injection` for the interface)."""

from __future__ import annotations

from gnnlm.fusion.modes.adaptive import AdaptiveInjection
from gnnlm.fusion.modes.dual_tower import DualTowerInjection
from gnnlm.fusion.modes.entity import EntityInjection, EntityTable
from gnnlm.fusion.modes.graph import GraphInjection
from gnnlm.fusion.modes.memory import MemoryInjection, memory_topk
from gnnlm.fusion.modes.relation import RelationInjection

__all__ = [
    "AdaptiveInjection",
    "DualTowerInjection",
    "EntityInjection",
    "EntityTable",
    "GraphInjection",
    "MemoryInjection",
    "RelationInjection",
    "memory_topk",
]
