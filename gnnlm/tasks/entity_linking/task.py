"""``task: entity_linking``: link gold mentions of ELEVANT benchmarks to FB15k-237 entities.

Data (:mod:`~gnnlm.tasks.entity_linking.reader`): ELEVANT-format JSONL files (any
``*.benchmark.jsonl`` by name in ``data.root`` or by path). The KB is the KG of ``dataset``
(FB15k-237) with its Wikidata labels, aliases and descriptions (:mod:`~gnnlm.tasks.entity_linking.kb`);
a gold mention whose Wikidata id is not one of its entities is out of KB. The run **trains** on the
documents of ``data.train`` (OKE 2015 and 2016 train) minus a held-out share (``data.valid_fraction``,
fixed by ``data.split_seed``) that **validates**, plus ``data.generated`` documents made from the KB's
own names and descriptions (:mod:`~gnnlm.tasks.entity_linking.generated`), and **tests** on every file
of ``data.test``, one by one and together.

Pipeline: candidates from names and aliases (:mod:`~gnnlm.tasks.entity_linking.candidates`: exact,
stemmed, partial-name and fuzzy matches, ``data.k`` per mention), scored by the bi-encoder
(:mod:`~gnnlm.tasks.entity_linking.biencoder`; its LM fine-tuned, or frozen with ``model.frozen_lm``
and every mention encoded once and cached, as the shipped config does on CPU); the ``kg`` arm adds
the coherence re-ranker, a GNN over the document's candidate subgraph
(:mod:`~gnnlm.tasks.entity_linking.reranker`). Training
examples are chunks of up to ``data.mentions_per_example`` in-KB mentions of one document whose gold
entity is a candidate; the loss is the cross-entropy over each mention's candidates. The alias prior
counts the training mentions; a training mention's own prior feature leaves itself out.

Metrics (:mod:`~gnnlm.tasks.entity_linking.metrics`): ``accuracy`` (in-KB), ``precision``,
``recall``, ``f1``, ``in_kb_share`` over the split and per test file (``accuracy_kore50``, ...); the
same for the alias-prior baseline (``prior_accuracy``, ...: the first candidate, no parameters);
``loss``; ``num_examples`` (in-KB mentions); ``correct`` and ``prior_correct`` (per in-KB mention, in
file order, for paired bootstrap) and ``counts`` (per file: documents, mentions, with a Wikidata id,
NIL, no mapping, in KB, with candidates, candidate recall@1/4/k).

Comparison of arms (``configs/tasks/entity_linking.yaml``)::

    task: entity_linking
    model: {lm: minilm, arm: kg}
    variants:
      lm: {model.arm: lm}
      kg: {model.arm: kg}

Parameter groups: ``lm`` (the mention encoder's transformer) and ``head`` (the bi-encoder's maps,
scale and feature weights, and the re-ranker).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.entity_linking.batch import LinkingBatch, collate, context_window, frozen_text
from gnnlm.tasks.entity_linking.biencoder import BiEncoder, encode_texts, linking_loss
from gnnlm.tasks.entity_linking.candidates import (
    NUM_FEATURES,
    Candidate,
    CandidateGenerator,
    recall_at,
)
from gnnlm.tasks.entity_linking.config import EntityLinkingConfig
from gnnlm.tasks.entity_linking.doc_graph import DocumentGraph, document_graph
from gnnlm.tasks.entity_linking.generated import generate_documents
from gnnlm.tasks.entity_linking.kb import KnowledgeBase
from gnnlm.tasks.entity_linking.metrics import linking_metrics
from gnnlm.tasks.entity_linking.model import EntityLinker
from gnnlm.tasks.entity_linking.reader import SUFFIX, Document, read_benchmark
from gnnlm.tasks.entity_linking.reranker import CoherenceReranker
from gnnlm.train.config import check_dataset
from gnnlm.train.task import StepOutput, Task

SPLITS = ("train", "valid", "test")
#: the metrics reported per test file (and for the alias prior)
REPORTED = ("accuracy", "precision", "recall", "f1")


@dataclass
class LinkedMention:
    """A gold mention with its KB entity and candidates.

    Attributes:
        dataset: the file it came from (``kb`` for generated documents).
        doc: the index of its document in its split.
        start, end: its span.
        gold: its KB entity, ``None`` out of KB.
        kind: ``"qid"``, ``"nil"`` or ``"no_mapping"``.
        candidates: best first.
    """

    dataset: str
    doc: int
    start: int
    end: int
    gold: int | None
    kind: str
    candidates: list[Candidate]

    @property
    def gold_rank(self) -> int | None:
        """The gold entity's position among the candidates (``None``: not there)."""
        ids = [c.entity for c in self.candidates]
        return ids.index(self.gold) if self.gold is not None and self.gold in ids else None


class EntityLinkingTask(Task):
    """Entity linking to FB15k-237 (module docstring).

    Args:
        config: the run.
        data: the KG as a :class:`~gnnlm.data.KnowledgeGraph`, if already loaded.
    """

    name = "entity_linking"
    config_class = EntityLinkingConfig
    metrics = {"accuracy": "max", "f1": "max", "loss": "min"}
    config: EntityLinkingConfig

    def __init__(self, config: EntityLinkingConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        self.kb: KnowledgeBase | None = None
        self.generator: CandidateGenerator | None = None
        self.documents: dict[str, list[Document]] = {}
        self.mentions: dict[str, list[LinkedMention]] = {}
        #: per split, (document, mention indices) chunks the model scores
        self.examples: dict[str, list[tuple[int, list[int]]]] = {}
        self.counts: dict[str, dict[str, Any]] = {}
        self._graphs: dict[tuple[str, int], DocumentGraph] = {}
        self._table: Tensor | None = None
        #: per split, (row of each scored mention, [rows, hidden] frozen-LM encodings)
        self._mention_tables: dict[str, tuple[dict[int, int], Tensor]] = {}
        self._frozen_lm = None

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The LM loads its config and the text fits its positions; the dataset exists."""
        from gnnlm.fusion import text_positions
        from gnnlm.lm import load_lm_config

        c = self.config
        try:
            positions = text_positions(load_lm_config(c.model.lm))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{c.at('model.lm')}model.lm {c.model.lm!r}: {err}") from None
        for key in ("data.max_length", "model.entity_max_length"):
            value = c.data.max_length if key == "data.max_length" else c.model.entity_max_length
            if positions is not None and value > positions:
                raise ConfigError(
                    f"{c.at(key)}{key}={value} is longer than the {positions} positions of "
                    f"{c.model.lm!r}"
                )
        if not c.data.test:
            raise ConfigError(f"{c.at('data.test')}data.test: no test file")
        if self.kg is None:
            check_dataset(c)

    def benchmark_path(self, name: str) -> Path:
        """The file of a ``data.train`` / ``data.test`` entry: a path to a ``.jsonl`` file, or a name
        in ``data.root``.

        Raises:
            ConfigError: no such file (naming the folder searched).
        """
        c = self.config
        if name.endswith(".jsonl"):
            path = Path(name).expanduser()
        else:
            if c.data.root:
                root = Path(c.data.root).expanduser()
            elif os.environ.get("GNNLM_DATA_DIR"):
                root = Path(os.environ["GNNLM_DATA_DIR"]) / "entity-linking"
            else:
                raise ConfigError(
                    f"{c.at('data.root')}data.root: not set and no $GNNLM_DATA_DIR (the folder of "
                    "the *.benchmark.jsonl files)"
                )
            path = root / f"{name}{SUFFIX}"
        if not path.is_file():
            raise ConfigError(f"{c.at('data')}benchmark {name!r}: no file {path}")
        return path

    def wikidata_path(self) -> Path | None:
        """``data.wikidata``, else ``entity2wikidata.json`` in the KG's folder when there is one."""
        c = self.config
        if c.data.wikidata:
            return Path(c.data.wikidata).expanduser()
        try:
            from gnnlm.data.registry import get_dataset

            options = {k: v for k, v in c.dataset_kwargs.items() if k != "data_dir"}
            location = get_dataset(c.dataset, **options).locate(c.dataset_kwargs.get("data_dir"))
        except (ValueError, TypeError):
            return None
        if location is None:
            return None
        path = Path(location.path) / "entity2wikidata.json"
        return path if path.is_file() else None

    def setup(self) -> None:
        """Load the KB, read and split the files, generate KB documents, set the alias prior from
        the training mentions, generate every mention's candidates and count everything."""
        from gnnlm.lm import load_tokenizer

        c, d = self.config, self.config.data
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        self.kb = kb = KnowledgeBase.from_graph(self.kg, self.wikidata_path())
        self.generator = CandidateGenerator(kb, k=d.k, fuzzy_cutoff=d.fuzzy_cutoff)
        self.tokenizer = load_tokenizer(c.model.lm)
        file_counts: dict[str, dict[str, int]] = {}
        train_docs: list[tuple[str, Document]] = []
        for name in d.train:
            bench = read_benchmark(self.benchmark_path(name))
            file_counts[bench.name] = bench.counts
            train_docs += [(bench.name, doc) for doc in bench.documents]
        order = list(range(len(train_docs)))
        random.Random(d.split_seed).shuffle(order)
        n_valid = round(d.valid_fraction * len(order))
        valid_ids, train_ids = sorted(order[:n_valid]), sorted(order[n_valid:])
        if d.max_train_documents:
            train_ids = train_ids[: d.max_train_documents]
        splits: dict[str, list[tuple[str, Document]]] = {
            "train": [train_docs[i] for i in train_ids],
            "valid": [train_docs[i] for i in valid_ids],
            "test": [],
        }
        for name in d.test:
            bench = read_benchmark(self.benchmark_path(name))
            file_counts[bench.name] = bench.counts
            splits["test"] += [(bench.name, doc) for doc in bench.documents]
        generated, generated_counts = generate_documents(
            kb, self.generator, num_documents=d.generated, seed=d.split_seed
        )
        splits["train"] += [("kb", doc) for doc in generated]
        # the alias prior: the training mentions only (real and generated), never valid or test
        self.generator.set_prior(
            (doc.text[m.start : m.end], kb.entity_of(m.entity_id))
            for _, doc in splits["train"]
            for m in doc.mentions
            if kb.entity_of(m.entity_id) is not None
        )
        for split, docs in splits.items():
            self._link(split, docs)
        self.counts["files"] = file_counts
        self.counts["generated"] = generated_counts

    def _link(self, split: str, docs: list[tuple[str, Document]]) -> None:
        """Candidates of every gold mention of ``docs``, the examples of ``split`` and its counts."""
        kb, d = self.kb, self.config.data
        self.documents[split] = [doc for _, doc in docs]
        mentions: list[LinkedMention] = []
        examples: list[tuple[int, list[int]]] = []
        for i, (dataset, doc) in enumerate(docs):
            first = len(mentions)
            for m in doc.mentions:
                gold = kb.entity_of(m.entity_id)
                candidates = self.generator(doc.text[m.start : m.end])
                if split == "train" and gold is not None:
                    # leave-one-out prior: a training mention does not count towards its own
                    # prior feature, or the model learns to trust a prior that is always right
                    candidates = [
                        replace(c, prior=c.prior - 1) if c.entity == gold and c.prior else c
                        for c in candidates
                    ]
                mentions.append(LinkedMention(dataset, i, m.start, m.end, gold, m.kind, candidates))
            if split == "train":  # learnable: the gold entity is a candidate
                chosen = [
                    j for j in range(first, len(mentions)) if mentions[j].gold_rank is not None
                ]
            else:  # scored: in KB with a candidate (the rest are fixed misses)
                chosen = [
                    j for j in range(first, len(mentions))
                    if mentions[j].gold is not None and mentions[j].candidates
                ]  # fmt: skip
            size = d.mentions_per_example
            examples += [(i, chosen[s : s + size]) for s in range(0, len(chosen), size)]
        self.mentions[split], self.examples[split] = mentions, examples
        self.counts[split] = {
            name: self._count([m for m in mentions if m.dataset == name])
            for name in dict.fromkeys(m.dataset for m in mentions)
        }
        self.counts[split]["all"] = self._count(mentions)
        self.counts[split]["all"]["examples"] = len(examples)
        self.counts[split]["all"]["scored_mentions"] = sum(len(x) for _, x in examples)

    def _count(self, mentions: list[LinkedMention]) -> dict[str, Any]:
        in_kb = [m for m in mentions if m.gold is not None]
        recall = recall_at(
            [[c.entity for c in m.candidates] for m in in_kb], [m.gold for m in in_kb],
            (1, 4, self.config.data.k),
        )  # fmt: skip
        return {
            "mentions": len(mentions),
            "with_qid": sum(m.kind == "qid" for m in mentions),
            "nil": sum(m.kind == "nil" for m in mentions),
            "no_mapping": sum(m.kind == "no_mapping" for m in mentions),
            "in_kb": len(in_kb),
            "out_of_kb_qid": sum(m.kind == "qid" and m.gold is None for m in mentions),
            "in_kb_share": len(in_kb) / len(mentions) if mentions else None,
            "with_candidates": sum(bool(m.candidates) for m in mentions),
            "in_kb_with_candidates": sum(bool(m.candidates) for m in in_kb),
            **{f"recall@{k}": r for k, r in recall.items()},
        }

    # -- model -------------------------------------------------------------------------------------
    def entity_table(self) -> Tensor:
        """``[num_entities, hidden]`` the LM's encodings of the entities' ``"name: description"``
        (computed once, cached on disk by :func:`~gnnlm.fusion.node_features.text_node_features`)."""
        if self._table is None:
            from gnnlm.fusion.node_features import text_node_features

            m = self.config.model
            self._table = text_node_features(
                self.pretrained_lm(), self.kb.texts(), max_length=m.entity_max_length,
                quiet=True, tokenizer=self.tokenizer,
            )  # fmt: skip
        return self._table

    def pretrained_lm(self):
        """The LM as loaded (``seed`` 0 for tiny models), loaded once: the encoder of the cached
        entity and frozen mention tables, and of new text's mentions with ``frozen_lm``."""
        if self._frozen_lm is None:
            from gnnlm.lm import load_lm

            self._frozen_lm = load_lm(self.config.model.lm)
        return self._frozen_lm

    def build_model(self) -> EntityLinker:
        """The bi-encoder (its bottom LM layers frozen) and, for the ``kg`` arm, the re-ranker."""
        from gnnlm.lm import load_lm
        from gnnlm.tasks.fused import freeze_bottom_layers

        c, m = self.config, self.config.model
        table = self.entity_table()
        lm = None if m.frozen_lm else load_lm(m.lm, seed=c.seed)
        biencoder = BiEncoder(lm, table, num_features=NUM_FEATURES)
        if lm is not None:
            freeze_bottom_layers(biencoder, m.freeze_lm_layers)
        reranker = None
        if m.arm == "kg":
            reranker = CoherenceReranker(
                table.size(1), m.channels, 2 * self.kb.num_relations,
                num_features=NUM_FEATURES, encoder=m.encoder, num_layers=m.num_layers,
                encoder_kwargs=m.encoder_kwargs,
            )  # fmt: skip
        return EntityLinker(biencoder, reranker)

    def parameter_groups(self, model: EntityLinker) -> dict[str, list[nn.Parameter]]:
        """``lm`` (the transformer; empty with ``frozen_lm``) and ``head`` (everything else)."""
        lm = [] if model.biencoder.lm is None else list(model.biencoder.lm.parameters())
        ids = {id(p) for p in lm}
        return {"lm": lm, "head": [p for p in model.parameters() if id(p) not in ids]}

    # -- batches -----------------------------------------------------------------------------------
    def graph(self, split: str, doc: int) -> DocumentGraph:
        """The (memoised) graph of document ``doc`` of ``split``: all its mentions' candidates."""
        key = (split, doc)
        if key not in self._graphs:
            d = self.config.data
            cands = [m.candidates for m in self._doc_mentions(split, doc)]
            self._graphs[key] = document_graph(
                self.kb, cands, max_bridges=d.max_bridges, hub_degree=d.hub_degree
            )
        return self._graphs[key]

    def _doc_mentions(self, split: str, doc: int) -> list[LinkedMention]:
        if not hasattr(self, "_by_doc"):
            self._by_doc: dict[str, dict[int, list[LinkedMention]]] = {}
        if split not in self._by_doc:
            by_doc: dict[int, list[LinkedMention]] = {}
            for m in self.mentions[split]:
                by_doc.setdefault(m.doc, []).append(m)
            self._by_doc[split] = by_doc
        return self._by_doc[split].get(doc, [])

    def batch(
        self, split: str, examples: list[tuple[int, list[int]]], graphs: bool
    ) -> LinkingBatch:
        """The batch of ``examples`` of ``split`` (with their documents' graphs when ``graphs``)."""
        d = self.config.data
        docs = list(dict.fromkeys(doc for doc, _ in examples))
        position = {doc: i for i, doc in enumerate(docs)}
        items = []
        for doc, chosen in examples:
            text = self.documents[split][doc].text
            for j in chosen:
                m = self.mentions[split][j]
                items.append((
                    text[m.start : m.end], context_window(text, m.start, m.end, d.context_chars),
                    m.candidates, m.gold, position[doc],
                ))  # fmt: skip
        graph_list = [self.graph(split, doc) for doc in docs] if graphs else None
        states = None
        if self.config.model.frozen_lm:
            rows, table = self.mention_table(split)
            states = table[[rows[j] for _, chosen in examples for j in chosen]]  # [M, hidden]
        return collate(
            self.tokenizer, items, graph_list, k=d.k, max_length=d.max_length,
            mention_states=states,
        )  # fmt: skip

    def mention_table(self, split: str) -> tuple[dict[int, int], Tensor]:
        """``(row of each scored mention, [rows, hidden])``: the frozen LM's encodings of the
        scored mentions of ``split``, computed once and cached on disk
        (:func:`~gnnlm.fusion.node_features.text_node_features`)."""
        if split not in self._mention_tables:
            from gnnlm.fusion.node_features import text_node_features

            d = self.config.data
            scored = sorted({j for _, chosen in self.examples[split] for j in chosen})
            texts = []
            for j in scored:
                m = self.mentions[split][j]
                text = self.documents[split][m.doc].text
                context = context_window(text, m.start, m.end, d.context_chars)
                texts.append(frozen_text(text[m.start : m.end], context))
            table = text_node_features(
                self.pretrained_lm(), texts, max_length=d.max_length, quiet=True,
                tokenizer=self.tokenizer,
            )  # fmt: skip
            self._mention_tables[split] = ({j: i for i, j in enumerate(scored)}, table)
        return self._mention_tables[split]

    def _run(self, model: EntityLinker, split: str, examples: list[tuple[int, list[int]]]):
        batch = self.batch(split, examples, graphs=model.reranker is not None)
        device = next(model.parameters()).device
        if device.type != "cpu":
            batch = batch.to(device)
        return batch, model(batch)

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.examples["train"])

    def training_step(
        self, model: EntityLinker, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """Mean cross-entropy of the gold candidate over the mentions of the examples ``indices``."""
        chosen = [self.examples["train"][i] for i in indices.tolist()]
        batch, out = self._run(model, "train", chosen)
        loss = linking_loss(out.scores, batch.mask, batch.gold).mean()
        accuracy = (out.scores.detach().argmax(-1) == batch.gold).float().mean()
        return StepOutput(loss, {"accuracy": float(accuracy)})

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return len(self.mentions.get(split, ())) > 0

    def evaluate(self, model: EntityLinker, split: str) -> dict[str, Any]:
        """The metrics of the module docstring on every gold mention of ``split``."""
        mentions = self.mentions[split]
        predicted = [m.candidates[0].entity if m.candidates else None for m in mentions]
        prior = list(predicted)
        examples = self.examples[split]
        size = self.config.evaluation.batch_size
        loss, scored = 0.0, 0
        for start in range(0, len(examples), size):
            chunk = examples[start : start + size]
            batch, out = self._run(model, split, chunk)
            best = out.scores.argmax(-1).tolist()  # [M]
            flat = [j for _, chosen in chunk for j in chosen]
            for j, b in zip(flat, best):
                predicted[j] = mentions[j].candidates[b].entity
            has_gold = batch.gold >= 0
            if bool(has_gold.any()):
                losses = linking_loss(
                    out.scores[has_gold], batch.mask[has_gold], batch.gold[has_gold]
                )
                loss += float(losses.sum())
                scored += int(has_gold.sum())
        gold = [m.gold for m in mentions]
        metrics: dict[str, Any] = {}
        for prefix, pred in (("", predicted), ("prior_", prior)):
            overall = linking_metrics(gold, pred)
            for key in (*REPORTED, "in_kb_share"):
                metrics[prefix + key] = overall[key]
            datasets = list(dict.fromkeys(m.dataset for m in mentions))
            if split == "test":
                for name in datasets:
                    mine = [i for i, m in enumerate(mentions) if m.dataset == name]
                    per = linking_metrics([gold[i] for i in mine], [pred[i] for i in mine])
                    for key in REPORTED:
                        metrics[f"{prefix}{key}_{name}"] = per[key]
        metrics["loss"] = loss / max(scored, 1)
        metrics["num_examples"] = sum(g is not None for g in gold)
        in_kb = [i for i, g in enumerate(gold) if g is not None]
        # per in-KB mention, in file order: paired comparisons between runs and with the prior
        metrics["correct"] = [int(predicted[i] == gold[i]) for i in in_kb]
        metrics["prior_correct"] = [int(prior[i] == gold[i]) for i in in_kb]
        metrics["datasets"] = [mentions[i].dataset for i in in_kb] if split == "test" else None
        metrics["counts"] = self.counts[split]
        return metrics

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        n = sum(len(x) for _, x in self.examples["train"])
        return {
            "num_train_examples": self.num_train_examples(),
            "num_train_mentions": n,
            "mentions_per_second": n * epochs / train_seconds if train_seconds else None,
            "data_counts": {"files": self.counts["files"], "generated": self.counts["generated"],
                            "train": self.counts["train"]["all"]},
            "splits": "train: OKE train files minus valid_fraction of their documents, plus "
                      "KB-generated documents; valid: the held-out OKE train documents; test: "
                      "data.test files",
        }  # fmt: skip

    # -- inference ---------------------------------------------------------------------------------
    def link_text(self, model: EntityLinker, text: str) -> list[dict[str, Any]]:
        """Detect the mentions of ``text`` by alias matching (longest match first,
        :func:`~gnnlm.tasks.entity_linking.detection.detect_mentions`) and link each: ``[{"start",
        "end", "mention", "entity", "name", "qid", "score"}]`` (``score``: the softmax probability
        over the mention's candidates)."""
        from gnnlm.tasks.entity_linking.detection import detect_mentions

        spans = detect_mentions(text, self.generator)
        mentions = [
            LinkedMention("text", 0, s, e, None, "qid", self.generator(text[s:e])) for s, e in spans
        ]
        mentions = [m for m in mentions if m.candidates]
        if not mentions:
            return []
        d = self.config.data
        items = [
            (text[m.start : m.end], context_window(text, m.start, m.end, d.context_chars),
             m.candidates, None, 0)
            for m in mentions
        ]  # fmt: skip
        graphs = None
        if model.reranker is not None:
            graphs = [document_graph(self.kb, [m.candidates for m in mentions],
                                     max_bridges=d.max_bridges, hub_degree=d.hub_degree)]  # fmt: skip
        states = None
        if model.biencoder.lm is None:  # frozen LM: encode the mentions here, not cached
            texts = [frozen_text(mention, context) for mention, context, *_ in items]
            states = encode_texts(
                self.pretrained_lm(), self.tokenizer, texts, max_length=d.max_length
            )
        batch = collate(
            self.tokenizer, items, graphs, k=d.k, max_length=d.max_length, mention_states=states
        )
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                device = next(model.parameters()).device
                probs = torch.softmax(model(batch.to(device)).scores.float(), -1).cpu()
        finally:
            model.train(was_training)
        out = []
        for m, p in zip(mentions, probs):
            best = int(p.argmax())
            e = m.candidates[best].entity
            out.append({
                "start": m.start, "end": m.end, "mention": text[m.start : m.end], "entity":
                self.kb.identifiers[e], "name": self.kb.names[e], "qid": self.kb.qids[e],
                "score": float(p[best]),
            })  # fmt: skip
        return out

    def predict(
        self, model: EntityLinker, records: Iterable[Mapping[str, str]]
    ) -> list[dict[str, Any]]:
        """The links of each ``{"text": ...}`` record (:meth:`link_text`).

        Raises:
            ConfigError: a record without a string ``text`` (named by its number).
        """
        out = []
        for number, record in enumerate(records, 1):
            text = record.get("text") if isinstance(record, Mapping) else None
            if not isinstance(text, str):
                raise ConfigError(f"record {number}: no string 'text': {record!r}")
            out.append({"text": text, "links": self.link_text(model, text)})
        return out


__all__ = ["EntityLinkingTask", "LinkedMention"]
