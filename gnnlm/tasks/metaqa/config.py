"""The config of ``task: metaqa`` (see :mod:`gnnlm.tasks.metaqa.task` for the YAML form)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, POSITIVE, UNIT_INTERVAL, Config, checked
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.tasks.metaqa.model import ARMS
from gnnlm.train.config import EvaluationConfig, RunConfig

#: how a subgraph is cut to its budget (see MetaQADataConfig.pruning)
PRUNING = ("uniform", "idf", "question")


@dataclass
class MetaQAModelConfig(Config):
    """The fused LM (the keys of triple classification's ``model:``, built by
    :func:`~gnnlm.tasks.fused.build_fused_lm`), the arm and the node-ranking head.

    Attributes:
        arm: where a candidate's vector comes from: ``lm`` (its name encoded by the LM: LM-only),
            ``gnn`` (a GNN conditioned on the question), ``fused`` (the fused LM's GNN states,
            with graph injection; late fusion only with ``freeze_injection``), ``inject`` (the
            names again, scored against the question vector of the fused LM: injection only) or
            ``kge`` (EmbedKGQA-style: the topic-candidate composition of the frozen KGE of
            ``kge_run``, :class:`~gnnlm.tasks.metaqa.model.KGEPairTable`). ``lm``, ``gnn`` and
            ``kge`` need ``injection: []``; ``fused`` a mode with a GNN; ``inject`` any mode (checked
            by the task's ``validate``: a variant sets both keys).
        head_channels: hidden width of the head's MLP.
        lm, injection, injection_kwargs, encoder, encoder_kwargs, node_channels, num_fused_layers,
        freeze_lm_layers, freeze_injection, gate_init, node_features, node_features_trainable,
        kge_run: as in :class:`~gnnlm.tasks.triple_classification.TripleClassificationModelConfig`
            (``num_fused_layers`` is also the depth of the ``gnn`` arm's GNN, ``node_features`` its
            input features). The default input features are ``text``: every arm starts from the same
            name encodings. ``kge_run`` is also the KGE of the ``kge`` arm: a ``gnnlm train``
            link-prediction run over the same dataset (``configs/metaqa/complex.yaml``).
    """

    arm: str = "fused"
    head_channels: int = checked(128, AT_LEAST_1, "128")
    lm: str = "minilm"
    injection: list[str] = field(default_factory=lambda: ["graph"])
    injection_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: str = "compgcn"
    encoder_kwargs: dict[str, Any] = field(default_factory=lambda: {"batch_norm": False})
    node_channels: int = checked(64, AT_LEAST_1, "64")
    num_fused_layers: int = checked(2, AT_LEAST_1, "2 (at least the questions' hop count)")
    freeze_lm_layers: int = checked(4, AT_LEAST_0, "4, or 0 to train every layer")
    freeze_injection: bool = False
    gate_init: str = "open"
    node_features: str = "text"
    node_features_trainable: bool = False
    kge_run: str | None = None

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"model.arm must be one of {', '.join(ARMS)}, got {self.arm!r}")
        if self.node_features == "kge" and not self.kge_run:
            raise ValueError(
                "model.node_features: kge needs model.kge_run (a trained KGE run folder)"
            )


@dataclass
class MetaQADataConfig(Config):
    """The questions and their subgraphs.

    There is no training split in this copy of MetaQA: the training questions are ``1 -
    valid_fraction`` of the dev files of ``hops`` (a fixed split,
    :func:`~gnnlm.tasks.metaqa.data.split_dev` seeded by ``split_seed``, the same for every arm and
    run seed), validation the rest of dev, and the test metrics are on the full test files.

    Attributes:
        root: the folder holding ``<k>-hop/{dev,test}.txt`` (default: the dataset's folder, e.g.
            ``$GNNLM_DATA_DIR/metaqa``).
        hops: the hop folders to read (``[1, 2]``; ``[3]`` reads ``3-hop/``).
        valid_fraction: share of dev held out for selection.
        split_seed: seed of that split.
        num_hops: radius of every question's subgraph (default: ``max(hops)``; the same for every
            question, so the radius does not tell the model the hop count).
        max_nodes: node budget per subgraph (the topic included), filled hop by hop in breadth-first
            order (:class:`~gnnlm.data.subgraph.SubgraphSampler`).
        pruning: which nodes of a hop that exceeds the budget are kept: ``uniform`` (a fixed random
            order: plain breadth-first search) or ``idf`` (those reached by the rarest relation
                first,
            the sampler's default). On MetaQA 2-hop test (2,000 questions, 2-hop subgraphs) a gold
            answer stays in the subgraph for 87.3 / 90.0 / 92.3% of questions at 128 / 256 / 512
            nodes with ``uniform`` and 84.1 / 86.9 / 90.1% with ``idf`` (IDF keeps the rare
            ``has_imdb_votes`` / ``has_imdb_rating`` leaves first); 97.7% have an answer within 2
            hops in the whole KB. Every 1-hop answer stays at 64 nodes.
        max_length: question length in tokens.
        max_train, max_valid, max_test: use only ``n`` questions of each split, drawn with
            ``split_seed`` and kept in file order (0: all). ``max_test`` is for smoke runs: a report
            on MetaQA uses the full test files (0).
    """

    root: str | None = None
    hops: list[int] = field(default_factory=lambda: [1, 2])
    valid_fraction: float = checked(0.1, UNIT_INTERVAL, "0.1")
    split_seed: int = 0
    num_hops: int | None = checked(None, AT_LEAST_1, "2, or null for max(hops)")
    max_nodes: int = checked(128, AT_LEAST_1, "128")
    pruning: str = "uniform"
    relation_temperature: float = checked(0.05, POSITIVE, "0.05")
    max_length: int = checked(48, AT_LEAST_1, "48")
    max_train: int = checked(0, AT_LEAST_0, "0 for all")
    max_valid: int = checked(0, AT_LEAST_0, "0 for all")
    max_test: int = checked(0, AT_LEAST_0, "0 for all (the full test files)")

    def __post_init__(self) -> None:
        if not self.hops or any(not isinstance(k, int) or k < 1 for k in self.hops):
            raise ValueError(
                f"data.hops must be a non-empty list of integers >= 1, got {self.hops!r}"
            )
        if self.pruning not in PRUNING:
            raise ValueError(
                f"data.pruning must be one of {', '.join(PRUNING)}, got {self.pruning!r}"
            )
        if len(set(self.hops)) != len(self.hops):
            raise ValueError(f"data.hops repeats a hop count: {self.hops!r}")

    @property
    def radius(self) -> int:
        """The subgraph radius: ``num_hops`` or ``max(hops)``."""
        return self.num_hops if self.num_hops is not None else max(self.hops)


@dataclass
class MetaQATrainingConfig(FusedTrainingConfig):
    """:class:`~gnnlm.tasks.fused.FusedTrainingConfig`: AdamW; the LM slower and the injection gates
    faster than the GNN, fusion modules and head."""


@dataclass
class MetaQAEvaluationConfig(EvaluationConfig):
    """Validation: hits@1 on the held-out share of dev."""

    batch_size: int = checked(128, AT_LEAST_1, "128")
    metric: str | None = "hits@1"


@dataclass
class MetaQAConfig(RunConfig):
    """A MetaQA run (see :mod:`gnnlm.tasks.metaqa.task`)."""

    task: str = "metaqa"
    dataset: str = "metaqa"
    model: MetaQAModelConfig = field(default_factory=MetaQAModelConfig)
    data: MetaQADataConfig = field(default_factory=MetaQADataConfig)
    training: MetaQATrainingConfig = field(default_factory=MetaQATrainingConfig)
    evaluation: MetaQAEvaluationConfig = field(default_factory=MetaQAEvaluationConfig)


__all__ = [
    "MetaQAConfig",
    "MetaQADataConfig",
    "MetaQAEvaluationConfig",
    "MetaQAModelConfig",
    "MetaQATrainingConfig",
]
