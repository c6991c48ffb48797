"""The config of a relation-classification run (``task: relation_classification``): SemEval-2010 Task 8
with WordNet (WN18RR) as the knowledge graph.

::

    task: relation_classification
    dataset: wn18rr                   # the graph the nominals link to
    model: {lm: minilm, injection: [entity], node_features: text}
    data: {num_train: 2000, max_length: 128}       # files default to $GNNLM_DATA_DIR/semeval2010-task8
    variants: {lm: {model.injection: []}, entity: {model.injection: [entity]}}

Splits: ``valid`` is ``data.valid_size`` examples of the training file drawn with ``data.split_seed``
(fixed, not the run's seed, so every arm and seed holds out the same sentences), ``train`` the rest in
that drawn order, ``test`` the test file. ``num_train`` / ``num_valid`` / ``num_test`` keep the first
that many of a split (0: all): a random subset of train, the test file's first sentences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, UNIT_INTERVAL, Config, checked
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.tasks.relation_classification.markers import DEFAULT_MARKERS
from gnnlm.tasks.triple_classification import TripleClassificationModelConfig
from gnnlm.train.config import EvaluationConfig, RunConfig


@dataclass
class RelationClassificationModelConfig(TripleClassificationModelConfig):
    """The fused LM and the relation head (every key of triple classification's ``model:``).

    ``head_inputs``: ``text`` (the sentence state and the two start-marker states) and/or ``graph``
    (the final GNN states of the two linked synsets); the head has the same shape in every arm, an
    input it does not read is zeros.

    Attributes:
        head_dropout: dropout on the head's input during training (R-BERT: 0.1).
    """

    injection: list[str] = field(default_factory=lambda: ["entity"])
    node_features: str = "text"
    head_dropout: float = checked(0.1, UNIT_INTERVAL, "0.1")


@dataclass
class RelationClassificationDataConfig(Config):
    """Files, splits, markers and subgraphs.

    Attributes:
        data_dir: the SemEval folder; default ``$GNNLM_DATA_DIR/semeval2010-task8``.
        train_file: the labelled training file (a path, or a name inside ``data_dir``).
        test_file: the labelled test file (likewise).
        valid_size: training sentences held out for validation and model selection.
        split_seed: the seed of that hold-out draw (fixed across arms and run seeds).
        num_train / num_valid / num_test: keep the first this many of a split (0: all).
        markers: e1 start, e1 end, e2 start, e2 end (:mod:`.markers`; R-BERT's ``$ $ # #``).
        max_length: tokens of a marked sentence (longer ones are cut; a start marker cut away is read
            at position 0 and counted in ``markers_truncated``).
        num_hops: radius of the WordNet subgraph around the linked synsets (graph injection).
        max_nodes: node budget of that subgraph (the linked synsets always kept).
    """

    data_dir: str | None = None
    train_file: str = "TRAIN_FILE.TXT"
    test_file: str = "TEST_FILE_FULL.TXT"
    valid_size: int = checked(800, AT_LEAST_0, "800")
    split_seed: int = 0
    num_train: int = checked(0, AT_LEAST_0, "0 (all)")
    num_valid: int = checked(0, AT_LEAST_0, "0 (all)")
    num_test: int = checked(0, AT_LEAST_0, "0 (all)")
    markers: list[str] = field(default_factory=lambda: list(DEFAULT_MARKERS))
    max_length: int = checked(128, AT_LEAST_1, "128")
    num_hops: int = checked(1, AT_LEAST_0, "1")
    max_nodes: int = checked(16, AT_LEAST_1, "16")

    def __post_init__(self) -> None:
        if len(self.markers) != 4 or not all(
            isinstance(m, str) and m.strip() for m in self.markers
        ):
            raise ValueError(
                "data.markers must be 4 non-empty strings (e1 start, e1 end, e2 start, e2 end), "
                f"got {self.markers!r}"
            )

    def files(self) -> dict[str, Path | None]:
        """``{"train", "test"}`` paths (``None``: a bare file name and no folder to find it in)."""
        root = self.data_dir or (
            os.path.join(os.environ["GNNLM_DATA_DIR"], "semeval2010-task8")
            if os.environ.get("GNNLM_DATA_DIR")
            else None
        )
        out: dict[str, Path | None] = {}
        for split, name in (("train", self.train_file), ("test", self.test_file)):
            path = Path(name).expanduser()
            if path.is_absolute() or len(path.parts) > 1:  # a path, not a name inside data_dir
                out[split] = path
            else:
                out[split] = Path(root, name) if root else None
        return out


@dataclass
class RelationClassificationTrainingConfig(FusedTrainingConfig):
    """:class:`~gnnlm.tasks.fused.FusedTrainingConfig` (AdamW; head, GNN and fusion at ``lr``, the LM
    at ``param_groups.lm.lr``, the gates faster) with batches of 16 sentences."""

    batch_size: int = checked(16, AT_LEAST_1, "16")


@dataclass
class RelationClassificationEvaluationConfig(EvaluationConfig):
    """Validation: the official macro-F1 on the held-out training sentences."""

    batch_size: int = checked(64, AT_LEAST_1, "64")
    metric: str | None = "macro_f1"


@dataclass
class RelationClassificationConfig(RunConfig):
    """A relation-classification run (see the module docstring)."""

    task: str = "relation_classification"
    dataset: str = "wn18rr"
    model: RelationClassificationModelConfig = field(
        default_factory=RelationClassificationModelConfig
    )
    data: RelationClassificationDataConfig = field(default_factory=RelationClassificationDataConfig)
    training: RelationClassificationTrainingConfig = field(
        default_factory=RelationClassificationTrainingConfig
    )
    evaluation: RelationClassificationEvaluationConfig = field(
        default_factory=RelationClassificationEvaluationConfig
    )
