"""The config of ``task: entity_linking`` (see :mod:`gnnlm.tasks.entity_linking.task` for the YAML
form)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, UNIT_INTERVAL, Config, checked
from gnnlm.tasks.entity_linking.model import ARMS
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.train.config import EvaluationConfig, RunConfig

#: the ELEVANT files a run trains on and is tested on by default
TRAIN_FILES = ["oke-2015-train", "oke-2016-train"]
TEST_FILES = ["kore50", "msnbc", "msnbc-updated", "oke-2015-eval", "oke-2016-eval", "spotlight",
              "derczynski"]  # fmt: skip


@dataclass
class EntityLinkingModelConfig(Config):
    """The bi-encoder and the KG re-ranker.

    Attributes:
        arm: ``lm`` (the bi-encoder alone) or ``kg`` (with the coherence re-ranker).
        lm: the LM of both sides (``minilm``, ``tiny-bert``, a folder).
        freeze_lm_layers: the embeddings and this many bottom layers stay frozen.
        frozen_lm: freeze the whole LM and encode each mention once (``"mention [SEP] context"``,
            cached on disk): only the bi-encoder's maps and features (and the re-ranker) train, in
            seconds on a CPU, where fine-tuning MiniLM takes hours.
        entity_max_length: tokens of an entity's ``"name: description"`` (encoded once, cached).
        channels: the re-ranker's GNN width.
        encoder: the re-ranker's GNN (a registered encoder: ``rgcn``, ``compgcn``, ...).
        encoder_kwargs: its options.
        num_layers: its layers.
    """

    arm: str = "kg"
    lm: str = "minilm"
    freeze_lm_layers: int = checked(4, AT_LEAST_0, "4, or 0 to train every layer")
    frozen_lm: bool = False
    entity_max_length: int = checked(64, AT_LEAST_1, "64")
    channels: int = checked(64, AT_LEAST_1, "64")
    encoder: str = "rgcn"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    num_layers: int = checked(2, AT_LEAST_1, "2")

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"model.arm must be one of {', '.join(ARMS)}, got {self.arm!r}")


@dataclass
class EntityLinkingDataConfig(Config):
    """The benchmark files, the KG-generated mentions, candidates and graphs.

    Attributes:
        root: the folder of the ``<name>.benchmark.jsonl`` files (default
            ``$GNNLM_DATA_DIR/entity-linking``).
        wikidata: the ``entity2wikidata.json`` of the KG's entities (default: the one in the KG's
            folder).
        train: training files: names in ``root`` or paths to ``.jsonl`` files.
        test: test files, reported one by one and together.
        valid_fraction: share of the training files' documents held out for selection.
        split_seed: seed of that split and of the generated documents' sample.
        generated: documents generated from the KB's names and descriptions, added to training
            (:mod:`~gnnlm.tasks.entity_linking.generated`; 0: none).
        max_train_documents: use only this many of the real training documents (0: all).
        k: candidates per mention.
        fuzzy_cutoff: least rapidfuzz ratio (0-100) of a fuzzy candidate.
        context_chars: characters of context either side of a mention.
        max_length: tokens of a (mention, context) pair.
        mentions_per_example: a training / evaluation example is up to this many mentions of one
            document (sharing its graph).
        max_bridges, hub_degree: of each document's graph
            (:func:`~gnnlm.tasks.entity_linking.doc_graph.document_graph`).
    """

    root: str | None = None
    wikidata: str | None = None
    train: list[str] = field(default_factory=lambda: list(TRAIN_FILES))
    test: list[str] = field(default_factory=lambda: list(TEST_FILES))
    valid_fraction: float = checked(0.15, UNIT_INTERVAL, "0.15")
    split_seed: int = 0
    generated: int = checked(1000, AT_LEAST_0, "1000, or 0 for none")
    max_train_documents: int = checked(0, AT_LEAST_0, "0 for all")
    k: int = checked(16, AT_LEAST_1, "16")
    fuzzy_cutoff: float = checked(85.0, AT_LEAST_0, "85")
    context_chars: int = checked(150, AT_LEAST_1, "150")
    max_length: int = checked(64, AT_LEAST_1, "64")
    mentions_per_example: int = checked(16, AT_LEAST_1, "16")
    max_bridges: int = checked(32, AT_LEAST_0, "32")
    hub_degree: int = checked(500, AT_LEAST_1, "500")


@dataclass
class EntityLinkingTrainingConfig(FusedTrainingConfig):
    """AdamW; the LM slower (``lm`` group) than the bi-encoder's maps and the re-ranker."""

    batch_size: int = checked(2, AT_LEAST_1, "2 examples (documents' mention chunks)")
    param_groups: dict[str, dict[str, Any]] = field(default_factory=lambda: {"lm": {"lr": 5e-5}})


@dataclass
class EntityLinkingEvaluationConfig(EvaluationConfig):
    """Validation: in-KB accuracy on the held-out training documents."""

    batch_size: int = checked(8, AT_LEAST_1, "8 examples")
    metric: str | None = "accuracy"


@dataclass
class EntityLinkingConfig(RunConfig):
    """An entity-linking run (see :mod:`gnnlm.tasks.entity_linking.task`)."""

    task: str = "entity_linking"
    dataset: str = "fb15k-237"
    model: EntityLinkingModelConfig = field(default_factory=EntityLinkingModelConfig)
    data: EntityLinkingDataConfig = field(default_factory=EntityLinkingDataConfig)
    training: EntityLinkingTrainingConfig = field(default_factory=EntityLinkingTrainingConfig)
    evaluation: EntityLinkingEvaluationConfig = field(default_factory=EntityLinkingEvaluationConfig)


__all__ = [
    "EntityLinkingConfig",
    "EntityLinkingDataConfig",
    "EntityLinkingEvaluationConfig",
    "EntityLinkingModelConfig",
    "EntityLinkingTrainingConfig",
    "TEST_FILES",
    "TRAIN_FILES",
]
