"""Link prediction: KG embedding models and GNN encoders trained to rank the true entity of each query."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnlm.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from gnnlm.tasks.link_prediction.config import (
        HEADLINE,
        LinkPredictionConfig,
        LinkPredictionEvaluationConfig,
        LinkPredictionTrainingConfig,
        ModelConfig,
        TrainConfig,
        check_components,
    )
    from gnnlm.tasks.link_prediction.task import LinkPredictionTask

__all__ = [
    "HEADLINE",
    "LinkPredictionConfig",
    "LinkPredictionEvaluationConfig",
    "LinkPredictionTask",
    "LinkPredictionTrainingConfig",
    "ModelConfig",
    "TrainConfig",
    "check_components",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        **dict.fromkeys(
            (
                "HEADLINE",
                "LinkPredictionConfig",
                "LinkPredictionEvaluationConfig",
                "LinkPredictionTrainingConfig",
                "ModelConfig",
                "TrainConfig",
                "check_components",
            ),
            "gnnlm.tasks.link_prediction.config",
        ),
        "LinkPredictionTask": "gnnlm.tasks.link_prediction.task",
    },
)
