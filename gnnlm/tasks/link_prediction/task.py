"""The link-prediction task: KG embedding models and GNN encoders, on the training engine.

An epoch is a shuffled pass over the loop's examples (:class:`~gnnlm.train.loops.SLCWALoop`: training
triples, each against sampled negatives; :class:`~gnnlm.train.loops.KvsAllLoop`: distinct ``(h, r)``
queries against every entity); the loss of a batch is the loop's. Validation and the final metrics are
filtered ranks against every entity (:class:`~gnnlm.eval.RankBasedEvaluator`); the model is saved with
:func:`~gnnlm.train.pretrained.save_pretrained` (config, weights and the graph's vocabulary).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gnnlm.tasks.link_prediction.config import HEADLINE, LinkPredictionConfig, check_components
from gnnlm.train.config import ConfigError, ConfigWarning
from gnnlm.train.task import Task

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph
    from gnnlm.train.loops import TrainingLoop
    from gnnlm.train.pretrained import PretrainedConfig


class LinkPredictionTask(Task):
    """Train a link-prediction model (an interaction over embeddings or GNN representations).

    Args:
        config: the run.
        data: the :class:`~gnnlm.data.KnowledgeGraph`, if already loaded (default:
            ``load_dataset(config.dataset, **config.dataset_kwargs)``).
    """

    name = "link_prediction"
    config_class = LinkPredictionConfig
    #: MR is the only one where lower is better.
    metrics = {name: "min" if name == "mr" else "max" for name in HEADLINE}
    config: LinkPredictionConfig

    def __init__(self, config: LinkPredictionConfig, *, data: KnowledgeGraph | None = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        self.loop: TrainingLoop | None = None
        self.sparse_updates = False

    def validate(self) -> None:
        """Component names and keyword arguments (the dataset's only when the task loads it), and
        the options that belong to one loop only."""
        from gnnlm.train.loops import KvsAllLoop, SLCWALoop, loop_resolver
        from gnnlm.train.losses import loss_resolver

        check_components(self.config, dataset=self.kg is None)
        t = self.config.training
        loop = loop_resolver.lookup(t.loop)
        if loop is SLCWALoop and t.label_smoothing:
            raise ConfigError(
                "training.label_smoothing applies to the kvsall loop only; set it to 0 for slcwa"
            )
        if loop is KvsAllLoop and t.adversarial_temperature is not None:
            raise ConfigError("training.adversarial_temperature applies to the slcwa loop only")
        if loop is KvsAllLoop and not loss_resolver.lookup(t.loss).supports_kvsall:
            raise ConfigError(
                f"training.loss={t.loss!r} does not support the kvsall loop; use slcwa"
            )
        if t.accumulation_steps != 1:
            raise ConfigError(
                "training.accumulation_steps applies to LM tasks; link prediction draws negatives per "
                "batch, so raise training.batch_size instead"
            )

    def setup(self) -> None:
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(self.config.dataset, **self.config.dataset_kwargs)
        from gnnlm.eval import RankBasedEvaluator

        self.evaluator = RankBasedEvaluator(
            self.kg.filter_index, batch_size=self.config.evaluation.batch_size, quiet=True
        )
        if self.config.evaluation.protocol == "ogb":  # OGB's sampled negatives (ogbl-wikikg2)
            from gnnlm.eval.ogb_run import OGBProtocolEvaluator

            self.evaluator = OGBProtocolEvaluator.from_dataset(
                self.config.dataset, kg=self.kg, data_dir=self.config.dataset_kwargs.get("data_dir"),
                batch_size=self.config.evaluation.batch_size,
            )  # fmt: skip

    def build_model(self) -> nn.Module:
        from gnnlm.train.pretrained import build_model

        return build_model(
            self.config.model,
            self.kg.num_entities,
            self.kg.num_relations,
            reciprocal=self.config.training.reciprocal,
            kg=self.kg,
        )

    def configure_optimizer(
        self, model: nn.Module, param_groups: list[dict[str, Any]]
    ) -> torch.optim.Optimizer:
        """The optimizer, in its row-sparse form where ``training.sparse_updates`` resolves on (see
        :mod:`gnnlm.train.sparse`); the training loop is built here because its gradients must be in
        the form the optimizer takes."""
        from gnnlm.train.sparse import make_optimizer, use_sparse_updates

        self.sparse_updates = use_sparse_updates(self.config.training, model)
        self.loop = self._make_loop(model)
        return make_optimizer(self.config.training, param_groups, sparse=self.sparse_updates)

    def _make_loop(self, model: nn.Module) -> TrainingLoop:
        from gnnlm.train.loops import KvsAllLoop, SLCWALoop, loop_resolver
        from gnnlm.train.losses import loss_resolver
        from gnnlm.train.negative_sampling import sampler_resolver
        from gnnlm.train.regularizers import regularizer_resolver

        t, kg = self.config.training, self.kg
        loss = loss_resolver.make(t.loss, t.loss_kwargs)
        regularizer = (
            regularizer_resolver.make(t.regularizer, weight=t.regularizer_weight)
            if t.regularizer
            else None
        )
        if loop_resolver.lookup(t.loop) is KvsAllLoop:
            return KvsAllLoop(
                model, kg.train, kg.num_relations, loss, batch_size=t.batch_size,
                reciprocal=t.reciprocal, label_smoothing=t.label_smoothing, regularizer=regularizer,
            )  # fmt: skip
        triples = kg.with_inverse_triples(kg.train) if t.reciprocal else kg.train
        sampler = sampler_resolver.make(
            t.sampler, triples=triples, num_entities=kg.num_entities,
            num_negatives=t.num_negatives, filtered=t.filter_negatives,
        )  # fmt: skip
        return SLCWALoop(
            model, triples, sampler, loss, batch_size=t.batch_size,
            adversarial_temperature=t.adversarial_temperature, regularizer=regularizer,
            sparse=self.sparse_updates,
        )  # fmt: skip

    def num_train_examples(self) -> int:
        return self.loop.num_examples

    def training_step(
        self, model: nn.Module, indices: Tensor, generator: torch.Generator
    ) -> Tensor:
        return self.loop.batch_loss(indices, generator)

    def after_step(self, model: nn.Module) -> None:
        model.post_step()  # parameter constraints, e.g. TransE's unit-norm entities

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return split in self.kg.splits and len(self.kg.splits[split]) > 0

    def evaluate(self, model: nn.Module, split: str) -> dict[str, Any]:
        """Filtered rank-based metrics on ``split`` (both sides; the evaluator's ``to_dict()``)."""
        return self.evaluator.evaluate(model, self.kg.splits[split]).to_dict()

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        num_train = len(self.kg.train)
        return {"triples_per_second": num_train * epochs / train_seconds if train_seconds else None}

    # -- saving ------------------------------------------------------------------------------------
    def pretrained_config(self) -> PretrainedConfig:
        from gnnlm.train.pretrained import PretrainedConfig

        return PretrainedConfig(
            model=self.config.model,
            num_entities=self.kg.num_entities,
            num_relations=self.kg.num_relations,
            reciprocal=self.config.training.reciprocal,
            dataset=self.config.dataset,
            dataset_kwargs=self.config.dataset_kwargs,
        )

    def save_model(self, model: nn.Module, directory: Path) -> None:
        from gnnlm.train.pretrained import save_pretrained

        save_pretrained(model, directory, self.pretrained_config(), kg=self.kg)

    def load_model(self, directory: Path, *, trust_remote_code: bool = False) -> nn.Module:
        """The saved model, with the graph renumbered to its ``vocab.json`` first."""
        from gnnlm.train.pretrained import align_graph, from_pretrained, load_vocab

        vocab = load_vocab(directory)
        if vocab is None:
            warnings.warn(
                f"{Path(directory) / 'vocab.json'} is missing; assuming the dataset numbers entities "
                "and relations as it did in training",
                ConfigWarning,
                stacklevel=2,
            )
        else:
            self.kg = align_graph(self.kg, vocab, source=str(Path(directory) / "vocab.json"))
            self.setup()  # the evaluator's filter index follows the new numbering
        return from_pretrained(directory, kg=self.kg, trust_remote_code=trust_remote_code)

    def init_from(self, model: nn.Module, source: Path) -> dict[str, Any]:
        from gnnlm.train.pretrained import init_from_pretrained

        return init_from_pretrained(model, source, self.pretrained_config(), self.kg)
