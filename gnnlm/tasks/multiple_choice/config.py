"""The config of a multiple-choice run (``task: multiple_choice``), e.g. CommonsenseQA over ConceptNet.

::

    task: multiple_choice
    model: {lm: minilm, injection: [graph], node_features: text, relevance_bins: 4}
    data: {max_nodes: 32, max_hops: 2, max_length: 64}     # files default to $GNNLM_DATA_DIR
    variants: {lm: {model.injection: [], model.head_inputs: [text]}, both: {}}

Splits: ``train`` is the training file less its last ``data.in_house_test`` questions, which are the
in-house ``test`` split (CommonsenseQA's official test file has no answers; QA-GNN likewise holds out
1,241 training questions); ``valid`` is the dev file (model selection). A labelled ``data.test_file``
replaces the in-house split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, Config, checked
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.tasks.triple_classification import TripleClassificationModelConfig
from gnnlm.train.config import EvaluationConfig, RunConfig

#: ways to score a concept's relevance to its question (see MultipleChoiceDataConfig.relevance)
RELEVANCE = ("lm", "none")


@dataclass
class MultipleChoiceModelConfig(TripleClassificationModelConfig):
    """The fused LM and its one-score-per-pair head (every key of triple classification's ``model:``).

    Attributes:
        relevance_bins: a node's relevance to the question is cut into this many equal bins over
            ``[0, 1]`` (cosine similarity; negatives in the first bin) and, with its type (question /
            answer / other), picks the node's role embedding: ``3 * relevance_bins`` roles.
    """

    node_features: str = "text"
    relevance_bins: int = checked(4, AT_LEAST_1, "4")


@dataclass
class MultipleChoiceDataConfig(Config):
    """Files, splits, grounding and subgraphs.

    Attributes:
        train_file: training questions (JSONL, CommonsenseQA schema); default
            ``$GNNLM_DATA_DIR/commonsenseqa/train_data.jsonl``.
        dev_file: validation questions; default ``$GNNLM_DATA_DIR/commonsenseqa/dev_data.jsonl``.
        test_file: labelled test questions; default none: the in-house split of ``train_file``.
        in_house_test: without ``test_file``, the last this many questions of ``train_file`` (in file
            order; the CommonsenseQA random split is shuffled already) are the test split.
        conceptnet_dir: the ConceptNet folder; default ``$GNNLM_DATA_DIR/conceptnet``.
        conceptnet_subsets: its sub-folders whose training triples make the graph.
        num_train / num_valid / num_test: use the first this many questions of a split (0: all), for
            small budgets.
        max_ngram: longest concept matched in a text, in words.
        use_question_concept: also ground the ``question_concept`` field when the file has it.
        max_nodes: node budget per (question, choice) subgraph, grounded concepts included.
        max_hops: longest path between a question and an answer concept.
        max_length: tokens of ``question [SEP] choice`` (the question is truncated first).
        relevance: ``lm`` (cosine between the LM's mean-pooled encodings of the concept and of the
            question, both cached) or ``none`` (no relevance: path length, then a fixed random rank).
    """

    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    in_house_test: int = checked(1241, AT_LEAST_0, "1241")
    conceptnet_dir: str | None = None
    conceptnet_subsets: list[str] = field(default_factory=lambda: ["CN-100K", "CN-82K"])
    num_train: int = checked(0, AT_LEAST_0, "0 (all)")
    num_valid: int = checked(0, AT_LEAST_0, "0 (all)")
    num_test: int = checked(0, AT_LEAST_0, "0 (all)")
    max_ngram: int = checked(4, AT_LEAST_1, "4")
    use_question_concept: bool = True
    max_nodes: int = checked(32, AT_LEAST_1, "32")
    max_hops: int = checked(2, AT_LEAST_1, "2")
    max_length: int = checked(64, AT_LEAST_1, "64")
    relevance: str = "lm"

    def __post_init__(self) -> None:
        if self.relevance not in RELEVANCE:
            raise ValueError(
                f"data.relevance must be one of {', '.join(RELEVANCE)}, got {self.relevance!r}"
            )

    def files(self) -> dict[str, Path | None]:
        """``{"train", "valid", "test", "conceptnet"}`` paths, defaults resolved from
        ``$GNNLM_DATA_DIR`` (``None``: no ``test_file``, or no default without the variable)."""
        root = os.environ.get("GNNLM_DATA_DIR")

        def pick(value: str | None, *default: str) -> Path | None:
            if value:
                return Path(value).expanduser()
            return Path(root, *default) if root and default else None

        return {
            "train": pick(self.train_file, "commonsenseqa", "train_data.jsonl"),
            "valid": pick(self.dev_file, "commonsenseqa", "dev_data.jsonl"),
            "test": pick(self.test_file),
            "conceptnet": pick(self.conceptnet_dir, "conceptnet"),
        }


@dataclass
class MultipleChoiceTrainingConfig(FusedTrainingConfig):
    """:class:`~gnnlm.tasks.fused.FusedTrainingConfig` (AdamW, the LM slower and the gates faster);
    a batch is ``batch_size`` questions (all their choices)."""

    batch_size: int = checked(8, AT_LEAST_1, "8")


@dataclass
class MultipleChoiceEvaluationConfig(EvaluationConfig):
    """Validation: accuracy on the dev questions."""

    batch_size: int = checked(16, AT_LEAST_1, "16")
    metric: str | None = "accuracy"


@dataclass
class MultipleChoiceConfig(RunConfig):
    """A multiple-choice run (see the module docstring)."""

    task: str = "multiple_choice"
    dataset: str = "commonsenseqa"
    model: MultipleChoiceModelConfig = field(default_factory=MultipleChoiceModelConfig)
    data: MultipleChoiceDataConfig = field(default_factory=MultipleChoiceDataConfig)
    training: MultipleChoiceTrainingConfig = field(default_factory=MultipleChoiceTrainingConfig)
    evaluation: MultipleChoiceEvaluationConfig = field(
        default_factory=MultipleChoiceEvaluationConfig
    )
