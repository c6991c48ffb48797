"""Worked example: classify KG triples as true or false from entity names (text) plus the KG subgraph.

Each triple ``(h, r, t)`` becomes the text ``"<name h> ; <relation> ; <name t>"`` with mentions of ``h`` and
``t``, and the subgraph around ``{h, t}`` of the *training* graph with the triple's own edge removed (so a
training positive cannot be read off its subgraph; valid/test triples are not in the training graph).
Negatives corrupt the head or the tail with a uniformly drawn entity such that the result is in no split.
The same data, seed and LM initialisation are used for every variant (``lm`` = no injection,
``lm+graph``, ``lm+entity``, ...), so the accuracies compare injection modes and nothing else.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor, nn

from gnnlm.fusion import (
    FusedLM,
    FusionConfig,
    SubgraphSampler,
    TextGraphBatch,
    TextGraphCollator,
    TextGraphExample,
    injection_parameters,
    text_positions,
)
from gnnlm.lm import load_lm, load_lm_config, load_tokenizer
from gnnlm.utils.progress import progress

DEFAULT_VARIANTS = {"lm": [], "lm+graph": ["graph"], "lm+entity": ["entity"]}


@dataclass
class TripleClassificationConfig:
    """Settings of the triple-classification example (YAML keys of ``configs/tasks/*.yaml``).

    Attributes:
        dataset: any name :func:`gnnlm.data.load_dataset` accepts (needs entity names, e.g. ``wn18rr``,
            ``fb15k-237``, ``umls``).
        dataset_kwargs: options of the loader.
        seed: seed of sampling, initialisation and shuffling.
        lm: ``minilm`` (default) or ``tiny-bert`` etc.
        variants: name -> injection modes (``[]`` = the plain LM).
        injection_kwargs: per mode, as in :class:`~gnnlm.fusion.FusionConfig`.
        encoder: GNN spec; ``encoder_kwargs`` its options.
        node_channels: GNN width.
        num_fused_layers: fusion after the top ``K`` LM layers.
        num_hops: subgraph radius; ``max_nodes`` its node budget.
        num_train: training positives (as many negatives are added); ``num_test`` likewise on ``split``.
        split: evaluation split (``test`` or ``valid``).
        epochs, batch_size, max_length: training loop and text length.
        lm_lr: learning rate of the LM; ``fusion_lr`` of the GNN, fusion modules and head; ``gate_lr``
            of the zero-initialised gates (larger, so knowledge can enter within a short run).
        freeze_lm_layers: the bottom LM layers (and embeddings) kept frozen; they run without gradients.
        threads: torch intra-op threads.
    """

    dataset: str = "wn18rr"
    dataset_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    lm: str = "minilm"
    variants: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_VARIANTS))
    injection_kwargs: dict[str, dict] = field(default_factory=lambda: {"entity": {"source": "gnn"}})
    encoder: str = "compgcn"
    encoder_kwargs: dict = field(default_factory=lambda: {"batch_norm": False})
    node_channels: int = 64
    num_fused_layers: int = 2
    num_hops: int = 2
    max_nodes: int = 32
    num_train: int = 1000
    num_test: int = 250
    split: str = "test"
    epochs: int = 1
    batch_size: int = 32
    max_length: int = 32
    lm_lr: float = 5e-5
    fusion_lr: float = 3e-3
    gate_lr: float = 2e-2
    freeze_lm_layers: int = 4
    threads: int = 2

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "config") -> TripleClassificationConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TripleClassificationConfig:
        """Read settings from YAML strictly (no tags; errors name file, line and column)."""
        from gnnlm.utils.strict_yaml import load_yaml

        values = load_yaml(Path(path).read_text(encoding="utf-8"), str(path))[0] or {}
        if not isinstance(values, dict):
            raise ValueError(
                f"{path}: expected a mapping of settings, found {type(values).__name__}"
            )
        return cls.from_dict(values, source=str(path))


# -- data --------------------------------------------------------------------------------------------
def _names(kg) -> tuple[list[str], list[str]]:
    entity = [kg.entity_label(i) for i in range(kg.num_entities)]
    if kg.entity_text is None:
        raise ValueError(
            f"{kg.name}: triple classification needs entity names (entity_text is None)"
        )
    relation_text = kg.relation_text or [None] * kg.num_relations
    relation = [
        text or kg.relations.name(r).strip("/_").replace("_", " ").replace("/", " ")
        for r, text in enumerate(relation_text)
    ]
    return entity, relation


def make_example(
    triple: Tensor, label: float, entity: list[str], relation: list[str]
) -> TextGraphExample:
    """``(h, r, t)`` -> ``"<h> ; <r> ; <t>"`` with mentions of ``h`` and ``t`` and the triple excluded."""
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


def build_examples(kg, config: TripleClassificationConfig) -> tuple[list, list]:
    """Balanced train / evaluation examples (subsampled positives plus one corruption each)."""
    rng = random.Random(config.seed)
    entity, relation = _names(kg)
    known = {tuple(x) for s in kg.splits for x in kg.splits[s].tolist()}
    out = []
    for split, n in (("train", config.num_train), (config.split, config.num_test)):
        triples = kg.splits[split]
        if len(triples) == 0:
            raise ValueError(f"{kg.name}: split {split!r} is empty")
        index = rng.sample(range(len(triples)), min(n, len(triples)))
        positives = triples[index]
        negatives = corrupt(positives, known, kg.num_entities, rng)
        examples = [make_example(x, 1.0, entity, relation) for x in positives]
        examples += [make_example(x, 0.0, entity, relation) for x in negatives]
        rng.shuffle(examples)
        out.append(examples)
    return out[0], out[1]


# -- model -------------------------------------------------------------------------------------------
class TripleClassifier(nn.Module):
    """A fused LM with a linear head: ``logit = w^T [pooled_text; pooled_linked_nodes] + b``.

    As in GreaseLM / QA-GNN, the head reads the text and (with a GNN) the final states of the linked
    entities (:attr:`~gnnlm.fusion.FusionOutput.graph_pooled_output`); without a GNN, the text alone.
    """

    def __init__(self, fused: FusedLM) -> None:
        super().__init__()
        self.fused = fused
        graph = fused.config.node_channels if fused.encoder is not None else 0
        self.head = nn.Linear(fused.lm.hidden_size + graph, 1)

    def forward(self, batch: TextGraphBatch) -> tuple[Tensor, Tensor]:
        """``(logits [batch], loss)``; the loss adds the dual tower's contrastive loss when present."""
        out = self.fused(batch)
        features = out.pooled_output
        if out.graph_pooled_output is not None:
            features = torch.cat([features, out.graph_pooled_output], -1)  # [batch, hidden + nodes]
        logits = self.head(features).squeeze(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels.float())
        if out.contrastive_loss is not None:
            loss = loss + 0.1 * out.contrastive_loss
        return logits, loss


def _freeze_bottom(model: FusedLM, num_layers: int) -> None:
    lm = model.lm
    if num_layers <= 0:
        return
    lm.model.embeddings.requires_grad_(False)
    for i in range(min(num_layers, lm.num_layers)):
        lm.layers[i].requires_grad_(False)


def _batches(examples, size, rng=None):
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), size):
        yield [examples[j] for j in order[i : i + size]]


def run_variant(
    name: str,
    modes: list[str],
    kg,
    train: list,
    test: list,
    collate: TextGraphCollator,
    config: TripleClassificationConfig,
    *,
    quiet: bool = False,
) -> dict:
    """Train one variant and return its metrics."""
    torch.manual_seed(config.seed)
    lm = load_lm(
        config.lm, seed=config.seed, attn_implementation="eager" if "relation" in modes else None
    )
    fusion = FusionConfig(
        lm=config.lm,
        injection=list(modes),
        injection_kwargs={m: config.injection_kwargs.get(m, {}) for m in modes},
        num_fused_layers=config.num_fused_layers,
        encoder=config.encoder,
        encoder_kwargs=config.encoder_kwargs,
        node_channels=config.node_channels,
        num_entities=kg.num_entities,
        num_relations=2 * kg.num_relations,
    )
    model = TripleClassifier(FusedLM(fusion, lm=lm))
    _freeze_bottom(model.fused, config.freeze_lm_layers)
    groups = injection_parameters(model.fused)
    trainable = [
        {"params": [p for p in groups["lm"] if p.requires_grad], "lr": config.lm_lr},
        {
            "params": groups["gnn"] + groups["fusion"] + list(model.head.parameters()),
            "lr": config.fusion_lr,
        },
    ]
    optimizer = torch.optim.AdamW(trainable, weight_decay=0.01)
    rng = random.Random(config.seed)
    start, losses = time.perf_counter(), []
    steps = config.epochs * math.ceil(len(train) / config.batch_size)
    with progress(total=steps, desc=f"{name} train", disable=quiet, leave=False) as bar:
        for _ in range(config.epochs):
            model.train()
            for chunk in _batches(train, config.batch_size, rng):
                _, loss = model(collate(chunk))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.update()
                bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    train_time = time.perf_counter() - start
    start, correct = time.perf_counter(), 0
    model.eval()
    with torch.no_grad():
        for chunk in _batches(test, config.batch_size):
            batch = collate(chunk)
            logits, _ = model(batch)
            correct += int(((logits > 0).float() == batch.labels).sum())
    gates = {k: v.tolist() for k, v in model.fused(collate(test[:2])).injection_gates.items()}
    return {
        "injection": list(modes),
        "accuracy": correct / len(test),
        "train_loss_last": sum(losses[-20:]) / max(len(losses[-20:]), 1),
        "train_loss_first": sum(losses[:20]) / max(len(losses[:20]), 1),
        "train_steps": len(losses),
        "train_time_s": round(train_time, 2),
        "eval_time_s": round(time.perf_counter() - start, 2),
        "gates": gates,
    }


def run_triple_classification(
    config: TripleClassificationConfig,
    out_dir: str | os.PathLike,
    *,
    data_dir=None,
    quiet: bool = False,
) -> dict:
    """Run every variant on the same data; write ``results.json`` (and the config) to ``out_dir``."""
    from gnnlm.data import load_dataset
    from gnnlm.utils.strict_yaml import ConfigError

    # A max_length past the LM's positions would fail deep inside the model: refuse it first.
    positions = text_positions(load_lm_config(config.lm))
    if positions is not None and config.max_length > positions:
        raise ConfigError(
            f"max_length={config.max_length} is longer than the {positions} positions of "
            f"{config.lm!r}; use max_length <= {positions}"
        )
    torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kg = load_dataset(config.dataset, data_dir, **config.dataset_kwargs)
    train, test = build_examples(kg, config)
    sampler = SubgraphSampler(
        kg.homogeneous(add_inverse=True),
        num_hops=config.num_hops,
        max_nodes=config.max_nodes,
        inverse_offset=kg.num_relations,
        seed=config.seed,
    )
    collate = TextGraphCollator(
        load_tokenizer(config.lm),
        sampler,
        max_length=config.max_length,
        max_positions=positions,
    )
    results = {
        "task": "triple-classification",
        "dataset": config.dataset,
        "split": config.split,
        "num_train_examples": len(train),
        "num_eval_examples": len(test),
        "config": asdict(config),
        "variants": {},
    }
    for name, modes in config.variants.items():
        metrics = run_variant(name, modes, kg, train, test, collate, config, quiet=quiet)
        results["variants"][name] = metrics
        if not quiet:
            print(
                f"{name:>12}: accuracy {metrics['accuracy']:.4f} ({metrics['train_time_s']:.0f}s training)"
            )
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
