"""Fine-tuning strategies of the engine (any task): partial (frozen patterns, bottom LM layers, LoRA),
staged phases, adversarial training and meta-learning. Configured by a run's ``finetuning:`` section
(:class:`~gnnlm.strategies.config.FinetuningConfig`)."""

from gnnlm.strategies.config import (
    AdversarialConfig,
    FinetuningConfig,
    LoraSettings,
    MetaConfig,
    PhaseConfig,
)

__all__ = ["AdversarialConfig", "FinetuningConfig", "LoraSettings", "MetaConfig", "PhaseConfig"]
