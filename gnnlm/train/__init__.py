"""The training engine for link-prediction models (KG embeddings and GNN encoders alike).

* :class:`TrainConfig` (typed YAML configs with ``--set`` overrides), :class:`Trainer` / :func:`train`;
* loops (:class:`SLCWALoop` negative sampling, :class:`KvsAllLoop` 1-N), losses, regularisers and negative
  samplers, each found by name through a ``class_resolver`` registry;
* checkpoints that never unpickle, exact resume, :func:`save_pretrained` / :func:`from_pretrained`;
* :func:`predict_tails` / :func:`predict_heads` by entity and relation name.
"""

from __future__ import annotations

from gnnlm.train.checkpoint import CheckpointError
from gnnlm.train.config import (
    ConfigError,
    EvaluationConfig,
    ModelConfig,
    TrainConfig,
    TrainingConfig,
)
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
from gnnlm.train.pretrained import PretrainedConfig, build_model, from_pretrained, save_pretrained
from gnnlm.train.regularizers import L2Regularizer, N3Regularizer, Regularizer, regularizer_resolver
from gnnlm.train.run_dir import RunDirError
from gnnlm.train.trainer import (
    Trainer,
    TrainingDivergedError,
    TrainResult,
    seed_everything,
    train,
)

__all__ = [
    "BCELoss",
    "BernoulliNegativeSampler",
    "CheckpointError",
    "ConfigError",
    "CrossEntropyLoss",
    "EvaluationConfig",
    "KvsAllLoop",
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
    "RunDirError",
    "SLCWALoop",
    "SoftplusLoss",
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
    "sampler_resolver",
    "save_pretrained",
    "seed_everything",
    "train",
]
