"""The training engine (one loop for every task) and the building blocks of link-prediction training.

* :class:`Trainer` / :func:`train`: the engine; a :class:`Task` (:mod:`gnnlm.tasks`) supplies data, model,
  loss and metrics; :class:`RunConfig` / :class:`TrainingConfig` / :class:`EvaluationConfig` are the
  config sections every task shares, :func:`run_variants` compares arms over seeds;
* :class:`TrainConfig` (= :class:`~gnnlm.tasks.link_prediction.LinkPredictionConfig`), loops (:class:`SLCWALoop` negative sampling, :class:`KvsAllLoop` 1-N), losses, regularisers and negative
  samplers, each found by name through a ``class_resolver`` registry;
* checkpoints that never unpickle, exact resume, :func:`save_pretrained` / :func:`from_pretrained`;
* :func:`predict_tails` / :func:`predict_heads` by entity and relation name.

Names are imported on first use (:mod:`gnnlm.utils.lazy`), so ``import gnnlm.train.config`` (YAML
only) does not load the models, PyG or transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnlm.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from gnnlm.tasks.link_prediction.config import (
        LinkPredictionTrainingConfig,
        ModelConfig,
        TrainConfig,
    )
    from gnnlm.train.checkpoint import CheckpointError
    from gnnlm.train.config import ConfigError, EvaluationConfig, RunConfig, TrainingConfig
    from gnnlm.train.loops import KvsAllLoop, SLCWALoop, TrainingLoop, loop_resolver
    from gnnlm.train.losses import (
        BCELoss,
        CrossEntropyLoss,
        Loss,
        MarginRankingLoss,
        SoftplusLoss,
        loss_resolver,
    )
    from gnnlm.train.negative_sampling import (
        BernoulliNegativeSampler,
        NegativeBatch,
        NegativeSampler,
        UniformNegativeSampler,
        sampler_resolver,
    )
    from gnnlm.train.predict import Prediction, predict_heads, predict_tails
    from gnnlm.train.pretrained import (
        PretrainedConfig,
        build_model,
        from_pretrained,
        save_pretrained,
    )
    from gnnlm.train.regularizers import (
        L2Regularizer,
        N3Regularizer,
        Regularizer,
        regularizer_resolver,
    )
    from gnnlm.train.run_dir import RunDirError
    from gnnlm.train.task import StepOutput, Task
    from gnnlm.train.trainer import (
        Trainer,
        TrainingDivergedError,
        TrainResult,
        seed_everything,
        train,
    )
    from gnnlm.train.variants import Comparison, run_variants

__all__ = [
    "BCELoss",
    "BernoulliNegativeSampler",
    "CheckpointError",
    "ConfigError",
    "CrossEntropyLoss",
    "EvaluationConfig",
    "Comparison",
    "KvsAllLoop",
    "LinkPredictionTrainingConfig",
    "L2Regularizer",
    "Loss",
    "MarginRankingLoss",
    "ModelConfig",
    "N3Regularizer",
    "NegativeBatch",
    "NegativeSampler",
    "Prediction",
    "PretrainedConfig",
    "Regularizer",
    "RunConfig",
    "RunDirError",
    "SLCWALoop",
    "SoftplusLoss",
    "StepOutput",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingConfig",
    "TrainingDivergedError",
    "TrainingLoop",
    "UniformNegativeSampler",
    "build_model",
    "from_pretrained",
    "loss_resolver",
    "loop_resolver",
    "predict_heads",
    "predict_tails",
    "regularizer_resolver",
    "run_variants",
    "sampler_resolver",
    "save_pretrained",
    "seed_everything",
    "train",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "CheckpointError": "gnnlm.train.checkpoint",
        "ConfigError": "gnnlm.train.config",
        "EvaluationConfig": "gnnlm.train.config",
        "RunConfig": "gnnlm.train.config",
        "TrainingConfig": "gnnlm.train.config",
        "LinkPredictionTrainingConfig": "gnnlm.tasks.link_prediction.config",
        "ModelConfig": "gnnlm.tasks.link_prediction.config",
        "TrainConfig": "gnnlm.tasks.link_prediction.config",
        "StepOutput": "gnnlm.train.task",
        "Task": "gnnlm.train.task",
        "Comparison": "gnnlm.train.variants",
        "run_variants": "gnnlm.train.variants",
        "KvsAllLoop": "gnnlm.train.loops",
        "SLCWALoop": "gnnlm.train.loops",
        "TrainingLoop": "gnnlm.train.loops",
        "loop_resolver": "gnnlm.train.loops",
        "BCELoss": "gnnlm.train.losses",
        "CrossEntropyLoss": "gnnlm.train.losses",
        "Loss": "gnnlm.train.losses",
        "MarginRankingLoss": "gnnlm.train.losses",
        "SoftplusLoss": "gnnlm.train.losses",
        "loss_resolver": "gnnlm.train.losses",
        "BernoulliNegativeSampler": "gnnlm.train.negative_sampling",
        "NegativeBatch": "gnnlm.train.negative_sampling",
        "NegativeSampler": "gnnlm.train.negative_sampling",
        "UniformNegativeSampler": "gnnlm.train.negative_sampling",
        "sampler_resolver": "gnnlm.train.negative_sampling",
        "Prediction": "gnnlm.train.predict",
        "predict_heads": "gnnlm.train.predict",
        "predict_tails": "gnnlm.train.predict",
        "PretrainedConfig": "gnnlm.train.pretrained",
        "build_model": "gnnlm.train.pretrained",
        "from_pretrained": "gnnlm.train.pretrained",
        "save_pretrained": "gnnlm.train.pretrained",
        "L2Regularizer": "gnnlm.train.regularizers",
        "N3Regularizer": "gnnlm.train.regularizers",
        "Regularizer": "gnnlm.train.regularizers",
        "regularizer_resolver": "gnnlm.train.regularizers",
        "RunDirError": "gnnlm.train.run_dir",
        "Trainer": "gnnlm.train.trainer",
        "TrainingDivergedError": "gnnlm.train.trainer",
        "TrainResult": "gnnlm.train.trainer",
        "seed_everything": "gnnlm.train.trainer",
        "train": "gnnlm.train.trainer",
    },
)
