"""The config of a pre-training run: which objectives, their options and weights, the data, the model.

::

    task: pretraining
    dataset: fb15k-237
    objectives: [mlm, kepler, link_prediction]     # any non-empty combination
    mlm: {weight: 1.0, probability: 0.15}
    kepler: {weight: 1.0, gamma: 4.0, norm: 1, negatives: 1}
    link_prediction: {weight: 1.0, drop_rate: 0.15, negatives: 1}
    model: {lm: minilm, injection: [graph], ...}   # the same keys as triple classification's
    data: {num_train: 2000, num_valid: 200, max_length: 64, num_hops: 2, max_nodes: 32}

The ``model:`` section is :class:`~gnnlm.tasks.triple_classification.TripleClassificationModelConfig`
itself, so the downstream run's ``model:`` block can be pasted here unchanged (``head_inputs`` is read
only by the downstream head) and both stages build the same fused LM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gnnlm.config import (
    AT_LEAST_0,
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    Config,
    checked,
)
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.tasks.triple_classification import TripleClassificationModelConfig
from gnnlm.train.config import EvaluationConfig, RunConfig

#: the objectives a run may combine (``objectives:``).
OBJECTIVES = ("mlm", "kepler", "link_prediction")

#: a rate in (0, 1).
OPEN_UNIT: tuple = (lambda v: 0 < v < 1, "a number in (0, 1)")


@dataclass
class MLMConfig(Config):
    """Masked language modelling on the entity texts (BERT's scheme).

    Attributes:
        weight: the objective's weight in the training loss.
        probability: share of the (non-special, non-padding) tokens selected for prediction.
        mask_fraction: of the selected tokens, the share replaced by ``[MASK]``.
        random_fraction: of the selected tokens, the share replaced by a random token (the rest are
            kept as they are).
    """

    weight: float = checked(1.0, NON_NEGATIVE, "1.0")
    probability: float = checked(0.15, OPEN_UNIT, "0.15")
    mask_fraction: float = checked(0.8, UNIT_INTERVAL, "0.8")
    random_fraction: float = checked(0.1, UNIT_INTERVAL, "0.1")

    def __post_init__(self) -> None:
        if self.mask_fraction + self.random_fraction > 1:
            raise ValueError(
                "mlm.mask_fraction + mlm.random_fraction must be <= 1, got "
                f"{self.mask_fraction} + {self.random_fraction}"
            )


@dataclass
class KeplerConfig(Config):
    """KEPLER (Wang et al., 2021): the LM's encodings of entity texts as TransE entity embeddings.

    A triple ``(h, r, t)`` scores ``gamma - ||E(h) + r - E(t)||_norm``, with ``E(e)`` the fused LM's
    pooled encoding of ``e``'s name and description (its subgraph read alongside) and ``r`` a learned
    vector; each positive is contrasted with ``negatives`` corruptions of its head or tail, whose new
    entity's text is encoded too: ``-log s(score) - mean log s(-score')``.

    Attributes:
        weight: the objective's weight in the training loss.
        gamma: the margin.
        norm: ``1`` (KEPLER's) or ``2``.
        negatives: corruptions per positive.
    """

    weight: float = checked(1.0, NON_NEGATIVE, "1.0")
    gamma: float = checked(4.0, POSITIVE, "4.0")
    norm: int = checked(1, (lambda v: v in (1, 2), "1 or 2"), "1")
    negatives: int = checked(1, AT_LEAST_1, "1")


@dataclass
class LinkPredictionObjectiveConfig(Config):
    """DRAGON's link prediction (Yasunaga et al., 2022): a share of each text's subgraph edges is
    removed from the GNN's input and scored with DistMult on the fused model's final node states,
    against corruptions of their head or tail by another node of the same subgraph.

    Attributes:
        weight: the objective's weight in the training loss.
        drop_rate: share of the subgraph's edges (a triple and its inverse together) held out.
        negatives: corruptions per held-out edge.
    """

    weight: float = checked(1.0, NON_NEGATIVE, "1.0")
    drop_rate: float = checked(0.15, OPEN_UNIT, "0.15")
    negatives: int = checked(1, AT_LEAST_1, "1")


@dataclass
class PretrainingDataConfig(Config):
    """The entities whose texts are read (each text is ``"name: description"``).

    Attributes:
        num_train: training entities (an epoch reads each once); each has text and a training triple
            whose other end has text.
        num_valid: held-out entities (their texts never enter training) for the validation metrics.
        max_length: text length in tokens.
        num_hops: subgraph radius; ``max_nodes`` its node budget.
    """

    num_train: int = checked(2000, AT_LEAST_1, "2000")
    num_valid: int = checked(200, AT_LEAST_0, "200, or 0 for no validation")
    max_length: int = checked(64, AT_LEAST_1, "64")
    num_hops: int = checked(2, AT_LEAST_0, "2")
    max_nodes: int = checked(32, AT_LEAST_1, "32")


@dataclass
class PretrainingTrainingConfig(FusedTrainingConfig):
    """:class:`~gnnlm.tasks.fused.FusedTrainingConfig`: continued training of a fused LM (the LM
    slower, the gates faster)."""


@dataclass
class PretrainingEvaluationConfig(EvaluationConfig):
    """Validation on the held-out entities: the weighted loss selects the best weights."""

    batch_size: int = checked(64, AT_LEAST_1, "64")
    metric: str | None = "loss"


@dataclass
class PretrainingConfig(RunConfig):
    """A pre-training run (see the module docstring)."""

    task: str = "pretraining"
    dataset: str = "fb15k-237"
    objectives: list[str] = field(default_factory=lambda: ["mlm", "link_prediction"])
    mlm: MLMConfig = field(default_factory=MLMConfig)
    kepler: KeplerConfig = field(default_factory=KeplerConfig)
    link_prediction: LinkPredictionObjectiveConfig = field(
        default_factory=LinkPredictionObjectiveConfig
    )
    model: TripleClassificationModelConfig = field(default_factory=TripleClassificationModelConfig)
    data: PretrainingDataConfig = field(default_factory=PretrainingDataConfig)
    training: PretrainingTrainingConfig = field(default_factory=PretrainingTrainingConfig)
    evaluation: PretrainingEvaluationConfig = field(default_factory=PretrainingEvaluationConfig)

    def weight(self, objective: str) -> float:
        """The weight of ``objective`` in the training loss."""
        return float(getattr(self, objective).weight)


__all__ = [
    "OBJECTIVES",
    "KeplerConfig",
    "LinkPredictionObjectiveConfig",
    "MLMConfig",
    "PretrainingConfig",
    "PretrainingDataConfig",
    "PretrainingEvaluationConfig",
    "PretrainingTrainingConfig",
]
