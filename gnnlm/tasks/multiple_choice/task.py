"""Multiple-choice QA with a knowledge graph (``task: multiple_choice``): CommonsenseQA over ConceptNet.

Per question: ground its concepts and each choice's (:mod:`.grounding`), extract each (question, choice)
pair's bridge subgraph (:mod:`.extraction`; both prepared by :mod:`.data`), score every pair with the
fused LM and take the softmax over the choices (:mod:`.model`). Splits and files: :mod:`.config`. The
engine runs it like any task; the arms of the comparison are ``variants:``
(``configs/tasks/commonsenseqa.yaml``).

``metrics.json`` per split: ``accuracy``, ``loss``, ``num_examples``, ``correct`` (per question, in split
order: paired bootstrap between arms), ``coverage`` (share of questions with a question concept and of
choices with an answer concept, mean concepts of each) and ``subgraphs`` (mean nodes, grounded concepts
and edges per pair, share of pairs with a bridge node); at the top level the question counts of every
file (``files``), of every split (``splits``) and the graph's size (``graph``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.fused import build_fused_lm, check_fused_model, fused_parameter_groups
from gnnlm.tasks.multiple_choice.batch import MultipleChoiceBatch
from gnnlm.tasks.multiple_choice.config import MultipleChoiceConfig
from gnnlm.tasks.multiple_choice.data import QAData
from gnnlm.tasks.multiple_choice.extraction import ANSWER
from gnnlm.tasks.multiple_choice.model import MultipleChoiceModel, QAFusedLM
from gnnlm.tasks.multiple_choice.reader import parse_question
from gnnlm.train.task import StepOutput, Task


class MultipleChoiceTask(Task):
    """Answer multiple-choice questions with a fused LM over grounded ConceptNet subgraphs.

    Args:
        config: the run.
        data: the :class:`~gnnlm.data.KnowledgeGraph` of concepts, if already loaded (default:
            :func:`~gnnlm.tasks.multiple_choice.conceptnet.load_conceptnet` of ``data.conceptnet_dir``);
            its ``entity_text.names`` are the concept strings.
    """

    name = "multiple_choice"
    config_class = MultipleChoiceConfig
    metrics = {"accuracy": "max", "loss": "min"}
    config: MultipleChoiceConfig

    def __init__(self, config: MultipleChoiceConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.qa: QAData | None = None
        self._node_table: Tensor | None = None

    @property
    def kg(self):
        return self.qa.kg if self.qa is not None else self.data

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The LM, injection modes and text length (against the LM's positions); every input file
        exists. All before any data is read."""
        c, d = self.config, self.config.data
        check_fused_model(c, d.max_length)
        keys = {"train": "data.train_file", "valid": "data.dev_file", "test": "data.test_file",
                "conceptnet": "data.conceptnet_dir"}  # fmt: skip
        for what, path in d.files().items():
            if (what == "conceptnet" and self.data is not None) or (
                what == "test" and path is None
            ):
                continue  # a graph passed in; no labelled test file (the in-house split)
            if path is None:
                raise ConfigError(
                    f"{c.at(keys[what])}{keys[what]} is not set and $GNNLM_DATA_DIR is not either"
                )
            if not path.exists():
                raise ConfigError(f"{c.at(keys[what])}{keys[what]}: {path} does not exist")

    def setup(self) -> None:
        """Prepare the data (:class:`~gnnlm.tasks.multiple_choice.data.QAData`, shared with earlier
        runs of this process that read the same data) and the collator."""
        from gnnlm.lm import load_tokenizer
        from gnnlm.tasks.multiple_choice.batch import MultipleChoiceCollator

        c = self.config
        self.qa = QAData.shared(c, self.data)
        self.collate = MultipleChoiceCollator(
            load_tokenizer(c.model.lm), max_length=c.data.max_length
        )

    def build_model(self) -> MultipleChoiceModel:
        """A :class:`~gnnlm.tasks.multiple_choice.model.QAFusedLM` (``3 * relevance_bins`` node
        roles) and the one-score head."""
        c, m = self.config, self.config.model
        fused = build_fused_lm(
            m, self.kg, seed=c.seed, node_features=self.node_feature_table(),
            fused_class=QAFusedLM, num_roles=(ANSWER + 1) * m.relevance_bins - 1,
        )  # fmt: skip
        return MultipleChoiceModel(fused, m.head_inputs, seed=c.seed)

    def node_feature_table(self) -> Tensor | None:
        """The ``[num_concepts, d]`` table of ``node_features: text | kge``, computed once."""
        from gnnlm.tasks.fused import node_feature_table

        if self._node_table is None:
            self._node_table = node_feature_table(self.config.model, self.kg)
        return self._node_table

    def parameter_groups(self, model: MultipleChoiceModel) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn``, ``fusion``, ``gates`` and ``head``."""
        return {**fused_parameter_groups(model.fused), "head": list(model.head.parameters())}

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.qa.questions["train"])

    def _batch(self, model: nn.Module, split: str, indices: Iterable[int]) -> MultipleChoiceBatch:
        questions = self.qa.questions[split]
        items = [(self.qa.pairs(split, i), questions[i].question.answer) for i in indices]
        return self._to_device(model, self.collate(items))

    @staticmethod
    def _to_device(model: nn.Module, batch: MultipleChoiceBatch) -> MultipleChoiceBatch:
        device = next(model.parameters()).device
        return batch.to(device) if device.type != "cpu" else batch

    def training_step(
        self, model: MultipleChoiceModel, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """Cross-entropy over the choices of the questions ``indices``."""
        batch = self._batch(model, "train", indices.tolist())
        scores, loss = model(batch)
        accuracy = (scores.detach().argmax(-1) == batch.labels).float().mean()
        from gnnlm.fusion.gate_stats import injection_logs

        logs = {"accuracy": float(accuracy), **injection_logs(model.fused)}  # the gates' path
        return StepOutput(loss, logs)

    @staticmethod
    def _gates(model: MultipleChoiceModel) -> dict[str, list[float]]:
        return {
            name: values.tolist()
            for name, injection in model.fused.injections.items()
            if (values := injection.gate_values()) is not None
        }

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return self.qa is not None and len(self.qa.questions.get(split, ())) > 0

    def evaluate(self, model: MultipleChoiceModel, split: str) -> dict[str, Any]:
        """Accuracy (the top-scored choice is the answer), mean cross-entropy, the number of
        questions, per-question ``correct``, grounding ``coverage`` and ``subgraphs`` on ``split``."""
        n = len(self.qa.questions[split])
        size = self.config.evaluation.batch_size
        outcomes, loss = [], 0.0
        for i in range(0, n, size):
            batch = self._batch(model, split, range(i, min(i + size, n)))
            scores, _ = model(batch)
            outcomes += (scores.argmax(-1) == batch.labels).int().tolist()
            loss += float(
                nn.functional.cross_entropy(scores.float(), batch.labels, reduction="sum")
            )
        return {
            "accuracy": sum(outcomes) / n,
            "loss": loss / n,
            "num_examples": n,
            "coverage": self.qa.counts["coverage"][split],
            "subgraphs": self.qa.subgraph_stats(split),
            "gates": self._gates(model),
            "correct": outcomes,  # per question, in split order: paired comparisons between arms
        }

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        return {
            **super().run_metrics(epochs=epochs, train_seconds=train_seconds),
            **self.qa.counts,
        }

    # -- inference ---------------------------------------------------------------------------------
    def predict(
        self, model: MultipleChoiceModel, records: Iterable[Mapping[str, Any]]
    ) -> list[list[float]]:
        """The probability of each choice of each record: ``{"question": str, "choices": [str, ...]}``
        or a line of the CommonsenseQA schema (``{"question": {"stem", "choices": [{label, text}]}}``,
        no ``answerKey`` needed), grounded and extracted as in training.

        Raises:
            DataFormatError: a malformed record (numbered from 1 in the input).
        """
        items = []
        for k, record in enumerate(records):
            if not isinstance(record.get("question"), dict):  # the short form -> the schema
                choices = record.get("choices") or []
                labels = [chr(ord("A") + j) for j in range(len(choices))]
                record = {"question": {
                    "stem": record.get("question"),
                    "choices": [{"label": a, "text": t} for a, t in zip(labels, choices)],
                }}  # fmt: skip
            question = parse_question(json.dumps(record), Path("<input>"), k + 1, answers=False)
            items.append((self.qa.make_pairs(self.qa.ground(question)), None))
        if not items:
            return []
        was_training = model.training
        model.eval()
        out: list[list[float]] = []
        size = self.config.evaluation.batch_size
        try:
            with torch.no_grad():
                for i in range(0, len(items), size):
                    batch = self._to_device(model, self.collate(items[i : i + size]))
                    scores, _ = model(batch)
                    for row, n in zip(torch.softmax(scores.float(), -1), batch.num_choices):
                        out.append(row[: int(n)].tolist())
        finally:
            model.train(was_training)
        return out
