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
    checked,
)
from gnnlm.strategies.config import MetaConfig
from gnnlm.strategies.meta import Episode
from gnnlm.tasks.episodes import sample_relation_episode
from gnnlm.tasks.fused import (
    FusedTrainingConfig,
    build_fused_lm,
    check_fused_model,
    freeze_bottom_layers,  # noqa: F401 (re-exported)
    fused_parameter_groups,
    node_feature_table,
    seeded_linear,
)
from gnnlm.train.config import EvaluationConfig, RunConfig, check_dataset
from gnnlm.train.task import StepOutput, Task

#: ways to draw negatives (see TripleClassificationDataConfig.negatives).
NEGATIVES = ("matched", "neighbourhood", "uniform")
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
        head_inputs: what the head reads: ``text`` (the LM's pooled state) and/or ``graph`` (the GNN's
            final states of the linked entities). The head is the same ``Linear(hidden + node_channels,
            1)``, initialised from the seed alone, in every configuration: an input it does not read is
            zeros, so arms of an ablation differ in what reaches the head and nothing else.
        freeze_injection: hold every injection at zero: gates closed and the injection modules not
            trained, so text and graph meet only in the head (late fusion).
        gate_init: ``open`` (zero-initialised output projections behind open gates: the modes learn
            from the first step) or ``closed`` (zero gates, the earlier scheme); see
            :class:`~gnnlm.fusion.FusionConfig`.
        node_features: the GNN's input node states: ``learned`` (a random table), ``text`` (the LM's
            pooled encoding of each entity's name and description, computed once and cached) or
            ``kge`` (the entity table of the trained link-prediction run ``kge_run``), the last two
            projected to ``node_channels``.
        node_features_trainable: also train the text / KGE table (else only its projection).
        kge_run: a ``gnnlm train`` run directory (or ``save_pretrained`` folder) of a KGE model on the
            same dataset, for ``node_features: kge``.
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
    head_inputs: list[str] = field(default_factory=lambda: ["text", "graph"])
    freeze_injection: bool = False
    gate_init: str = "open"
    node_features: str = "learned"
    node_features_trainable: bool = False
    kge_run: str | None = None

    def __post_init__(self) -> None:
        if not self.head_inputs or set(self.head_inputs) - {"text", "graph"}:
            raise ValueError(
                f"model.head_inputs must be a non-empty list of text, graph; got {self.head_inputs!r}"
            )
        if self.node_features == "kge" and not self.kge_run:
            raise ValueError(
                "model.node_features: kge needs model.kge_run (a trained KGE run folder)"
            )


@dataclass
class TripleClassificationDataConfig(Config):
    """The examples (each split: that many positives plus one corruption each) and their inputs.

    Attributes:
        num_train: training positives drawn from the train split.
        num_valid: validation positives (0: no validation split; then ``evaluation.frequency: 0``).
        num_test: test positives (0: no test metrics).
        num_hops: subgraph radius; ``max_nodes`` its node budget.
        max_length: text length in tokens.
        negatives: how a positive is corrupted (the head or the tail replaced; never a known triple):
            ``matched`` (default: each negative's two ends are connected in its subgraph exactly when
            its positive's are, so the connectivity rule, and its inverse, score 0.5: the graph's
            shape alone says nothing about the label), ``neighbourhood`` (the new entity is drawn from
            the kept entity's ``num_hops`` neighbourhood: every negative is connected, while
            positives, whose own edge and twin are removed, often are not, so "disconnected means
            true" beats chance) or ``uniform`` (any entity; most negatives are disconnected, and the
            rule "are h and t connected?" scores about .80 on WN18RR).
    """

    num_train: int = checked(500, AT_LEAST_1, "500")
    num_valid: int = checked(250, AT_LEAST_0, "250, or 0 for no validation")
    num_test: int = checked(250, AT_LEAST_0, "250")
    num_hops: int = checked(2, AT_LEAST_0, "2")
    max_nodes: int = checked(32, AT_LEAST_1, "32")
    max_length: int = checked(32, AT_LEAST_1, "32")
    negatives: str = "matched"

    def __post_init__(self) -> None:
        if self.negatives not in NEGATIVES:
            raise ValueError(
                f"data.negatives must be one of {', '.join(NEGATIVES)}, got {self.negatives!r}"
            )


@dataclass
class TripleClassificationTrainingConfig(FusedTrainingConfig):
    """:class:`~gnnlm.tasks.fused.FusedTrainingConfig` (AdamW; the LM slower and the gates faster
    than the GNN, fusion modules and head) at ``lr: 3.0e-3``."""

    lr: float = checked(3e-3, POSITIVE, "0.003")


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
    """``(h, r, t)`` -> ``"<h> ; <r> ; <t>"`` with mentions of ``h`` and ``t``; the triple and its
    symmetric twin ``(t, r, h)`` are excluded from its subgraph (with their inverse edges), so neither
    a training positive nor a symmetric relation (about a third of WN18RR's test positives have their
    twin in train) can be read off the subgraph."""
    from gnnlm.fusion import TextGraphExample

    h, r, t = (int(x) for x in triple)
    head, rel, tail = entity[h], relation[r], entity[t]
    text = f"{head} ; {rel} ; {tail}"
    tail_start = len(head) + len(rel) + 6
    mentions = [(0, len(head), h), (tail_start, tail_start + len(tail), t)]
    exclude = torch.tensor([[h, r, t], [t, r, h]], dtype=torch.long)
    return TextGraphExample(text, mentions, exclude=exclude, label=label)


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


def neighbourhood_corrupt(
    positives: Tensor,
    known: set[tuple[int, int, int]],
    neighbours: Any,
    num_entities: int,
    rng: random.Random,
) -> Tensor:
    """One negative per positive whose two ends are connected: the tail (or head) replaced by an entity
    of ``neighbours(kept end)`` (its neighbourhood in the training graph), never a known triple; a
    uniform entity where the neighbourhood offers no unknown triple."""
    negatives = []
    for h, r, t in positives.tolist():
        tail_side = rng.random() < 0.5
        kept = h if tail_side else t
        pool = [e for e in neighbours(kept) if e not in (h, t)]
        rng.shuffle(pool)
        choice = next(
            (c for e in pool if (c := (h, r, e) if tail_side else (e, r, t)) not in known), None
        )
        negatives.append(choice or _draw_unknown(h, r, t, tail_side, known, num_entities, rng))
    return torch.tensor(negatives, dtype=torch.long).view(-1, 3)


def _draw_unknown(
    h: int, r: int, t: int, tail_side: bool, known: set, num_entities: int, rng: random.Random
) -> tuple[int, int, int]:
    """The tail (or head) replaced by uniform draws until the triple is unknown."""
    while True:
        e = rng.randrange(num_entities)
        candidate = (h, r, e) if tail_side else (e, r, t)
        if candidate not in known:
            return candidate


def matched_corrupt(
    positives: Tensor,
    known: set[tuple[int, int, int]],
    neighbours: Any,
    is_connected: Any,
    num_entities: int,
    rng: random.Random,
    *,
    tries: int = 40,
) -> tuple[Tensor, int]:
    """One negative per positive whose ends are connected (``is_connected(triple)``) exactly when the
    positive's are: candidates come from the kept entity's neighbourhood for a connected positive and
    uniformly otherwise, and the first unknown one with the positive's connectivity is taken.

    Returns:
        ``([n, 3] negatives, how many could not be matched within ``tries`` candidates)``; those take
        the first unknown candidate.
    """
    negatives, unmatched = [], 0
    for h, r, t in positives.tolist():
        target = is_connected((h, r, t))
        tail_side = rng.random() < 0.5
        kept = h if tail_side else t
        if target:
            pool = [e for e in neighbours(kept) if e not in (h, t)]
            rng.shuffle(pool)
            pool = pool[:tries] + [rng.randrange(num_entities) for _ in range(tries)]
        else:
            pool = [rng.randrange(num_entities) for _ in range(2 * tries)]
        first, choice = None, None
        for e in pool:
            candidate = (h, r, e) if tail_side else (e, r, t)
            if candidate in known or e == kept:
                continue
            first = first or candidate
            if is_connected(candidate) == target:
                choice = candidate
                break
        if first is None:  # a tiny graph: keep drawing until the triple is unknown
            first = _draw_unknown(h, r, t, tail_side, known, num_entities, rng)
        unmatched += choice is None
        negatives.append(choice or first)
    return torch.tensor(negatives, dtype=torch.long).view(-1, 3), unmatched


def build_examples(
    kg,
    num_positives: Mapping[str, int],
    *,
    seed: int = 0,
    negatives: str = "uniform",
    num_hops: int = 2,
    sampler: Any = None,
) -> dict[str, list]:
    """Balanced examples per split: ``num_positives[split]`` positives subsampled from the split plus
    one corruption each (``negatives``: ``uniform``, ``neighbourhood`` (within ``num_hops`` of the
    entity kept) or ``matched`` (connected in the subgraphs of ``sampler`` exactly when the positive
    is), see :class:`TripleClassificationDataConfig`), shuffled; splits are drawn in the mapping's
    order from one ``Random(seed)``.

    Raises:
        ConfigError: a split with positives asked for is empty, or the graph has no entity names.
    """
    rng = random.Random(seed)
    entity, relation = _names(kg)
    known = {tuple(x) for s in kg.splits for x in kg.splits[s].tolist()}
    neighbours = _neighbourhoods(kg, num_hops) if negatives != "uniform" else None
    if negatives == "matched" and sampler is None:
        raise ValueError(
            "negatives='matched' needs the subgraph sampler the examples are read with"
        )

    def is_connected(triple: tuple[int, int, int]) -> bool:
        h, r, t = triple
        exclude = torch.tensor([[h, r, t], [t, r, h]])
        return connected(sampler.sample([h, t], exclude=exclude))

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
        if negatives == "uniform":
            corrupted = corrupt(positives, known, kg.num_entities, rng)
        elif negatives == "neighbourhood":
            corrupted = neighbourhood_corrupt(positives, known, neighbours, kg.num_entities, rng)
        else:
            corrupted, _ = matched_corrupt(
                positives, known, neighbours, is_connected, kg.num_entities, rng
            )
        examples = [make_example(x, 1.0, entity, relation) for x in positives]
        examples += [make_example(x, 0.0, entity, relation) for x in corrupted]
        rng.shuffle(examples)
        out[split] = examples
    return out


def _neighbourhoods(kg, num_hops: int):
    """``neighbours(e) -> sorted list``: the entities within ``max(num_hops, 1)`` hops of ``e`` in the
    training graph (both directions), computed on demand and cached."""
    from gnnlm.data.subgraph import SubgraphSampler

    sampler = SubgraphSampler(
        kg.homogeneous(add_inverse=True), num_hops=max(num_hops, 1), max_nodes=10**9,
        allocation="joint",
    )  # fmt: skip
    cache: dict[int, list[int]] = {}

    def neighbours(e: int) -> list[int]:
        if e not in cache:
            cache[e] = sorted(sampler.node_set(torch.tensor([e])).tolist()[1:])
        return cache[e]

    return neighbours


def connected(data) -> bool:
    """Whether local nodes 0 and 1 (an example's head and tail) are connected in the subgraph ``data``
    (the connectivity rule, a baseline with no parameters); a head equal to the tail counts as
    connected."""
    if data.num_seeds < 2:
        return True
    reached = {0}
    frontier = {0}
    src, dst = data.edge_index.tolist() if data.edge_index.numel() else ([], [])
    adjacency: dict[int, list[int]] = {}
    for a, b in zip(src, dst):
        adjacency.setdefault(a, []).append(b)
        adjacency.setdefault(b, []).append(a)
    while frontier:
        frontier = {n for v in frontier for n in adjacency.get(v, ()) if n not in reached}
        reached |= frontier
        if 1 in reached:
            return True
    return False


# -- model -------------------------------------------------------------------------------------------
class TripleClassifier(nn.Module):
    """A fused LM with a linear head: ``logit = w^T [pooled_text; pooled_linked_nodes] + b``.

    As in GreaseLM / QA-GNN, the head reads the text and the final states of the linked entities
    (:attr:`~gnnlm.fusion.FusionOutput.graph_pooled_output`). The head has the same shape in every
    configuration; an input left out of ``head_inputs`` (or a graph part without a GNN) is zeros.

    Args:
        fused: the fused LM.
        head_inputs: ``("text", "graph")`` or one of them.
        seed: the head's initialisation depends on this seed only (not on what was built before it),
            so every arm of a comparison starts from the same head.
    """

    def __init__(
        self, fused, head_inputs: Iterable[str] = ("text", "graph"), seed: int = 0
    ) -> None:
        super().__init__()
        self.fused = fused
        self.head_inputs = tuple(head_inputs)
        self.node_channels = fused.config.node_channels
        self.head = seeded_linear(fused.lm.hidden_size + self.node_channels, 1, seed)

    def forward(self, batch) -> tuple[Tensor, Tensor | None]:
        """``(logits [batch], loss)``; the loss (``None`` without labels) adds the dual tower's
        contrastive loss and the modes' (already weighted) regularisation loss when present."""
        out = self.fused(batch)
        text = out.pooled_output  # [batch, hidden]
        graph = out.graph_pooled_output  # [batch, node_channels] or None
        if "text" not in self.head_inputs:
            text = torch.zeros_like(text)
        if graph is None or "graph" not in self.head_inputs:
            graph = text.new_zeros(text.size(0), self.node_channels)
        logits = self.head(torch.cat([text, graph], -1)).squeeze(-1)
        if batch.labels is None:
            return logits, None
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels.float())
        if out.contrastive_loss is not None:
            loss = loss + CONTRASTIVE_WEIGHT * out.contrastive_loss
        if out.regularization_loss is not None:  # e.g. adaptive gates' sparsity / target openness
            loss = loss + out.regularization_loss
        return logits, loss


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
        self._rule: dict[str, float] = {}
        self._node_table: Tensor | None = None

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The text length against the LM's positions, the injection modes and their options, the
        encoder, and the dataset (when the task loads it): all before any data is read."""
        c = self.config
        check_fused_model(c, c.data.max_length)
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
        sampler = SubgraphSampler(
            kg.homogeneous(add_inverse=True), num_hops=d.num_hops, max_nodes=d.max_nodes,
            inverse_offset=kg.num_relations, seed=c.seed,
        )  # fmt: skip
        self.examples = build_examples(
            kg, sizes, seed=c.seed, negatives=d.negatives, num_hops=d.num_hops, sampler=sampler
        )
        self.collate = TextGraphCollator(
            load_tokenizer(c.model.lm), sampler, max_length=d.max_length,
            max_positions=text_positions(load_lm_config(c.model.lm)),
        )  # fmt: skip

    def build_model(self) -> TripleClassifier:
        """The fused LM of ``model:`` (:func:`~gnnlm.tasks.fused.build_fused_lm`) and the head."""
        c, m = self.config, self.config.model
        fused = build_fused_lm(m, self.kg, seed=c.seed, node_features=self.node_feature_table())
        return TripleClassifier(fused, m.head_inputs, seed=c.seed)

    def node_feature_table(self) -> Tensor | None:
        """The ``[num_entities, d]`` table of ``node_features: text | kge`` (``None`` for learned),
        computed once per task."""
        if self._node_table is None:
            self._node_table = node_feature_table(self.config.model, self.kg)
        return self._node_table

    def parameter_groups(self, model: TripleClassifier) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn``, ``fusion``, ``gates`` (every :class:`~gnnlm.fusion.TanhGate`) and ``head``."""
        return {**fused_parameter_groups(model.fused), "head": list(model.head.parameters())}

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.examples["train"])

    def training_step(
        self, model: TripleClassifier, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """The loss of the training examples ``indices`` (dropout draws from torch's global generator,
        which the engine's checkpoints save)."""
        from gnnlm.fusion.gate_stats import injection_logs, knowledge_gate_stats, record_outputs

        examples = self.examples["train"]
        batch = self._batch(model, [examples[i] for i in indices.tolist()])
        with record_outputs(model.fused) as outputs:  # the adaptive gates, for the logs
            logits, loss = model(batch)
        accuracy = ((logits.detach() > 0).float() == batch.labels).float().mean()
        logs = {"accuracy": float(accuracy)}
        # adaptive injection: knowledge_gate_<layer> (mean over real tokens), knowledge_open_<layer>
        logs.update(knowledge_gate_stats(outputs, batch.attention_mask).logs())
        if outputs and outputs[-1].regularization_loss is not None:
            logs["regularization"] = float(outputs[-1].regularization_loss.detach())
        logs.update(injection_logs(model.fused))  # the gates' path over training, for a plot
        return StepOutput(loss, logs)

    def sample_episode(self, generator: torch.Generator, settings: MetaConfig) -> Episode:
        """A meta-learning episode: one relation's training examples, ``settings.shots`` true and as
        many false ones in the support set, ``settings.queries`` of each in the query set
        (:func:`~gnnlm.tasks.episodes.sample_relation_episode`; 2 ways: true / false)."""
        if settings.ways != 2:
            raise ConfigError(
                f"{self.config.at('finetuning.meta.ways')}finetuning.meta.ways must be 2 for triple "
                f"classification (true / false), got {settings.ways}"
            )
        return sample_relation_episode(
            self.examples["train"], generator, shots=settings.shots, queries=settings.queries,
            at=self.config.at("finetuning.meta"),
        )  # fmt: skip

    def _batch(self, model: nn.Module, examples: list):
        device = next(model.parameters()).device
        batch = self.collate(examples)
        return batch.to(device) if device.type != "cpu" else batch

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return len(self.examples.get(split, ())) > 0

    def evaluate(self, model: TripleClassifier, split: str) -> dict[str, Any]:
        """Accuracy (logit > 0 means true), mean BCE loss and the number of examples on ``split``, the
        injection gates (``{mode: [per fused layer]}``) and, with adaptive injection, its gates over the
        split's real tokens: ``knowledge_gates`` (mean per fused layer) and ``knowledge_open`` (share
        above 0.5 per fused layer)."""
        from gnnlm.fusion.gate_stats import KnowledgeGateStats, record_outputs

        examples = self.examples[split]
        size = self.config.evaluation.batch_size
        correct, loss, outcomes = 0, 0.0, []
        knowledge = KnowledgeGateStats()
        for i in range(0, len(examples), size):
            batch = self._batch(model, examples[i : i + size])
            with record_outputs(model.fused) as outputs:
                logits, _ = model(batch)
            knowledge.update(outputs[-1].knowledge_gates, batch.attention_mask)
            labels = batch.labels.float()
            right = (logits > 0).float() == labels
            outcomes += right.int().tolist()
            correct += int(right.sum())
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
        adaptive = (
            {"knowledge_gates": knowledge.means(), "knowledge_open": knowledge.open_shares()}
            if knowledge
            else {}
        )
        return {
            "accuracy": correct / n,
            "loss": loss / n,
            "num_examples": n,
            "connectivity_rule_accuracy": self.connectivity_rule_accuracy(split),
            "gates": gates,
            **adaptive,
            "correct": outcomes,  # per example, in order: paired comparisons between runs
        }

    def connectivity_rule_accuracy(self, split: str) -> float:
        """Accuracy of the rule with no parameters "true iff head and tail are connected in the
        example's subgraph" (the same subgraphs the model reads), on ``split``."""
        cached = self._rule.get(split)
        if cached is None:
            sampler, examples = self.collate.sampler, self.examples[split]
            hits = 0
            for example in examples:
                seeds = [entity for _, _, entity in example.mentions]
                guess = connected(sampler.sample(seeds, exclude=example.exclude))
                hits += guess == (example.label == 1.0)
            cached = self._rule[split] = hits / len(examples)
        return cached

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
