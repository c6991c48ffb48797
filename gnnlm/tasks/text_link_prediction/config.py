"""The config of ``task: text_link_prediction`` (see :mod:`gnnlm.tasks.text_link_prediction.task`).

One YAML file describes a run::

    task: text_link_prediction
    dataset: wn18rr
    model: {lm: minilm, key_encoder: separate, max_length: 50, margin: 0.02, temperature: 0.05,
            pre_batch: 2, self_negatives: true, graph: false}
    data: {max_train: 0, max_test: 0, inductive_fraction: 0.0}
    hybrid: {kge_run: null}
    training: {epochs: 1, batch_size: 64, lr: 1.0e-3, param_groups: {lm: {lr: 3.0e-5}}}
    evaluation: {batch_size: 256, metric: mrr}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gnnlm.config import (
    AT_LEAST_0,
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    Config,
    checked,
)
from gnnlm.eval.metrics import HEADLINE_METRICS
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.train.config import EvaluationConfig, RunConfig

#: where the key (entity) vectors come from.
KEY_ENCODERS = ("separate", "shared", "frozen")
#: where the query vectors come from: the LM reading head + relation text, or the adapter over the
#: frozen LM's cached encodings.
QUERY_ENCODERS = ("lm", "frozen")


@dataclass
class TextKGCModelConfig(Config):
    """The bi-encoder (SimKGC, Wang et al. 2022) and the optional graph tower.

    Attributes:
        lm: the LM (``minilm``, ``tiny-bert``, a folder or hub id), mean-pooled.
        key_encoder: ``separate`` (SimKGC: a second copy of the LM encodes entities), ``shared``
            (one LM encodes queries and entities) or ``frozen`` (entities are the pretrained LM's
            cached encodings of their text through a trainable linear map initialised to the
            identity; only the query LM trains: the CPU budget, since the entity table is computed
            once per LM and text, not once per evaluation).
        query_encoder: ``lm`` (SimKGC: the query LM reads head text + relation text and trains) or
            ``frozen`` (no LM trains: the query is a small MLP adapter over the frozen LM's cached
            encodings of the head's text and the relation's text,
            :class:`~gnnlm.tasks.text_link_prediction.adapter.QueryAdapter`; needs
            ``key_encoder: frozen``. A step is a few GEMMs, so a CPU budget reads every triple).
        adapter_width: the adapter MLP's hidden width.
        adapter_dropout: dropout on its hidden layer.
        descriptions: entity text is ``"name: description"`` (else the name only).
        max_length: tokens per query (head text + relation text) and per entity text.
        temperature: initial temperature ``tau`` of the InfoNCE logits ``cos / tau``.
        learn_temperature: train ``log(1 / tau)`` (clamped to ``1 / tau <= max_inverse_temperature``).
        max_inverse_temperature: the clamp.
        margin: additive margin ``gamma`` subtracted from the positive's cosine only.
        pre_batch: keys of this many previous batches are extra negatives (0: none).
        pre_batch_weight: the weight of their logits (SimKGC: 0.5).
        self_negatives: the head itself is a negative for its query (SimKGC's self-negative).
        graph: add the graph tower (CompGCN over the training graph, gated, zero at init).
        graph_channels: the tower's width.
        graph_layers: CompGCN layers.
        graph_dropout: CompGCN dropout.
        composition: CompGCN's composition (``sub``, ``mult``, ``corr``).
    """

    lm: str = "minilm"
    key_encoder: str = "separate"
    query_encoder: str = "lm"
    adapter_width: int = checked(512, AT_LEAST_1, "512")
    adapter_dropout: float = checked(0.1, UNIT_INTERVAL, "0.1")
    descriptions: bool = True
    max_length: int = checked(50, AT_LEAST_1, "50")
    temperature: float = checked(0.05, POSITIVE, "0.05")
    learn_temperature: bool = True
    max_inverse_temperature: float = checked(100.0, POSITIVE, "100")
    margin: float = checked(0.02, NON_NEGATIVE, "0.02")
    pre_batch: int = checked(2, AT_LEAST_0, "2, or 0 for none")
    pre_batch_weight: float = checked(0.5, NON_NEGATIVE, "0.5")
    self_negatives: bool = True
    graph: bool = False
    graph_channels: int = checked(64, AT_LEAST_1, "64")
    graph_layers: int = checked(2, AT_LEAST_1, "2")
    graph_dropout: float = checked(0.1, UNIT_INTERVAL, "0.1")
    composition: str = "mult"

    def __post_init__(self) -> None:
        if self.key_encoder not in KEY_ENCODERS:
            raise ValueError(
                f"model.key_encoder must be one of {', '.join(KEY_ENCODERS)}, got {self.key_encoder!r}"
            )
        if self.query_encoder not in QUERY_ENCODERS:
            raise ValueError(
                f"model.query_encoder must be one of {', '.join(QUERY_ENCODERS)}, got "
                f"{self.query_encoder!r}"
            )
        if self.query_encoder == "frozen" and self.key_encoder != "frozen":
            raise ValueError(
                "model.query_encoder: frozen reads the frozen entity table: set "
                f"model.key_encoder: frozen too (got {self.key_encoder!r})"
            )


@dataclass
class TextKGCDataConfig(Config):
    """Which triples train and evaluate.

    Attributes:
        max_train: train on this many training triples, drawn with ``sample_seed`` (0: all); each
            triple gives two examples (tail prediction, and head prediction through the inverse
            relation).
        max_valid, max_test: evaluate on this many triples of the split, drawn with ``sample_seed``
            (0: all). The filter still holds every known triple.
        sample_seed: seed of those samples (the same for every arm and run seed).
        inductive_fraction: if > 0, replace the splits by an inductive split
            (:func:`~gnnlm.tasks.text_link_prediction.inductive.inductive_split`): this share of the
            entities never occurs in training, and valid / test hold the triples that touch them.
        inductive_seed: seed of the held-out entities.
    """

    max_train: int = checked(0, AT_LEAST_0, "0 for all")
    max_valid: int = checked(0, AT_LEAST_0, "0 for all")
    max_test: int = checked(0, AT_LEAST_0, "0 for all")
    sample_seed: int = 0
    inductive_fraction: float = checked(0.0, UNIT_INTERVAL, "0.05, or 0 for the transductive split")
    inductive_seed: int = 0


@dataclass
class TextKGCHybridConfig(Config):
    """Score ensembling with a trained KGE run (:mod:`~gnnlm.tasks.text_link_prediction.hybrid`).

    Attributes:
        kge_run: a ``gnnlm train`` run folder of a link-prediction model on the same dataset; when
            set, every evaluation also reports ``kge`` (that model alone, same triples and filter) and
            ``hybrid`` (``w * z(text) + (1 - w) * z(kge)``, per-query standardised scores).
        weights: the grid of ``w`` tried on validation (the best MRR is kept for test).
        rerank_k: if > 0 (with ``kge_run``), also train a KG-BERT-style cross-encoder (the query LM
            reading the whole triple, a linear head; :mod:`~gnnlm.tasks.text_link_prediction.rerank`)
            and report ``rerank``: the KGE model's top ``rerank_k`` of every query re-ordered by it.
        rerank_negatives: negatives per positive for the cross-encoder, drawn from the KGE model's
            top ``rerank_k`` (known answers excluded).
    """

    kge_run: str | None = None
    weights: list[float] = field(default_factory=lambda: [i / 10 for i in range(11)])
    rerank_k: int = checked(0, AT_LEAST_0, "10, or 0 for no re-ranking")
    rerank_negatives: int = checked(2, AT_LEAST_1, "2")

    def __post_init__(self) -> None:
        if not self.weights or any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise ValueError(f"hybrid.weights must be values in [0, 1], got {self.weights!r}")


@dataclass
class TextKGCTrainingConfig(FusedTrainingConfig):
    """AdamW; the LM at ``param_groups.lm.lr``, the temperature, projections, graph tower at ``lr``,
    the graph gates at ``param_groups.gates.lr``."""

    batch_size: int = checked(64, AT_LEAST_1, "64")
    param_groups: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"lm": {"lr": 3e-5}, "gates": {"lr": 1e-2}}
    )


@dataclass
class TextKGCEvaluationConfig(EvaluationConfig):
    """Filtered rank-based evaluation (both sides, realistic ties), as link prediction."""

    batch_size: int = checked(256, AT_LEAST_1, "256")
    frequency: int = checked(0, AT_LEAST_0, "0 for only at the end")
    metric: str | None = "mrr"


@dataclass
class TextLinkPredictionConfig(RunConfig):
    """A text-aware KG completion run (see the module docstring)."""

    task: str = "text_link_prediction"
    dataset: str = "wn18rr"
    model: TextKGCModelConfig = field(default_factory=TextKGCModelConfig)
    data: TextKGCDataConfig = field(default_factory=TextKGCDataConfig)
    hybrid: TextKGCHybridConfig = field(default_factory=TextKGCHybridConfig)
    training: TextKGCTrainingConfig = field(default_factory=TextKGCTrainingConfig)
    evaluation: TextKGCEvaluationConfig = field(default_factory=TextKGCEvaluationConfig)


#: the metrics of the task (MR: lower is better).
METRICS = {name: "min" if name == "mr" else "max" for name in HEADLINE_METRICS}

__all__ = [
    "KEY_ENCODERS",
    "METRICS",
    "QUERY_ENCODERS",
    "TextKGCDataConfig",
    "TextKGCEvaluationConfig",
    "TextKGCHybridConfig",
    "TextKGCModelConfig",
    "TextKGCTrainingConfig",
    "TextLinkPredictionConfig",
]
