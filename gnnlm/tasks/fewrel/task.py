"""Few-shot relation classification on FewRel-format data (``task: fewrel``).

The file's relations split into disjoint meta-train and meta-test relations (:mod:`.config`). Training
reads meta-train instances: a batch is an episode of the relations it holds, each instance a query
against the prototypes of the others (:func:`~gnnlm.tasks.fewrel.model.leave_one_out_logits`); with
``finetuning.meta`` (Reptile, first-order MAML) the engine instead draws N-way K-shot episodes of
meta-train relations from :meth:`FewRelTask.sample_episode` and adapts on their support sets. Evaluation
classifies the queries of a fixed set of N-way K-shot episodes of meta-test relations per setting
(``evaluation.settings``), drawn from ``evaluation.episode_seed`` alone, so every arm and seed is judged
on the same episodes; the encoder is not adapted at test time (prototypes only).

The encoder is a fused LM over entity-marked sentences (:mod:`.markers`, :mod:`.model`); its KG arm
links head and tail to FB15k-237 through their Wikidata ids (:mod:`.linking`) and injects each linked
entity's GNN state into its marked mention (``model.injection: [entity]``).

``metrics.json``, split ``test``: ``accuracy`` (mean over settings of the mean episode accuracy),
``loss`` (mean query cross-entropy), per setting ``accuracy_<N>w<K>s`` and ``ci95_<N>w<K>s`` (half-width
of the normal 95% interval over episodes), ``episode_accuracy`` (per setting, per episode, in episode
order: paired comparisons), ``num_instances`` encoded, ``truncated`` (markers past ``max_length``) and
``links``; at the top level the file's ``counts``, the ``split`` and the ``links`` of both splits.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.fewrel.config import FewRelConfig, setting_name
from gnnlm.tasks.fewrel.episodes import (
    FewShotEpisode,
    fixed_episodes,
    group_by_relation,
    sample_episode,
)
from gnnlm.tasks.fewrel.linking import Link, link_counts, link_instances, wikidata_index
from gnnlm.tasks.fewrel.markers import FewRelBatch
from gnnlm.tasks.fewrel.model import ProtoEncoder, episode_logits, leave_one_out_logits
from gnnlm.tasks.fewrel.reader import Instance, read_fewrel
from gnnlm.tasks.fused import build_fused_lm, check_fused_model, fused_parameter_groups
from gnnlm.train.task import StepOutput, Task

SPLITS = ("train", "test")


def split_relations(
    relations: Sequence[str], num_test: int, seed: int
) -> tuple[list[str], list[str]]:
    """``(meta-train, meta-test)`` relations, each sorted: the sorted ids permuted by a generator seeded
    with ``seed``, the first ``num_test`` for meta-test."""
    ordered = sorted(relations)
    if not 0 < num_test < len(ordered):
        raise ValueError(
            f"data.num_test_relations={num_test} must leave meta-train relations among the "
            f"file's {len(ordered)}"
        )
    perm = torch.randperm(len(ordered), generator=torch.Generator().manual_seed(seed)).tolist()
    drawn = [ordered[i] for i in perm]
    return sorted(drawn[num_test:]), sorted(drawn[:num_test])


class FewRelTask(Task):
    """Few-shot relation classification with a prototypical network (see the module docstring).

    Args:
        config: the run.
        data: the :class:`~gnnlm.data.KnowledgeGraph` the entities link to, if already loaded (default:
            ``load_dataset(config.dataset)``); its entity names are Freebase ids.
    """

    name = "fewrel"
    config_class = FewRelConfig
    metrics = {"accuracy": "max", "loss": "min"}
    config: FewRelConfig

    def __init__(self, config: FewRelConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        self.instances: dict[str, list[Instance]] = {}
        self.labels: dict[str, Tensor] = {}
        self.links: dict[str, list[Link]] = {}
        self.groups: dict[str, dict[str, list[int]]] = {}
        self.episodes: dict[str, list[FewShotEpisode]] = {}
        self.counts: dict[str, Any] = {}
        self._node_table: Tensor | None = None

    @property
    def injects(self) -> bool:
        return bool(self.config.model.injection)

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The LM, injection modes and length; the files; the meta-learning episode sizes."""
        from gnnlm.train.config import check_dataset

        c, d = self.config, self.config.data
        check_fused_model(c, d.max_length)
        files = d.files()
        needed = {"fewrel": "data.path"}
        if self.injects:
            needed["kg_mapping"] = "data.kg_mapping"
        for what, key in needed.items():
            path = files[what]
            if path is None:
                raise ConfigError(f"{c.at(key)}{key} is not set and $GNNLM_DATA_DIR is not either")
            if not path.is_file():
                raise ConfigError(f"{c.at(key)}{key}: {path} does not exist")
        if bool(d.train_relations) != bool(d.test_relations):
            raise ConfigError(
                f"{c.at('data.test_relations')}data.train_relations and data.test_relations are "
                "listed together (or neither, for the split drawn with data.split_seed)"
            )
        shared = sorted(set(d.train_relations) & set(d.test_relations))
        if shared:
            raise ConfigError(
                f"{c.at('data.test_relations')}data.train_relations and data.test_relations must "
                f"be disjoint; both list {shared}"
            )
        meta = c.finetuning.meta
        if meta.method and min(meta.shots, meta.queries) < 2:
            raise ConfigError(
                f"{c.at('finetuning.meta')}finetuning.meta: the prototypical loss of a support or "
                "query set classifies each instance against the others of its relation, so "
                f"shots and queries must be >= 2 (got shots={meta.shots}, queries={meta.queries})"
            )
        if self.kg is None:
            check_dataset(c)

    def setup(self) -> None:
        """Read the file, split its relations, link the entities, draw the evaluation episodes and
        build the collator."""
        from gnnlm.data.subgraph import SubgraphSampler
        from gnnlm.fusion import text_positions
        from gnnlm.lm import load_lm_config, load_tokenizer
        from gnnlm.tasks.fewrel.markers import FewRelCollator

        c, d, e = self.config, self.config.data, self.config.evaluation
        files = d.files()
        fewrel = read_fewrel(files["fewrel"])
        train, test = self._split(list(fewrel.relations))
        caps = {"train": d.train_per_relation, "test": d.test_per_relation}
        for split, relations in (("train", train), ("test", test)):
            chosen = [x for r in relations for x in fewrel.relations[r][: caps[split] or None]]
            self.instances[split] = chosen
            self.groups[split] = group_by_relation([x.relation for x in chosen])
            index = {r: k for k, r in enumerate(relations)}
            self.labels[split] = torch.tensor([index[x.relation] for x in chosen])
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        kg = self.kg
        self.counts = {"file": fewrel.counts, "split": {"train": train, "test": test}}
        self.counts["instances"] = {s: len(v) for s, v in self.instances.items()}
        mapping = files["kg_mapping"]
        if mapping is not None and mapping.is_file():
            index, mapped = wikidata_index(mapping, kg.entities.names)
            self.counts["kg_mapping"] = mapped
            for split in SPLITS:
                self.links[split] = link_instances(self.instances[split], index)
            self.counts["links"] = {
                s: link_counts(self.instances[s], self.links[s]) for s in SPLITS
            }
        meta = c.finetuning.meta
        if meta.method and meta.ways > len(train):
            raise ConfigError(
                f"{c.at('finetuning.meta')}finetuning.meta.ways={meta.ways} is more than the "
                f"{len(train)} meta-train relations"
            )
        for ways, shots in e.settings:
            self.episodes[setting_name(ways, shots)] = fixed_episodes(
                self.groups["test"], ways=ways, shots=shots, queries=e.queries,
                count=e.episodes, seed=e.episode_seed, at=c.at("evaluation.settings"),
            )  # fmt: skip
        sampler = SubgraphSampler(
            kg.homogeneous(add_inverse=True), num_hops=d.num_hops, max_nodes=d.max_nodes,
            inverse_offset=kg.num_relations, seed=d.split_seed,
        )  # fmt: skip
        self.collate = FewRelCollator(
            load_tokenizer(c.model.lm), sampler, max_length=d.max_length,
            max_positions=text_positions(load_lm_config(c.model.lm)),
        )  # fmt: skip

    def _split(self, relations: list[str]) -> tuple[list[str], list[str]]:
        c, d = self.config, self.config.data
        if not d.train_relations:
            try:
                return split_relations(relations, d.num_test_relations, d.split_seed)
            except ValueError as err:
                raise ConfigError(f"{c.at('data.num_test_relations')}{err}") from None
        for key in ("train_relations", "test_relations"):
            missing = [r for r in getattr(d, key) if r not in relations]
            if missing:
                raise ConfigError(
                    f"{c.at(f'data.{key}')}data.{key}: {missing} not in "
                    f"{d.files()['fewrel']} (its relations: {', '.join(relations)})"
                )
        return list(d.train_relations), list(d.test_relations)

    def build_model(self) -> ProtoEncoder:
        """The fused LM of ``model:`` (:func:`~gnnlm.tasks.fused.build_fused_lm`) as a marker encoder."""
        from gnnlm.tasks.fused import node_feature_table

        c = self.config
        if self._node_table is None:
            self._node_table = node_feature_table(c.model, self.kg)
        fused = build_fused_lm(c.model, self.kg, seed=c.seed, node_features=self._node_table)
        return ProtoEncoder(fused, temperature=c.model.temperature)

    def parameter_groups(self, model: ProtoEncoder) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn``, ``fusion`` and ``gates`` (the model has no head)."""
        return fused_parameter_groups(model.fused)

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.instances["train"])

    def batch(self, model: nn.Module, split: str, indices: Sequence[int]) -> FewRelBatch:
        """The collated instances ``indices`` of ``split``, on the model's device; entities link only
        when the model injects."""
        instances = [self.instances[split][i] for i in indices]
        links = self.links.get(split)
        pairs = [links[i] if self.injects and links else (None, None) for i in indices]
        batch = self.collate(instances, pairs)
        device = next(model.parameters()).device
        return batch.to(device) if device.type != "cpu" else batch

    def training_step(
        self, model: ProtoEncoder, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """Cross-entropy of each instance against the leave-one-out prototypes of ``indices``."""
        embeddings = model(self.batch(model, "train", indices.tolist()))  # [n, 2 * hidden]
        logits, targets, _ = leave_one_out_logits(embeddings, self.labels["train"][indices])
        loss = nn.functional.cross_entropy(logits, targets)
        accuracy = (logits.detach().argmax(-1) == targets).float().mean()
        return StepOutput(loss, {"accuracy": float(accuracy)})

    def sample_episode(self, generator: torch.Generator, settings: Any):
        """An N-way K-shot episode of meta-train relations (``settings``: ``finetuning.meta``'s
        ``ways``, ``shots``, ``queries``) as a :class:`~gnnlm.strategies.meta.Episode`."""
        from gnnlm.strategies.meta import Episode

        episode = sample_episode(
            self.groups["train"], generator, ways=settings.ways, shots=settings.shots,
            queries=settings.queries, at=self.config.at("finetuning.meta"),
        )  # fmt: skip
        return Episode(support=episode.support, query=episode.query)

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return split == "test" and bool(self.episodes)

    def final_splits(self) -> tuple[str, ...]:
        return ("test",)

    def embed(self, model: ProtoEncoder, split: str, indices: Sequence[int]) -> tuple[Tensor, int]:
        """``([len(indices), 2 * hidden] embeddings, markers truncated)``, ``evaluation.batch_size``
        sentences at a time, in order of length (batches pad little), returned in ``indices`` order."""
        size, truncated = self.config.evaluation.batch_size, 0
        instances = self.instances[split]
        order = sorted(range(len(indices)), key=lambda k: len(instances[indices[k]].tokens))
        out = torch.empty(0)
        for i in range(0, len(order), size):
            rows = order[i : i + size]
            batch = self.batch(model, split, [indices[k] for k in rows])
            vectors = model(batch).float().cpu()  # [rows, 2 * hidden]
            if out.numel() == 0:
                out = vectors.new_empty(len(indices), vectors.size(-1))
            out[torch.tensor(rows)] = vectors
            truncated += int(batch.truncated.sum())
        return out, truncated

    def evaluate(self, model: ProtoEncoder, split: str) -> dict[str, Any]:
        """Episode accuracy per setting on the fixed episodes of ``split`` (see the module docstring);
        every instance the episodes use is encoded once."""
        needed = sorted(
            {
                int(i)
                for eps in self.episodes.values()
                for ep in eps
                for i in (*ep.support, *ep.query)
            }
        )
        embeddings, truncated = self.embed(model, split, needed)
        row = torch.full((len(self.instances[split]),), -1, dtype=torch.long)
        row[torch.tensor(needed)] = torch.arange(len(needed))
        metrics: dict[str, Any] = {}
        per_episode: dict[str, list[float]] = {}
        losses = []
        for name, episodes in self.episodes.items():
            accuracies = []
            for ep in episodes:
                ways = len(ep.relations)
                logits = episode_logits(
                    embeddings[row[ep.support]], ep.support_labels, embeddings[row[ep.query]], ways
                )  # [ways * queries, ways]
                accuracies.append(float((logits.argmax(-1) == ep.query_labels).float().mean()))
                losses.append(float(nn.functional.cross_entropy(logits, ep.query_labels).detach()))
            per_episode[name] = accuracies
            mean = statistics.fmean(accuracies)
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            metrics[f"accuracy_{name}"] = mean
            metrics[f"ci95_{name}"] = 1.96 * spread / math.sqrt(len(accuracies))
        metrics = {
            "accuracy": statistics.fmean(statistics.fmean(v) for v in per_episode.values()),
            "loss": statistics.fmean(losses),
            **metrics,
            "num_instances": len(needed),
            "truncated": truncated,
            "episodes": len(next(iter(self.episodes.values()))),
            "queries": self.config.evaluation.queries,
            "episode_accuracy": per_episode,  # per episode, in episode order: paired comparisons
        }
        if split in self.counts.get("links", {}):
            metrics["links"] = self.counts["links"][split]
        return metrics

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        return {
            **super().run_metrics(epochs=epochs, train_seconds=train_seconds),
            **self.counts,
        }


__all__ = ["FewRelTask", "split_relations"]
