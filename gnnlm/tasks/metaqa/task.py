"""``task: metaqa``: multi-hop KG question answering on MetaQA by ranking the nodes of the topic's
subgraph.

Each question (``what movies did [Temuera Morrison] act in``) becomes its text without brackets, the
topic mention's span linked to the topic entity, and the topic's ``data.num_hops`` subgraph of the
KB within ``data.max_nodes`` nodes. The candidates are the subgraph's nodes other than the topic;
the model (:mod:`gnnlm.tasks.metaqa.model`) scores each and the top one is the answer.

Data (:mod:`gnnlm.tasks.metaqa.data`): there is no training split in this copy of MetaQA, so the run
**trains on 90% of the dev files, selects on the other 10% of dev** (fixed by ``data.split_seed``)
**and reports on the full test files**. Questions whose topic is not in the KB, or whose answers are
not in the subgraph, stay in the evaluation as misses; training skips the ones without an answer in
their subgraph (nothing to learn from), and every split's counts say how many there are.

Metrics: ``hits@1`` (the top candidate is any gold answer) over the split and per hop
(``hits@1_1hop``, ``hits@1_2hop``), ``loss`` (over the questions with an answer in their subgraph),
``num_examples``, ``correct`` (per question in file order, for paired bootstrap) and ``counts``
(questions, topics found, answers in the KB, answers within ``k`` hops, answers in the budgeted
subgraph; also per hop).

Comparison of arms (``configs/tasks/metaqa.yaml``)::

    task: metaqa
    dataset: metaqa
    model: {lm: minilm, arm: fused, injection: [graph], encoder: compgcn, node_channels: 64,
            num_fused_layers: 2, freeze_lm_layers: 4, node_features: text}
    data: {hops: [1, 2], max_nodes: 128, max_length: 48}
    variants:
      lm: {model.arm: lm, model.injection: []}
      gnn: {model.arm: gnn, model.injection: []}
      fused: {model.arm: fused, model.injection: [graph]}

The injection ablation (``configs/tasks/injection_ablation_metaqa.yaml``) adds ``late`` (``fused`` with
``model.freeze_injection: true``: the head alone combines text and graph) and ``inject``
(``model.arm: inject``: injection, and the head reads the name vectors and the question only).
An EmbedKGQA-style arm reads a KGE of the whole KB trained first (``gnnlm train
configs/metaqa/complex.yaml --out runs/metaqa-complex``): ``kge: {model.arm: kge, model.injection: [],
model.kge_run: runs/metaqa-complex}``.

Parameter groups: ``lm``, ``gnn`` (the fused LM's GNN, or the ``gnn`` arm's GNN), ``fusion``,
``gates`` and ``head`` (the ranking head, the ``lm`` and ``inject`` arms' name projection and the
``kge`` arm's pair projection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
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
from gnnlm.tasks.metaqa.config import MetaQAConfig
from gnnlm.tasks.metaqa.data import (
    LinkedQuestion,
    count_linked,
    hop_folders,
    link_questions,
    parse_question,
    read_hops,
    sample_in_order,
    split_dev,
)
from gnnlm.tasks.metaqa.model import (
    KGEPairTable,
    MetaQARanker,
    NameTable,
    NodeRankingHead,
    QuestionGNN,
    gold_mask,
    ranking_loss,
)
from gnnlm.train.config import check_dataset
from gnnlm.train.task import StepOutput, Task

SPLITS = ("train", "valid", "test")


class MetaQATask(Task):
    """Answer MetaQA questions by ranking the topic subgraph's nodes (see the module docstring).

    Args:
        config: the run.
        data: the KB as a :class:`~gnnlm.data.KnowledgeGraph`, if already loaded (default:
            ``load_dataset(config.dataset, **config.dataset_kwargs)``); entity names link the
            questions.
    """

    name = "metaqa"
    config_class = MetaQAConfig
    metrics = {"hits@1": "max", "loss": "min"}
    config: MetaQAConfig

    def __init__(self, config: MetaQAConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        #: per split, every question linked to the KB (none dropped), in file order
        self.questions: dict[str, list[LinkedQuestion]] = {}
        #: per split, whether each question's budgeted subgraph holds a gold answer
        self.in_subgraph: dict[str, list[bool]] = {}
        #: per split, the counts of :func:`~gnnlm.tasks.metaqa.data.link_questions` and more
        self.counts: dict[str, dict[str, Any]] = {}
        #: indices into ``questions["train"]`` that training uses (an answer in the subgraph)
        self.train_indices: list[int] = []
        self.entity_id: dict[str, int] = {}
        self._tables: dict[str, Tensor] = {}
        self._kge: nn.Module | None = None  # the kge arm's frozen link-prediction model
        self._lm = None  # the frozen LM of data.pruning: question, while setting up

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The fused model's options, the arm against the injection modes and the dataset, before
        any data loads."""
        from gnnlm.fusion import injection_resolver

        c, m = self.config, self.config.model
        check_fused_model(c, c.data.max_length)
        if m.arm in ("lm", "gnn", "kge") and m.injection:
            raise ConfigError(
                f"{c.at('model.arm')}model.arm: {m.arm} ranks without injection into the LM; set "
                f"model.injection: [] (got {m.injection})"
            )
        if m.arm == "fused" and not any(
            injection_resolver.lookup(mode).uses_graph_encoder for mode in m.injection
        ):
            raise ConfigError(
                f"{c.at('model.injection')}model.arm: fused reads the fused LM's GNN states; "
                f"model.injection needs a mode with a GNN, e.g. [graph] (got {m.injection})"
            )
        if m.arm == "inject" and not m.injection:
            raise ConfigError(
                f"{c.at('model.injection')}model.arm: inject ranks the names with a question "
                f"vector that injection changed; model.injection needs a mode, e.g. [graph]"
            )
        if m.arm == "kge":
            if not m.kge_run:
                raise ConfigError(
                    f"{c.at('model.kge_run')}model.arm: kge scores candidates with a trained KGE; "
                    "set model.kge_run to a link-prediction run over this dataset (e.g. gnnlm train "
                    "configs/metaqa/complex.yaml --out runs/metaqa-complex)"
                )
            if not Path(m.kge_run).is_dir():
                raise ConfigError(
                    f"{c.at('model.kge_run')}model.kge_run: no such run folder {m.kge_run!r}"
                )
        if self.kg is None:
            check_dataset(c)

    def question_root(self) -> Path:
        """The folder of ``<k>-hop/`` question sets: ``data.root`` or the dataset's folder.

        Raises:
            ConfigError: no such folder, or no ``<k>-hop`` folder in it.
        """
        c = self.config
        if c.data.root:
            root = Path(c.data.root).expanduser()
        else:
            from gnnlm.data.registry import get_dataset

            options = {k: v for k, v in c.dataset_kwargs.items() if k != "data_dir"}
            location = get_dataset(c.dataset, **options).locate(c.dataset_kwargs.get("data_dir"))
            if location is None:
                raise ConfigError(
                    f"{c.at('data.root')}data.root: not set and no local copy of {c.dataset!r} "
                    "(set $GNNLM_DATA_DIR or data.root to the folder holding 1-hop/, 2-hop/)"
                )
            root = Path(location.path)
        found = hop_folders(root)
        missing = [k for k in c.data.hops if k not in found]
        if missing:
            have = ", ".join(f"{k}-hop" for k in found) or "none"
            raise ConfigError(
                f"{c.at('data.hops')}data.hops: no {', '.join(f'{k}-hop' for k in missing)} folder "
                f"in {root} (found: {have})"
            )
        return root

    def setup(self) -> None:
        """Load the KB and the questions, split dev, link every question and count what is
        answerable; build the subgraph sampler and the collator."""
        from gnnlm.fusion import TextGraphCollator, text_positions
        from gnnlm.lm import load_lm_config, load_tokenizer

        c, d = self.config, self.config.data
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        kg, root = self.kg, self.question_root()
        for i in range(kg.num_entities):
            self.entity_id.setdefault(kg.entity_label(i), i)
        graph = kg.homogeneous(add_inverse=True)
        # uniform weights: the sampler's ties fall to its fixed random rank (plain BFS order);
        # question: each question brings its own weights, summed along paths
        weight = torch.zeros(graph.num_relations) if d.pruning != "idf" else None
        # split_seed, not the run's seed: every arm and seed sees the same subgraphs
        sampler = memo_sampler(
            graph, num_hops=d.radius, max_nodes=d.max_nodes, inverse_offset=kg.num_relations,
            seed=d.split_seed, relation_weight=weight, path_scores=d.pruning == "question",
        )  # fmt: skip
        reach = _Reach(graph)
        dev = read_hops(root, d.hops, "dev")
        train, valid = split_dev(len(dev), d.valid_fraction, d.split_seed)
        raw = {
            "train": [dev[i] for i in train],
            "valid": [dev[i] for i in valid],
            "test": read_hops(root, d.hops, "test"),
        }
        limits = {"train": d.max_train, "valid": d.max_valid, "test": d.max_test}
        for split, questions in raw.items():
            questions = sample_in_order(questions, limits[split], d.split_seed)
            linked, inside, counts = self._link(questions, sampler, reach)
            self.questions[split], self.in_subgraph[split], self.counts[split] = (
                linked,
                inside,
                counts,
            )
        self.train_indices = [i for i, ok in enumerate(self.in_subgraph["train"]) if ok]
        self.counts["train"]["trained_on"] = len(self.train_indices)
        self._lm = None  # predict loads it again if it needs it
        self.collate = TextGraphCollator(
            load_tokenizer(c.model.lm), sampler, max_length=d.max_length,
            max_positions=text_positions(load_lm_config(c.model.lm)),
        )  # fmt: skip

    def _attach_weights(self, linked: list[LinkedQuestion]) -> None:
        """With ``data.pruning: question``, give each question its ``[2R]`` relation
        log-relevance (:mod:`gnnlm.tasks.metaqa.relevance`), which its subgraph is pruned by."""
        c, kg = self.config, self.kg
        if c.data.pruning != "question" or not linked:
            return
        from gnnlm.tasks.metaqa.relevance import relation_relevance

        if self._lm is None:
            from gnnlm.lm import load_lm

            self._lm = load_lm(c.model.lm)
        texts = [kg.relation_label(r) for r in range(kg.num_relations)]
        weights = relation_relevance(
            self._lm, [q.question for q in linked], texts, temperature=c.data.relation_temperature
        )
        for q, w in zip(linked, weights):
            q.relation_weight = w

    def _link(
        self, questions: list, sampler: Any, reach: _Reach
    ) -> tuple[list[LinkedQuestion], list[bool], dict[str, Any]]:
        """Link ``questions`` to the KB: ``(linked, inside, counts)`` where ``inside[i]`` says whether
        question ``i``'s budgeted subgraph (pruned by its own weights with ``data.pruning:
        question``) holds a gold answer, and ``counts`` are those of
        :func:`~gnnlm.tasks.metaqa.data.link_questions` plus ``answers_in_subgraph``, over all
        questions and per hop (``counts["1hop"]``)."""
        linked, counts = link_questions(questions, self.entity_id, reach)
        self._attach_weights(linked)
        inside = [
            q.topic is not None
            and bool(q.answers & set(sampler.node_set([q.topic], q.relation_weight).tolist()))
            for q in linked
        ]
        counts["answers_in_subgraph"] = sum(inside)
        for k in self.config.data.hops:
            mine = [i for i, q in enumerate(linked) if q.question.hops == k]
            hop_counts: dict[str, Any] = count_linked([linked[i] for i in mine])
            hop_counts["answers_in_subgraph"] = sum(inside[i] for i in mine)
            counts[f"{k}hop"] = hop_counts
        return linked, inside, counts

    # -- model -------------------------------------------------------------------------------------
    def table(self, kind: str) -> Tensor | None:
        """``[num_entities, d]`` tables, computed once per task: ``features``
        (``model.node_features``: ``None`` for learned) and ``names`` (the LM's encodings of the
        entity names, for the ``lm`` and ``inject`` arms; the same table as ``node_features: text``)."""
        if kind not in self._tables:
            m = self.config.model
            if kind == "features":
                table = node_feature_table(m, self.kg)
            elif m.node_features == "text":
                table = self.table("features")
            else:
                from gnnlm.fusion import entity_texts, text_node_features

                table = text_node_features(m.lm, entity_texts(self.kg), quiet=True)
            if table is None:
                return None
            self._tables[kind] = table
        return self._tables[kind]

    def kge(self) -> nn.Module:
        """The link-prediction model of ``model.kge_run`` (the ``kge`` arm), loaded once per task.

        Raises:
            ConfigError: the run numbers entities or relations differently from the dataset.
        """
        if self._kge is None:
            from gnnlm.fusion.kge_source import load_kge_run

            try:
                self._kge = load_kge_run(self.config.model.kge_run, self.kg)
            except ValueError as err:
                raise ConfigError(
                    f"{self.config.at('model.kge_run')}model.kge_run: {err}"
                ) from None
        return self._kge

    def build_model(self) -> MetaQARanker:
        """The fused LM of ``model:``, the arm's candidate vectors and the head."""
        from gnnlm.encoders import resolve_encoder
        from gnnlm.fusion.modes.entity import EntityTable

        c, m, kg = self.config, self.config.model, self.kg
        features = self.table("features")
        fused = build_fused_lm(
            m, kg, seed=c.seed, node_features=features if m.arm in ("fused", "inject") else None
        )
        gnn = names = None
        if m.arm == "gnn":
            encoder = resolve_encoder(
                m.encoder, in_channels=m.node_channels, out_channels=m.node_channels,
                num_relations=2 * kg.num_relations, **{"num_layers": m.num_fused_layers,
                                                       **m.encoder_kwargs},
            )  # fmt: skip
            table = (
                EntityTable(kg.num_entities, m.node_channels)
                if features is None
                else NameTable(features, m.node_channels)
            )
            gnn = QuestionGNN(
                encoder, table, channels=m.node_channels, hidden_size=fused.lm.hidden_size,
                num_relations=2 * kg.num_relations,
            )  # fmt: skip
        elif m.arm in ("lm", "inject"):  # the candidates are their names
            names = NameTable(self.table("names"), m.node_channels)
        pairs = KGEPairTable.from_kge(self.kge(), m.node_channels) if m.arm == "kge" else None
        head = NodeRankingHead(m.node_channels, fused.lm.hidden_size, m.head_channels, seed=c.seed)
        return MetaQARanker(fused, head, m.arm, gnn=gnn, names=names, pairs=pairs)

    def parameter_groups(self, model: MetaQARanker) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn`` (with the ``gnn`` arm's GNN), ``fusion``, ``gates`` and ``head`` (with
        the ``lm`` arm's name projection and the ``kge`` arm's pair projection)."""
        groups = fused_parameter_groups(model.fused)
        if model.gnn is not None:
            groups["gnn"] = groups["gnn"] + list(model.gnn.parameters())
        head = list(model.head.parameters())
        for table in (model.names, model.pairs):
            if table is not None:
                head += list(table.parameters())
        return {**groups, "head": head}

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.train_indices)

    def training_step(
        self, model: MetaQARanker, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """Mean ``-log sum_{gold} p(v)`` over the questions ``indices`` (of those with an answer in
        their subgraph), plus the fused LM's regularisation loss when it has one."""
        chosen = [self.questions["train"][self.train_indices[i]] for i in indices.tolist()]
        scores, gold, out, _ = self._forward(model, chosen)
        loss = ranking_loss(scores, gold).mean()
        if out.regularization_loss is not None:
            loss = loss + out.regularization_loss
        hits = gold.gather(1, scores.detach().argmax(-1, keepdim=True)).float().mean()
        from gnnlm.fusion.gate_stats import injection_logs

        # the injections' gates and output norms over training, for a plot
        return StepOutput(loss, {"hits@1": float(hits), **injection_logs(model.fused)})

    def _forward(self, model: MetaQARanker, questions: list[LinkedQuestion]):
        """``(scores [B, M], gold [B, M], RankerOutput, batch)`` of linked questions (each with a
        topic)."""
        batch = self.collate([_example(q) for q in questions])
        device = next(model.parameters()).device
        if device.type != "cpu":
            batch = batch.to(device)
        out = model(batch)
        gold = gold_mask(batch.graph, [q.answers for q in questions], out.candidates)
        return out.scores, gold, out, batch

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return len(self.questions.get(split, ())) > 0

    def evaluate(self, model: MetaQARanker, split: str) -> dict[str, Any]:
        """Hits@1 over ``split`` and per hop, the loss, per-question ``correct`` and the counts; a
        question without its topic in the KB is a miss."""
        questions = self.questions[split]
        linked = [i for i, q in enumerate(questions) if q.topic is not None]
        correct = [0] * len(questions)
        size = self.config.evaluation.batch_size
        loss, answerable = 0.0, 0
        for start in range(0, len(linked), size):
            chunk = linked[start : start + size]
            scores, gold, _, _ = self._forward(model, [questions[i] for i in chunk])
            hit = gold.gather(1, scores.argmax(-1, keepdim=True)).squeeze(1)  # [B]
            for i, h in zip(chunk, hit.tolist()):
                correct[i] = int(h)
            has_gold = gold.any(-1)
            if has_gold.any():
                loss += float(ranking_loss(scores[has_gold], gold[has_gold]).sum())
                answerable += int(has_gold.sum())
        metrics: dict[str, Any] = {
            "hits@1": sum(correct) / max(len(questions), 1),
            "loss": loss / max(answerable, 1),
            "num_examples": len(questions),
        }
        for k in self.config.data.hops:
            mine = [c for c, q in zip(correct, questions) if q.question.hops == k]
            metrics[f"hits@1_{k}hop"] = sum(mine) / len(mine) if mine else None
            metrics[f"num_examples_{k}hop"] = len(mine)
        metrics["counts"] = self.counts[split]
        metrics["correct"] = correct  # per question, in file order: paired comparisons between runs
        return metrics

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        return {
            **super().run_metrics(epochs=epochs, train_seconds=train_seconds),
            "data_counts": self.counts,
            "splits": "train: most of dev; valid: the rest of dev; test: the full test files",
        }

    # -- inference ---------------------------------------------------------------------------------
    def predict(
        self, model: MetaQARanker, records: Iterable[Mapping[str, str]], *, top_k: int = 5
    ) -> list[dict[str, Any]]:
        """The ``top_k`` answers of each ``{"question": "what movies did [X] act in"}`` with their
        probabilities (the softmax over the question's candidates).

        Raises:
            DataFormatError: a question without one ``[topic]`` (named by its record number).
            ConfigError: a topic that is not an entity of the KB.
        """
        from gnnlm.tasks.metaqa.data import Question

        linked = []
        for number, record in enumerate(records, 1):
            text, span, topic = parse_question(record["question"], path="<records>", line=number)
            if topic not in self.entity_id:
                raise ConfigError(
                    f"record {number}: unknown topic entity {topic!r} in {self.kg.name}"
                )
            question = Question(text, span, topic)
            linked.append(LinkedQuestion(question, self.entity_id[topic], frozenset(), False))
        if not linked:
            return []
        self._attach_weights(linked)
        from torch_geometric.utils import to_dense_batch

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                scores, _, out, batch = self._forward(model, linked)
        finally:
            model.train(was_training)
        graph = batch.graph
        n_id, _ = to_dense_batch(graph.n_id, graph.batch, fill_value=-1, batch_size=len(linked))
        probs = torch.softmax(scores.float(), -1).cpu()
        results = []
        for i, q in enumerate(linked):
            k = min(top_k, int(out.candidates[i].sum()))
            top = probs[i].topk(k)
            answers = [
                {"answer": self.kg.entity_label(int(n_id[i, j])), "score": float(p)}
                for p, j in zip(top.values, top.indices)
            ]
            results.append(
                {"question": q.question.text, "topic": q.question.topic, "answers": answers}
            )
        return results


def _example(q: LinkedQuestion):
    """The collator's example of a linked question: its text, the topic mention linked to the
    topic."""
    from gnnlm.fusion import TextGraphExample

    return TextGraphExample(
        q.question.text, [(*q.question.span, q.topic)], id=q.question.source,
        relation_weight=q.relation_weight,
    )  # fmt: skip


def memo_sampler(*args: Any, **kwargs: Any):
    """A :class:`~gnnlm.data.subgraph.SubgraphSampler` that remembers each seed set's node set: the
    sampler is deterministic, questions share topics and every epoch and evaluation reads the same
    subgraphs again (with per-question weights, the weights are part of the key)."""
    from gnnlm.data.subgraph import SubgraphSampler

    class MemoSubgraphSampler(SubgraphSampler):
        def __init__(self) -> None:
            super().__init__(*args, **kwargs)
            self.memo: dict[tuple[int, ...], Tensor] = {}

        def node_set(self, seeds: Tensor, relation_weight: Tensor | None = None) -> Tensor:
            key = tuple(torch.as_tensor(seeds).reshape(-1).tolist())
            if relation_weight is not None:
                key += (torch.as_tensor(relation_weight).float().numpy().tobytes(),)
            nodes = self.memo.get(key)
            if nodes is None:
                nodes = self.memo[key] = super().node_set(seeds, relation_weight)
            return nodes

    return MemoSubgraphSampler()


class _Reach:
    """``(topic, k, answers) -> bool``: whether an answer lies within ``k`` hops of the topic in the
    whole graph (no budget). Meets in the middle on Python adjacency sets: the ``ceil(k/2)``-hop set
    of the topic against the ``floor(k/2)``-hop set of the answers, so a hub topic's 2-hop set
    (thousands of nodes) is never built; tens of thousands of questions take seconds."""

    def __init__(self, graph) -> None:
        self.adjacency: list[set[int]] = [set() for _ in range(int(graph.num_nodes))]
        for a, b in graph.edge_index.t().tolist():
            self.adjacency[a].add(b)
            self.adjacency[b].add(a)

    def within(self, seeds: Iterable[int], hops: int) -> set[int]:
        """The nodes within ``hops`` hops of ``seeds`` (the seeds included)."""
        reached = set(seeds)
        frontier = set(reached)
        for _ in range(hops):
            frontier = {n for v in frontier for n in self.adjacency[v]} - reached
            reached |= frontier
        return reached

    def __call__(self, topic: int, k: int, answers: frozenset[int]) -> bool:
        if not answers:
            return False
        near = self.within([topic], (k + 1) // 2)
        return not near.isdisjoint(self.within(answers, k // 2))


__all__ = ["MetaQATask"]
