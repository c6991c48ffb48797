"""KG completion as generation: "complete the triple" ``(head, relation, ?)`` by writing the tail's name.

``task: gnnlm.tasks.generative_qa.completion:TripleCompletionTask`` (by dotted path: the registry's
names are the lead's). Any KG with entity names works (``dataset: fb15k237``, a ``tsv:`` folder). A query
becomes the prompt ``"{head} {relation} :"`` (``data.template``) and its target the tail's name; the
arms are those of :mod:`gnnlm.tasks.generative_qa.task` (``model.style``: ``text``, ``triples``,
``prompt``, ``inject``) over the head's subgraph of the *training* graph, always **without the queried
triple** (its edge and the inverse edge are excluded from the subgraph, and so from the verbalised
triples: a training query cannot be answered by copying itself).

Training: the training triples (``data.max_train`` of them, drawn with ``data.split_seed``). Evaluation:
greedy generation constrained to the KG's entity names; ``hits@1`` counts a generated name that is *any*
known tail of ``(head, relation)`` in any split (the filtered setting of link prediction), ``correct``
per query, ``loss`` (teacher-forced on the true tail), ``not_a_name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, Config, checked
from gnnlm.tasks.generative_qa.config import (
    GenerativeQAEvaluationConfig,
    GenerativeQAModelConfig,
    GenerativeQATrainingConfig,
)
from gnnlm.tasks.generative_qa.task import GenerativeQATask
from gnnlm.tasks.metaqa.data import sample_in_order
from gnnlm.train.config import RunConfig
from gnnlm.train.task import StepOutput


@dataclass
class CompletionDataConfig(Config):
    """Queries, subgraphs and prompts of triple completion.

    Attributes:
        num_hops, max_nodes: the head's subgraph (of the training graph).
        max_length, triple_budget, max_answer_length: as in
            :class:`~gnnlm.tasks.generative_qa.config.GenerativeQADataConfig`.
        template: the query's prompt, with ``{head}`` and ``{relation}`` (underscores and slashes of
            relation names become spaces).
        constrain: ``kg`` (the KG's entity names) or ``none``.
        max_train, max_valid, max_test: use only ``n`` triples of a split (0: all), drawn with
            ``split_seed`` in file order.
    """

    num_hops: int = checked(1, AT_LEAST_1, "1")
    max_nodes: int = checked(32, AT_LEAST_1, "32")
    max_length: int = checked(96, AT_LEAST_1, "96")
    triple_budget: int = checked(64, AT_LEAST_0, "64")
    max_answer_length: int = checked(16, AT_LEAST_1, "16")
    template: str = "{head} {relation} :"
    constrain: str = "kg"
    max_train: int = checked(0, AT_LEAST_0, "0 for all")
    max_valid: int = checked(0, AT_LEAST_0, "0 for all")
    max_test: int = checked(0, AT_LEAST_0, "0 for all")
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.constrain not in ("kg", "none"):
            raise ValueError(f"data.constrain must be kg or none, got {self.constrain!r}")
        if "{head}" not in self.template or "{relation}" not in self.template:
            raise ValueError(
                f"data.template needs {{head}} and {{relation}}, got {self.template!r}"
            )


@dataclass
class TripleCompletionConfig(RunConfig):
    """A triple-completion run (see the module docstring)."""

    task: str = "gnnlm.tasks.generative_qa.completion:TripleCompletionTask"
    dataset: str = "fb15k237"
    model: GenerativeQAModelConfig = field(default_factory=GenerativeQAModelConfig)
    data: CompletionDataConfig = field(default_factory=CompletionDataConfig)
    training: GenerativeQATrainingConfig = field(default_factory=GenerativeQATrainingConfig)
    evaluation: GenerativeQAEvaluationConfig = field(default_factory=GenerativeQAEvaluationConfig)


class TripleCompletionTask(GenerativeQATask):
    """Complete ``(head, relation, ?)`` by generating the tail's name (see the module docstring).

    Reuses :class:`~gnnlm.tasks.generative_qa.GenerativeQATask`'s model, parameter groups, name trie
    and generation; replaces its data (triples instead of MetaQA questions).
    """

    name = "triple_completion"
    config_class = TripleCompletionConfig
    config: TripleCompletionConfig

    def validate(self) -> None:
        from gnnlm.train.config import check_dataset

        if self.kg is None:
            check_dataset(self.config)

    def setup(self) -> None:
        """The KG, the query triples per split, every known tail per ``(head, relation)``, the
        sampler over the training graph and the collators."""
        from gnnlm.fusion import DecoderCollator
        from gnnlm.lm import load_causal_tokenizer
        from gnnlm.tasks.metaqa.task import memo_sampler

        c, d = self.config, self.config.data
        if getattr(self, "_setup_key", None) == repr(d):
            return
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        kg = self.kg
        self.sampler = memo_sampler(
            kg.homogeneous("train", add_inverse=True), num_hops=d.num_hops,
            max_nodes=d.max_nodes, inverse_offset=kg.num_relations, seed=d.split_seed,
        )  # fmt: skip
        limits = {"train": d.max_train, "valid": d.max_valid, "test": d.max_test}
        self.triples: dict[str, list[tuple[int, int, int]]] = {}
        self.known: dict[tuple[int, int], set[int]] = {}
        for split, triples in kg.splits.items():
            rows = [tuple(t) for t in triples.tolist()]
            for h, r, t in rows:
                self.known.setdefault((h, r), set()).add(t)
            if split in limits:
                self.triples[split] = sample_in_order(rows, limits[split], d.split_seed)
        self.counts = {s: {"num_triples": len(v)} for s, v in self.triples.items()}
        self.tokenizer = load_causal_tokenizer(c.model.lm)
        options = dict(max_length=d.max_length, max_target_length=d.max_answer_length)
        self.collate = DecoderCollator(self.tokenizer, self.sampler, **options)
        self.prompt_collate = DecoderCollator(
            self.tokenizer, self.sampler, padding_side="left", **options
        )
        self._setup_key = repr(d)

    # -- prompts -----------------------------------------------------------------------------------
    def relation_text(self, r: int) -> str:
        name = self.kg.relations.name(r)
        return " ".join(name.replace("/", " ").replace("_", " ").split())

    def context(self, triple: tuple[int, int, int]) -> str:
        """The head's subgraph without the queried triple, verbalised within the budget."""
        from gnnlm.fusion.verbalize import subgraph_triples, verbalize_triples

        kg = self.kg
        graph = self.sampler.sample([triple[0]], torch.tensor([triple]))
        rows = subgraph_triples(graph, inverse_offset=kg.num_relations).tolist()
        named = [
            (kg.entity_label(h), self.relation_text(r), kg.entity_label(t)) for h, r, t in rows
        ]
        text, _ = verbalize_triples(named, self._count_tokens, self.config.data.triple_budget)
        return text

    def example(self, triple: tuple[int, int, int], with_target: bool = False):  # type: ignore[override]
        """The decoder example of a query: prompt (context first for ``triples``), the head's
        mention, the queried triple excluded from the subgraph, and the tail's name as target."""
        from gnnlm.fusion import DecoderExample

        h, r, t = triple
        head = self.kg.entity_label(h)
        prefix = ""
        if self.config.model.style == "triples":
            prefix = self.context(triple)
            prefix = prefix + " " if prefix else ""
        template = self.config.data.template
        before, _, after = template.partition("{head}")
        text = prefix + before + head + after.format(relation=self.relation_text(r))
        start = len(prefix) + len(before)
        return DecoderExample(
            text, [(start, start + len(head), h)], exclude=torch.tensor([triple]),
            target=" " + self.kg.entity_label(t) if with_target else None,
        )  # fmt: skip

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.triples["train"])

    def has_split(self, split: str) -> bool:
        return len(self.triples.get(split, ())) > 0

    def training_step(self, model: nn.Module, indices: Tensor, generator: torch.Generator):
        """Mean cross-entropy of the true tails' names."""
        examples = [self.example(self.triples["train"][i], True) for i in indices.tolist()]
        out = model(self._to_device(self.collate(examples), model), logits="loss")
        return StepOutput(out.loss)

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, split: str) -> dict[str, Any]:
        """Filtered hits@1 of the generated tails, the loss, per-query ``correct``, ``not_a_name``."""
        from gnnlm.generation import generate

        queries = self.triples[split]
        size = self.config.evaluation.batch_size
        correct, loss, not_a_name = [], 0.0, 0
        for start in range(0, len(queries), size):
            chunk = queries[start : start + size]
            batch = self._to_device(self.prompt_collate([self.example(q) for q in chunk]), model)
            generations = generate(
                model, batch, eos_id=self.tokenizer.eos_token_id, tokenizer=self.tokenizer,
                max_new_tokens=self.config.data.max_answer_length + 1, trie=self.tries(chunk),
            )  # fmt: skip
            for (h, r, _), g in zip(chunk, generations):
                tails = {self.kg.entity_label(t) for t in self.known[(h, r)]}
                if self.config.data.constrain == "kg":
                    correct.append(int(bool(tails & set(g.names))))
                    not_a_name += not g.names
                else:
                    correct.append(
                        int((g.text or "").strip().lower() in {x.lower() for x in tails})
                    )
            targets = self.collate([self.example(q, True) for q in chunk])
            loss += float(
                model(self._to_device(targets, model), logits="loss").loss.detach()
            ) * len(chunk)
        n = max(len(queries), 1)
        return {
            "hits@1": sum(correct) / n, "loss": loss / n, "num_examples": len(queries),
            "not_a_name": not_a_name, "counts": self.counts[split], "correct": correct,
        }  # fmt: skip

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        return {"num_train_examples": self.num_train_examples()}

    def predict(self, model, records, *, top_k: int = 1):  # type: ignore[override]
        """``{"head": name, "relation": name}`` -> the generated tail (``{"head", "relation",
        "answer", "names"}``)."""
        from gnnlm.config import ConfigError

        ids = {self.kg.entity_label(i): i for i in range(self.kg.num_entities)}
        relations = {self.kg.relations.name(r): r for r in range(self.kg.num_relations)}
        queries = []
        for number, record in enumerate(records, 1):
            h, r = record.get("head"), record.get("relation")
            if h not in ids or r not in relations:
                raise ConfigError(f"record {number}: unknown head {h!r} or relation {r!r}")
            queries.append((ids[h], relations[r], ids[h]))  # the tail is unknown: nothing excluded
        from gnnlm.generation import generate

        batch = self._to_device(self.prompt_collate([self.example(q) for q in queries]), model)
        out = generate(
            model, batch, eos_id=self.tokenizer.eos_token_id, tokenizer=self.tokenizer,
            max_new_tokens=self.config.data.max_answer_length + 1, trie=self.tries(queries),
        )  # fmt: skip
        return [
            {"head": r["head"], "relation": r["relation"], "answer": g.text, "names": g.names}
            for r, g in zip(records, out)
        ]


__all__ = ["CompletionDataConfig", "TripleCompletionConfig", "TripleCompletionTask"]
