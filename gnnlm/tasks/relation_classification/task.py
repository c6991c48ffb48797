"""Relation classification on SemEval-2010 Task 8 with WordNet (``task: relation_classification``).

Each sentence's two nominals are wrapped in entity markers (:mod:`.markers`) and linked to WN18RR
synsets (:mod:`.linking`); a fused LM reads the marked sentence, with the linked synsets injected at the
nominals' tokens (``entity`` mode) and/or the WordNet subgraph around them cross-attended by every token
(``graph`` mode); a linear head over the sentence and the two start-marker states (and, with
``head_inputs: [.., graph]``, the synsets' GNN states) picks one of the 19 labels (:mod:`.model`). The
engine runs it like any task; the arms of the comparison are ``variants:``
(``configs/tasks/semeval.yaml``).

``metrics.json`` per split: ``macro_f1`` (the official score, :mod:`.scorer`), ``accuracy``,
``micro_f1``, ``loss``, ``num_examples``, ``per_relation`` (precision, recall, F1 and counts),
``linking`` (nominals linked, and how), ``markers_truncated``, ``gates``, and per sentence, in split
order, ``correct`` (0/1), ``predictions`` and ``gold`` (label ids into
:data:`~.reader.LABELS`: paired bootstrap between arms); at the top level the counts of every file
(``files``), of every split (``splits``) and the nominals linked per split (``linking``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.fused import (
    build_fused_lm,
    check_fused_model,
    fused_parameter_groups,
    node_feature_table,
)
from gnnlm.tasks.relation_classification.batch import RelationBatch, RelationCollator
from gnnlm.tasks.relation_classification.config import RelationClassificationConfig
from gnnlm.tasks.relation_classification.data import RelationData
from gnnlm.tasks.relation_classification.model import RelationClassifier
from gnnlm.tasks.relation_classification.reader import LABELS
from gnnlm.tasks.relation_classification.scorer import official_scores
from gnnlm.train.config import check_dataset
from gnnlm.train.task import StepOutput, Task


class RelationClassificationTask(Task):
    """Classify the relation between two marked nominals (see the module docstring).

    Args:
        config: the run.
        data: the WordNet :class:`~gnnlm.data.KnowledgeGraph`, if already loaded (default:
            ``load_dataset(config.dataset)``, WN18RR); it needs synset names.
    """

    name = "relation_classification"
    config_class = RelationClassificationConfig
    metrics = {"macro_f1": "max", "accuracy": "max", "loss": "min"}
    config: RelationClassificationConfig

    def __init__(self, config: RelationClassificationConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        self.prepared: RelationData | None = None
        self._node_table: Tensor | None = None

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The LM, injection modes and text length, the graph's dataset, and both files: before any
        data is read."""
        c = self.config
        check_fused_model(c, c.data.max_length)
        if self.kg is None:
            check_dataset(c)
        for split, path in c.data.files().items():
            key = f"data.{split}_file"
            if path is None:
                raise ConfigError(
                    f"{c.at(key)}{key} is a bare name, and neither data.data_dir nor "
                    "$GNNLM_DATA_DIR is set"
                )
            if not path.is_file():
                raise ConfigError(f"{c.at(key)}{key}: {path} does not exist")

    def setup(self) -> None:
        """Load the graph, prepare the data (:class:`~.data.RelationData`, shared with earlier runs
        of this process that read the same data) and the collator."""
        from gnnlm.data.subgraph import SubgraphSampler
        from gnnlm.fusion import text_positions
        from gnnlm.lm import load_lm_config, load_tokenizer

        c, d = self.config, self.config.data
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        self.prepared = RelationData.shared(c, self.kg)
        sampler = SubgraphSampler(
            self.kg.homogeneous(add_inverse=True), num_hops=d.num_hops, max_nodes=d.max_nodes,
            inverse_offset=self.kg.num_relations, seed=0,
        )  # fmt: skip  # seed 0: the subgraphs are data, the same in every arm and run
        self.collate = RelationCollator(
            load_tokenizer(c.model.lm), sampler, max_length=d.max_length,
            max_positions=text_positions(load_lm_config(c.model.lm)),
        )  # fmt: skip

    def build_model(self) -> RelationClassifier:
        """The fused LM of ``model:`` (:func:`~gnnlm.tasks.fused.build_fused_lm`) and the head."""
        c, m = self.config, self.config.model
        fused = build_fused_lm(m, self.kg, seed=c.seed, node_features=self.node_feature_table())
        return RelationClassifier(fused, m.head_inputs, dropout=m.head_dropout, seed=c.seed)

    def node_feature_table(self) -> Tensor | None:
        """The ``[num_synsets, d]`` table of ``node_features: text | kge``, computed once (and only
        for arms whose modes read node states)."""
        from gnnlm.fusion import injection_resolver

        m = self.config.model
        needs = any(
            injection_resolver.lookup(mode).uses_graph_encoder
            or m.injection_kwargs.get(mode, {}).get("source") == "gnn"
            for mode in m.injection
        )
        if not needs or m.node_features == "learned":
            return None
        if self._node_table is None:
            self._node_table = node_feature_table(m, self.kg)
        return self._node_table

    def parameter_groups(self, model: RelationClassifier) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn``, ``fusion``, ``gates`` and ``head``."""
        return {**fused_parameter_groups(model.fused), "head": list(model.head.parameters())}

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.prepared.items["train"])

    def _batch(self, model: nn.Module, split: str, indices) -> RelationBatch:
        items = self.prepared.items[split]
        batch = self.collate([items[i] for i in indices])
        device = next(model.parameters()).device
        return batch.to(device) if device.type != "cpu" else batch

    def training_step(
        self, model: RelationClassifier, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """Cross-entropy over the 19 labels of the sentences ``indices`` (dropout draws from torch's
        global generator, which the engine seeds and checkpoints)."""
        batch = self._batch(model, "train", indices.tolist())
        logits, loss = model(batch)
        accuracy = (logits.detach().argmax(-1) == batch.labels).float().mean()
        logs = {"accuracy": float(accuracy)}
        for name, gates in self._gates(model).items():  # the gates' path over training
            logs.update({f"gate_{name}_{j}": v for j, v in enumerate(gates)})
        return StepOutput(loss, logs)

    @staticmethod
    def _gates(model: RelationClassifier) -> dict[str, list[float]]:
        return {
            name: values.tolist()
            for name, injection in model.fused.injections.items()
            if (values := injection.gate_values()) is not None
        }

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return self.prepared is not None and len(self.prepared.items.get(split, ())) > 0

    def evaluate(self, model: RelationClassifier, split: str) -> dict[str, Any]:
        """The official scores of ``split`` (see the module docstring for every key); sentences are
        run in length order (less padding) and every per-sentence list is in split order."""
        items = self.prepared.items[split]
        size = self.config.evaluation.batch_size
        # batches of similar length pad less (a third of the time on the test file); the predictions
        # go back to split order
        order = sorted(range(len(items)), key=lambda i: (len(items[i].example.text), i))
        predictions = [0] * len(items)
        loss, truncated = 0.0, 0
        for start in range(0, len(items), size):
            chunk = order[start : start + size]
            batch = self._batch(model, split, chunk)
            logits, _ = model(batch)
            for i, label in zip(chunk, logits.argmax(-1).tolist()):
                predictions[i] = label
            loss += float(
                nn.functional.cross_entropy(logits.float(), batch.labels, reduction="sum")
            )
            truncated += batch.truncated
        gold = [item.source.label for item in items]
        scores = official_scores(gold, predictions)
        return {
            "macro_f1": scores["macro_f1"],
            "accuracy": scores["accuracy"],
            "micro_f1": scores["micro_f1"],
            "loss": loss / len(items),
            "num_examples": len(items),
            "per_relation": scores["per_relation"],
            "linking": self.prepared.counts["linking"][split],
            "markers_truncated": truncated,
            "gates": self._gates(model),
            "correct": [int(p == g) for p, g in zip(predictions, gold)],
            "predictions": predictions,
            "gold": gold,
        }

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        return {
            **super().run_metrics(epochs=epochs, train_seconds=train_seconds),
            **self.prepared.counts,
            "labels": list(LABELS),
        }
