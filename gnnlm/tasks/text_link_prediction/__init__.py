"""Text-aware KG completion (``task: text_link_prediction``): a SimKGC bi-encoder (or, at a CPU budget, a
query adapter over a frozen LM), the graph tower beside it, score ensembling with a KGE run, and unseen
entities ranked from their text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnlm.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from gnnlm.tasks.text_link_prediction.adapter import QueryAdapter
    from gnnlm.tasks.text_link_prediction.config import (
        TextKGCDataConfig,
        TextKGCHybridConfig,
        TextKGCModelConfig,
        TextKGCTrainingConfig,
        TextLinkPredictionConfig,
    )
    from gnnlm.tasks.text_link_prediction.model import GraphTower, TextKGCModel
    from gnnlm.tasks.text_link_prediction.task import TextLinkPredictionTask

__all__ = [
    "GraphTower",
    "QueryAdapter",
    "TextKGCDataConfig",
    "TextKGCHybridConfig",
    "TextKGCModel",
    "TextKGCModelConfig",
    "TextKGCTrainingConfig",
    "TextLinkPredictionConfig",
    "TextLinkPredictionTask",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        **dict.fromkeys(
            (
                "TextKGCDataConfig",
                "TextKGCHybridConfig",
                "TextKGCModelConfig",
                "TextKGCTrainingConfig",
                "TextLinkPredictionConfig",
            ),
            "gnnlm.tasks.text_link_prediction.config",
        ),
        "GraphTower": "gnnlm.tasks.text_link_prediction.model",
        "QueryAdapter": "gnnlm.tasks.text_link_prediction.adapter",
        "TextKGCModel": "gnnlm.tasks.text_link_prediction.model",
        "TextLinkPredictionTask": "gnnlm.tasks.text_link_prediction.task",
    },
)
