"""Triple classification: is ``(h, r, t)`` true? A fused LM reads the entity names and the KG subgraph.

Each triple becomes the text ``"<name h> ; <relation> ; <name t>"`` with mentions of ``h`` and ``t``, and
the subgraph around ``{h, t}`` of the *training* graph with the triple's own edge removed (so a training
positive cannot be read off its subgraph; valid/test triples are not in the training graph). Negatives
corrupt the head or the tail with a uniformly drawn entity such that the result is in no split. Every
split is balanced (one negative per positive) and drawn with the run's seed.

The engine (:class:`~gnnlm.train.Trainer`) runs it like any task; comparing injection modes is a
``variants:`` config (same data, seed, data order and LM initialisation in every arm)::

    task: triple_classification
    dataset: wn18rr
    model: {lm: minilm, injection: [graph], encoder: compgcn, node_channels: 64, num_fused_layers: 2,
            freeze_lm_layers: 4}
    data: {num_train: 500, num_valid: 250, num_test: 250, num_hops: 2, max_nodes: 32, max_length: 32}
    training: {epochs: 1, batch_size: 32, optimizer: adamw, lr: 3.0e-3,
               param_groups: {lm: {lr: 5.0e-5}, gates: {lr: 2.0e-2}}}
    evaluation: {metric: accuracy}
    variants: {lm: {model.injection: []}, lm+graph: {model.injection: [graph]}}

Parameter groups (``training.param_groups.<name>``): ``lm`` (the transformer; its frozen bottom layers
are not trained), ``gnn`` (encoder, node/role/relation embeddings), ``fusion`` (the injection modules),
``gates`` (their zero-initialised tanh gates, :class:`~gnnlm.fusion.TanhGate`) and ``head``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import (
    AT_LEAST_0,
    AT_LEAST_1,
    POSITIVE,
    Config,
    ConfigError,
    check_kwargs,
    checked,
)
from gnnlm.train.config import EvaluationConfig, RunConfig, TrainingConfig, check_dataset
from gnnlm.train.task import StepOutput, Task
from gnnlm.utils.strict_yaml import quote

#: weight of the dual tower's contrastive loss in the training loss.
CONTRASTIVE_WEIGHT = 0.1


# -- config ------------------------------------------------------------------------------------------
@dataclass
class TripleClassificationModelConfig(Config):
    """The classifier: a fused LM (:class:`~gnnlm.fusion.FusedLM`) and a linear head.

    Attributes:
        lm: ``minilm`` (all-MiniLM-L6-v2), ``tiny-bert`` (2 random layers, for tests), a folder or hub id.
        injection: injection modes (``[]``: the plain LM; ``[graph]``, ``[entity]``, ``[graph, entity]``).
        injection_kwargs: per mode, its options (only those of the listed modes are used).
        encoder: GNN spec (built when a mode needs node states); ``encoder_kwargs`` its options.
        node_channels: GNN width.
        num_fused_layers: fusion after the top ``K`` LM layers.
        freeze_lm_layers: the bottom LM layers (and the embeddings) kept frozen.
    """

    lm: str = "minilm"
    injection: list[str] = field(default_factory=lambda: ["graph"])
    injection_kwargs: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"entity": {"source": "gnn"}}
    )
    encoder: str = "compgcn"
    encoder_kwargs: dict[str, Any] = field(default_factory=lambda: {"batch_norm": False})
    node_channels: int = checked(64, AT_LEAST_1, "64")
    num_fused_layers: int = checked(2, AT_LEAST_1, "2")
    freeze_lm_layers: int = checked(4, AT_LEAST_0, "4, or 0 to train every layer")


@dataclass
class TripleClassificationDataConfig(Config):
    """The examples (each split: that many positives plus one corruption each) and their inputs.

    Attributes:
        num_train: training positives drawn from the train split.
        num_valid: validation positives (0: no validation split; then ``evaluation.frequency: 0``).
        num_test: test positives (0: no test metrics).
        num_hops: subgraph radius; ``max_nodes`` its node budget.
        max_length: text length in tokens.
    """

    num_train: int = checked(500, AT_LEAST_1, "500")
    num_valid: int = checked(250, AT_LEAST_0, "250, or 0 for no validation")
    num_test: int = checked(250, AT_LEAST_0, "250")
    num_hops: int = checked(2, AT_LEAST_0, "2")
    max_nodes: int = checked(32, AT_LEAST_1, "32")
    max_length: int = checked(32, AT_LEAST_1, "32")


@dataclass
class TripleClassificationTrainingConfig(TrainingConfig):
    """The engine's training options, with defaults for fine-tuning a fused LM: AdamW at ``lr`` for the
    GNN, fusion modules and head, the LM slower and the zero-initialised gates faster (so knowledge can
    enter within a short run)."""

    epochs: int = checked(1, AT_LEAST_1, "1")
    batch_size: int = checked(32, AT_LEAST_1, "32")
    lr: float = checked(3e-3, POSITIVE, "0.003")
    optimizer: str = "adamw"
    optimizer_kwargs: dict[str, Any] = field(default_factory=lambda: {"weight_decay": 0.01})
    param_groups: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"lm": {"lr": 5e-5}, "gates": {"lr": 2e-2}}
    )


@dataclass
class TripleClassificationEvaluationConfig(EvaluationConfig):
    """Validation: accuracy on the balanced valid split (the engine's options)."""

    batch_size: int = checked(64, AT_LEAST_1, "64")
    metric: str | None = "accuracy"


@dataclass
class TripleClassificationConfig(RunConfig):
    """A triple-classification run (see the module docstring for the YAML form)."""

    task: str = "triple_classification"
    dataset: str = "wn18rr"
    model: TripleClassificationModelConfig = field(default_factory=TripleClassificationModelConfig)
    data: TripleClassificationDataConfig = field(default_factory=TripleClassificationDataConfig)
    training: TripleClassificationTrainingConfig = field(
        default_factory=TripleClassificationTrainingConfig
    )
    evaluation: TripleClassificationEvaluationConfig = field(
        default_factory=TripleClassificationEvaluationConfig
    )


# -- data --------------------------------------------------------------------------------------------
def _names(kg) -> tuple[list[str], list[str]]:
    if kg.entity_text is None:
        raise ConfigError(
            f"{kg.name}: triple classification needs entity names (entity_text is None)"
        )
    entity = [kg.entity_label(i) for i in range(kg.num_entities)]
    relation_text = kg.relation_text or [None] * kg.num_relations
    relation = [
        text or kg.relations.name(r).strip("/_").replace("_", " ").replace("/", " ")
        for r, text in enumerate(relation_text)
    ]
    return entity, relation


def make_example(triple: Tensor, label: float | None, entity: list[str], relation: list[str]):
    """``(h, r, t)`` -> ``"<h> ; <r> ; <t>"`` with mentions of ``h`` and ``t`` and the triple excluded
    from its subgraph."""
    from gnnlm.fusion import TextGraphExample

    h, r, t = (int(x) for x in triple)
    head, rel, tail = entity[h], relation[r], entity[t]
    text = f"{head} ; {rel} ; {tail}"
    tail_start = len(head) + len(rel) + 6
    mentions = [(0, len(head), h), (tail_start, tail_start + len(tail), t)]
    return TextGraphExample(text, mentions, exclude=triple.view(1, 3), label=label)


def corrupt(
    positives: Tensor, known: set[tuple[int, int, int]], num_entities: int, rng: random.Random
) -> Tensor:
    """One negative per positive: head or tail replaced by a random entity, never a known triple."""
    negatives = []
    for h, r, t in positives.tolist():
        while True:
            e = rng.randrange(num_entities)
            candidate = (e, r, t) if rng.random() < 0.5 else (h, r, e)
            if candidate not in known:
                negatives.append(candidate)
                break
    return torch.tensor(negatives, dtype=torch.long).view(-1, 3)


def build_examples(kg, num_positives: Mapping[str, int], *, seed: int = 0) -> dict[str, list]:
    """Balanced examples per split: ``num_positives[split]`` positives subsampled from the split plus
    one corruption each, shuffled; splits are drawn in the mapping's order from one ``Random(seed)``.

    Raises:
        ConfigError: a split with positives asked for is empty, or the graph has no entity names.
    """
    rng = random.Random(seed)
    entity, relation = _names(kg)
    known = {tuple(x) for s in kg.splits for x in kg.splits[s].tolist()}
    out: dict[str, list] = {}
    for split, n in num_positives.items():
        if n <= 0:
            out[split] = []
            continue
        triples = kg.splits[split]
        if len(triples) == 0:
            raise ConfigError(f"{kg.name}: split {split!r} is empty; set data.num_{split}=0")
        index = rng.sample(range(len(triples)), min(n, len(triples)))
        positives = triples[index]
        negatives = corrupt(positives, known, kg.num_entities, rng)
        examples = [make_example(x, 1.0, entity, relation) for x in positives]
        examples += [make_example(x, 0.0, entity, relation) for x in negatives]
        rng.shuffle(examples)
        out[split] = examples
    return out


# -- model -------------------------------------------------------------------------------------------
class TripleClassifier(nn.Module):
    """A fused LM with a linear head: ``logit = w^T [pooled_text; pooled_linked_nodes] + b``.

    As in GreaseLM / QA-GNN, the head reads the text and (with a GNN) the final states of the linked
    entities (:attr:`~gnnlm.fusion.FusionOutput.graph_pooled_output`); without a GNN, the text alone.
    """

    def __init__(self, fused) -> None:
        super().__init__()
        self.fused = fused
        graph = fused.config.node_channels if fused.encoder is not None else 0
        self.head = nn.Linear(fused.lm.hidden_size + graph, 1)

    def forward(self, batch) -> tuple[Tensor, Tensor | None]:
        """``(logits [batch], loss)``; the loss (``None`` without labels) adds the dual tower's
        contrastive loss when present."""
        out = self.fused(batch)
        features = out.pooled_output
        if out.graph_pooled_output is not None:
            features = torch.cat([features, out.graph_pooled_output], -1)  # [batch, hidden + nodes]
        logits = self.head(features).squeeze(-1)
        if batch.labels is None:
            return logits, None
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels.float())
        if out.contrastive_loss is not None:
            loss = loss + CONTRASTIVE_WEIGHT * out.contrastive_loss
        return logits, loss


def freeze_bottom_layers(model, num_layers: int) -> None:
    """Freeze the embeddings and the bottom ``num_layers`` layers of a fused model's LM."""
    lm = model.lm
    if num_layers <= 0:
        return
    lm.model.embeddings.requires_grad_(False)
    for i in range(min(num_layers, lm.num_layers)):
        lm.layers[i].requires_grad_(False)


# -- task --------------------------------------------------------------------------------------------
class TripleClassificationTask(Task):
    """Classify KG triples as true or false with a fused LM (see the module docstring).

    Args:
        config: the run.
        data: the :class:`~gnnlm.data.KnowledgeGraph`, if already loaded (default:
            ``load_dataset(config.dataset, **config.dataset_kwargs)``); it needs entity names.
    """

    name = "triple_classification"
    config_class = TripleClassificationConfig
    metrics = {"accuracy": "max", "loss": "min"}
    config: TripleClassificationConfig

    def __init__(self, config: TripleClassificationConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        self.examples: dict[str, list] = {}

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The text length against the LM's positions, the injection modes and their options, the
        encoder, and the dataset (when the task loads it): all before any data is read."""
        from gnnlm.fusion import injection_resolver, text_positions
        from gnnlm.lm import load_lm_config

        c, m = self.config, self.config.model
        try:
            positions = text_positions(load_lm_config(m.lm))
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{c.at('model.lm')}model.lm {quote(m.lm)}: {' '.join(str(err).split())}"
            ) from None
        if positions is not None and c.data.max_length > positions:
            raise ConfigError(
                f"{c.at('data.max_length')}data.max_length={c.data.max_length} is longer than the "
                f"{positions} positions of {m.lm!r}; use data.max_length <= {positions}"
            )
        graph = False
        for k, mode in enumerate(m.injection):
            try:
                cls = injection_resolver.lookup(mode)
            except (KeyError, ValueError, TypeError, ImportError):
                raise ConfigError(
                    f"{c.at('model.injection')}model.injection[{k}]: unknown mode {quote(mode)}; "
                    f"valid: {', '.join(sorted(injection_resolver.lookup_dict))}"
                ) from None
            graph = graph or cls.uses_graph_encoder
            kwargs = m.injection_kwargs.get(mode, {})
            skip = ("context", "entity_embeddings", "relation_embeddings")
            check_kwargs(c, f"model.injection_kwargs.{mode}", cls, kwargs, skip)
        if graph:
            from gnnlm.encoders import lookup_encoder

            try:
                lookup_encoder(m.encoder)
            except (KeyError, ValueError, TypeError, ImportError) as err:
                raise ConfigError(
                    f"{c.at('model.encoder')}model.encoder {quote(m.encoder)}: "
                    f"{' '.join(str(err).split())}"
                ) from None
        if self.kg is None:
            check_dataset(c)

    def setup(self) -> None:
        """Load the graph, draw the examples (train, test, then valid, from ``Random(seed)``) and build
        the subgraph sampler and collator."""
        from gnnlm.data.subgraph import SubgraphSampler
        from gnnlm.fusion import TextGraphCollator, text_positions
        from gnnlm.lm import load_lm_config, load_tokenizer

        c, d = self.config, self.config.data
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        kg = self.kg
        # train and test first: the draws of earlier releases, which had no validation split
        sizes = {"train": d.num_train, "test": d.num_test, "valid": d.num_valid}
        self.examples = build_examples(kg, sizes, seed=c.seed)
        sampler = SubgraphSampler(
            kg.homogeneous(add_inverse=True), num_hops=d.num_hops, max_nodes=d.max_nodes,
            inverse_offset=kg.num_relations, seed=c.seed,
        )  # fmt: skip
        self.collate = TextGraphCollator(
            load_tokenizer(c.model.lm), sampler, max_length=d.max_length,
            max_positions=text_positions(load_lm_config(c.model.lm)),
        )  # fmt: skip

    def build_model(self) -> TripleClassifier:
        from gnnlm.fusion import FusedLM, FusionConfig
        from gnnlm.lm import load_lm

        c, m = self.config, self.config.model
        attn = "eager" if "relation" in m.injection else None
        fusion = FusionConfig(
            lm=m.lm,
            attn_implementation=attn,
            injection=list(m.injection),
            injection_kwargs={mode: dict(m.injection_kwargs.get(mode, {})) for mode in m.injection},
            num_fused_layers=m.num_fused_layers,
            encoder=m.encoder,
            encoder_kwargs=dict(m.encoder_kwargs),
            node_channels=m.node_channels,
            num_entities=self.kg.num_entities,
            num_relations=2 * self.kg.num_relations,
        )
        lm = load_lm(m.lm, seed=c.seed, attn_implementation=attn)
        model = TripleClassifier(FusedLM(fusion, lm=lm))
        freeze_bottom_layers(model.fused, m.freeze_lm_layers)
        return model

    def parameter_groups(self, model: TripleClassifier) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn``, ``fusion``, ``gates`` (every :class:`~gnnlm.fusion.TanhGate`) and ``head``."""
        from gnnlm.fusion import TanhGate, injection_parameters

        groups = injection_parameters(model.fused)
        gates = {
            id(p)
            for module in model.fused.modules()
            if isinstance(module, TanhGate)
            for p in module.parameters()
        }
        return {
            "lm": groups["lm"],
            "gnn": groups["gnn"],
            "fusion": [p for p in groups["fusion"] if id(p) not in gates],
            "gates": [p for p in groups["fusion"] if id(p) in gates],
            "head": list(model.head.parameters()),
        }

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.examples["train"])

    def training_step(
        self, model: TripleClassifier, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """The loss of the training examples ``indices`` (dropout draws from torch's global generator,
        which the engine's checkpoints save)."""
        examples = self.examples["train"]
        batch = self._batch(model, [examples[i] for i in indices.tolist()])
        logits, loss = model(batch)
        accuracy = ((logits.detach() > 0).float() == batch.labels).float().mean()
        return StepOutput(loss, {"accuracy": float(accuracy)})

    def _batch(self, model: nn.Module, examples: list):
        device = next(model.parameters()).device
        batch = self.collate(examples)
        return batch.to(device) if device.type != "cpu" else batch

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return len(self.examples.get(split, ())) > 0

    def evaluate(self, model: TripleClassifier, split: str) -> dict[str, Any]:
        """Accuracy (logit > 0 means true), mean BCE loss and the number of examples on ``split``, and
        the injection gates (``{mode: [per fused layer]}``)."""
        examples = self.examples[split]
        size = self.config.evaluation.batch_size
        correct, loss = 0, 0.0
        for i in range(0, len(examples), size):
            batch = self._batch(model, examples[i : i + size])
            logits, _ = model(batch)
            labels = batch.labels.float()
            correct += int(((logits > 0).float() == labels).sum())
            loss += float(
                nn.functional.binary_cross_entropy_with_logits(
                    logits.float(), labels, reduction="sum"
                )
            )
        n = len(examples)
        gates = {
            name: values.tolist()
            for name, inj in model.fused.injections.items()
            if (values := inj.gate_values()) is not None
        }
        return {"accuracy": correct / n, "loss": loss / n, "num_examples": n, "gates": gates}

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        n = self.num_train_examples()
        return {
            "num_train_examples": n,
            "examples_per_second": n * epochs / train_seconds if train_seconds else None,
        }

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, model: TripleClassifier, records: Iterable[Mapping[str, str]]) -> list[float]:
        """The probability that each ``{"head", "relation", "tail"}`` triple is true. Entities and
        relations are the graph's identifiers or (entities) their names; the triple's own edge is
        left out of its subgraph, as in training."""
        entity, relation = _names(self.kg)
        by_name = {}
        for i, label in enumerate(entity):
            by_name.setdefault(label, i)

        def lookup(vocab, names, value: str, what: str) -> int:
            if value in vocab:
                return vocab.id(value)
            if names is not None and value in names:
                return names[value]
            raise ConfigError(f"unknown {what} {value!r} in {self.kg.name}")

        relations = {text: r for r, text in enumerate(relation)}
        examples = []
        for record in records:
            triple = torch.tensor(
                [
                    lookup(self.kg.entities, by_name, record["head"], "entity"),
                    lookup(self.kg.relations, relations, record["relation"], "relation"),
                    lookup(self.kg.entities, by_name, record["tail"], "entity"),
                ]
            )
            examples.append(make_example(triple, None, entity, relation))
        if not examples:
            return []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits, _ = model(self._batch(model, examples))
        finally:
            model.train(was_training)
        return torch.sigmoid(logits.float()).tolist()


__all__ = [
    "TripleClassificationConfig",
    "TripleClassificationDataConfig",
    "TripleClassificationEvaluationConfig",
    "TripleClassificationModelConfig",
    "TripleClassificationTask",
    "TripleClassificationTrainingConfig",
    "TripleClassifier",
    "build_examples",
    "corrupt",
    "freeze_bottom_layers",
    "make_example",
]
