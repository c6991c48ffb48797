"""``task: text_link_prediction``: text-aware KG completion with a SimKGC bi-encoder on the engine.

Training: every training triple ``(h, r, t)`` gives two examples, ``(h, r, ?) -> t`` and
``(t, r^-1, ?) -> h``; a batch's loss is SimKGC's InfoNCE (:mod:`~gnnlm.tasks.text_link_prediction.loss`)
with in-batch, pre-batch and self negatives, the additive margin and the learnable temperature. The
optional graph tower (``model.graph: true``) adds each entity's CompGCN state through zero-initialised
gates (:mod:`~gnnlm.tasks.text_link_prediction.model`).

Evaluation: every entity's key is encoded once per evaluation, every distinct query of the split
once, and the ranks are those of :class:`~gnnlm.eval.RankBasedEvaluator` (both sides, filtered by
train + valid + test, realistic ties: the protocol of the KGE models, so the numbers sit in one
table). Triples with an entity that never occurs in training are ranked like any other and also
reported on their own (``unseen`` in each split's metrics, and the split ``test_unseen``: all such
test triples). With ``hybrid.kge_run`` the same evaluation reports the KGE run alone (``kge``) and
the score ensemble (``hybrid``, its weight chosen on validation), and with ``hybrid.rerank_k`` the
KGE model's top-k re-ordered by a cross-encoder trained beside the bi-encoder (``rerank``).

The pre-batch queue is the run's state between steps: a resumed run starts with an empty queue (its
first ``pre_batch`` steps differ from the uninterrupted run's).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.text_link_prediction.config import METRICS, TextLinkPredictionConfig
from gnnlm.train.config import check_dataset
from gnnlm.train.task import StepOutput, Task
from gnnlm.utils.strict_yaml import quote

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph
    from gnnlm.eval.metrics import RankBasedMetrics
    from gnnlm.tasks.text_link_prediction.model import TextKGCModel

#: the maximum length of the frozen entity encodings (keys of ``key_encoder: frozen`` and the graph
#: tower's input): the same table as ``node_features: text``, cached once per LM and dataset.
TABLE_MAX_LENGTH = 128


def _sample(triples: Tensor, limit: int, seed: int) -> Tensor:
    """``limit`` rows of ``triples`` drawn with ``seed``, in their original order (all when 0)."""
    if not limit or limit >= len(triples):
        return triples
    generator = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(triples), generator=generator)[:limit].sort().values
    return triples[keep]


class TextLinkPredictionTask(Task):
    """Train and evaluate a text bi-encoder (optionally with the graph tower) for KG completion.

    Args:
        config: the run.
        data: the :class:`~gnnlm.data.KnowledgeGraph`, if already loaded (it needs entity text;
            default: ``load_dataset(config.dataset, **config.dataset_kwargs)``).
    """

    name = "text_link_prediction"
    config_class = TextLinkPredictionConfig
    metrics = METRICS
    config: TextLinkPredictionConfig

    def __init__(self, config: TextLinkPredictionConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg: KnowledgeGraph | None = data
        self.train_triples: Tensor | None = None
        self.eval_triples: dict[str, Tensor] = {}
        self.kge: nn.Module | None = None
        self.hybrid_weight: float | None = None
        self._table: Tensor | None = None

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The LM (its config loads, ``max_length`` fits its positions), the composition, the KGE
        run folder and the dataset, before any data loads."""
        from gnnlm.encoders.compgcn import COMPOSITIONS
        from gnnlm.fusion import text_positions
        from gnnlm.lm import load_lm_config

        c, m = self.config, self.config.model
        try:
            positions = text_positions(load_lm_config(m.lm))
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{c.at('model.lm')}model.lm {quote(m.lm)}: {' '.join(str(err).split())}"
            ) from None
        if positions is not None and m.max_length > positions:
            raise ConfigError(
                f"{c.at('model.max_length')}model.max_length={m.max_length} is longer than the "
                f"{positions} positions of {m.lm!r}"
            )
        if m.composition not in COMPOSITIONS:
            raise ConfigError(
                f"{c.at('model.composition')}model.composition must be one of "
                f"{', '.join(COMPOSITIONS)}, got {m.composition!r}"
            )
        if c.hybrid.rerank_k and c.hybrid.kge_run is None:
            raise ConfigError(
                f"{c.at('hybrid.rerank_k')}hybrid.rerank_k re-ranks a KGE model's top-k: set "
                "hybrid.kge_run too"
            )
        if c.hybrid.kge_run is not None and not Path(c.hybrid.kge_run).is_dir():
            raise ConfigError(
                f"{c.at('hybrid.kge_run')}hybrid.kge_run: no such run folder {c.hybrid.kge_run!r}"
            )
        if self.kg is None:
            check_dataset(c)

    def setup(self) -> None:
        """Load the graph (rebuilt inductively when ``data.inductive_fraction`` is set), draw the
        training and evaluation samples, build the filter, the known-triple index, the pre-batch
        queue and the tokenizer, and load the KGE run of the hybrid."""
        from gnnlm.eval import RankBasedEvaluator
        from gnnlm.lm import load_tokenizer
        from gnnlm.tasks.text_link_prediction.inductive import (
            inductive_split,
            seen_entities,
            unseen_mask,
        )
        from gnnlm.tasks.text_link_prediction.loss import KnownTriples, PreBatchQueue

        c, d = self.config, self.config.data
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        if self.kg.entity_text is None:
            raise ConfigError(
                f"{c.at('dataset')}dataset {c.dataset!r} has no entity text (entity2text.txt); "
                "a text model needs names"
            )
        if d.inductive_fraction > 0 and not self.kg.name.endswith("-inductive"):
            self.kg = inductive_split(self.kg, d.inductive_fraction, d.inductive_seed)
        kg = self.kg
        self.evaluator = RankBasedEvaluator(
            kg.filter_index, batch_size=c.evaluation.batch_size, quiet=True
        )
        self.known = KnownTriples(kg.train, kg.num_entities, kg.num_relations)
        self.train_triples = _sample(kg.train, d.max_train, d.sample_seed)
        limits = {"valid": d.max_valid, "test": d.max_test}
        self.eval_triples = {
            s: _sample(kg.splits[s], limits.get(s, 0), d.sample_seed)
            for s in kg.splits
            if s != "train"
        }
        self.seen = seen_entities(kg)
        # every test triple with an entity outside training, whatever the test sample: its own split
        unseen = kg.test[unseen_mask(kg.test, self.seen)]
        if len(unseen):
            self.eval_triples["test_unseen"] = unseen
        self.queue = PreBatchQueue(c.model.pre_batch)
        self.tokenizer = load_tokenizer(c.model.lm)
        if c.hybrid.kge_run is not None:
            from gnnlm.fusion.kge_source import load_kge_run

            try:
                self.kge = load_kge_run(c.hybrid.kge_run, kg)
            except ValueError as err:
                raise ConfigError(f"{c.at('hybrid.kge_run')}hybrid.kge_run: {err}") from None

    def entity_texts(self) -> list[str]:
        """One text per entity: ``"name: description"`` (``model.descriptions``) or the name."""
        from gnnlm.fusion.node_features import entity_texts

        return entity_texts(self.kg, descriptions=self.config.model.descriptions)

    def table(self) -> Tensor:
        """``[N, H]`` the pretrained LM's encodings of the entity texts (computed once, cached on
        disk): the frozen keys and the graph tower's input."""
        if self._table is None:
            from gnnlm.fusion.node_features import text_node_features

            self._table = text_node_features(
                self.config.model.lm, self.entity_texts(), quiet=True, max_length=TABLE_MAX_LENGTH
            )
        return self._table

    def build_model(self) -> TextKGCModel:
        """The bi-encoder of ``model:``: the query LM, the key side (a second LM, the same LM or the
        frozen table), with ``model.graph`` the graph tower, with ``hybrid.rerank_k`` the
        cross-encoder's head."""
        from gnnlm.lm import load_lm
        from gnnlm.tasks.text_link_prediction.model import GraphTower, TextKGCModel, relation_texts

        c, m, kg = self.config, self.config.model, self.kg
        query_lm = load_lm(m.lm, seed=c.seed)
        key_lm = load_lm(m.lm, seed=c.seed) if m.key_encoder == "separate" else None
        if m.query_encoder == "frozen" and self._table is None:
            from gnnlm.fusion.node_features import text_node_features

            # the table from this very LM, so a new text's encoding (encode_frozen) matches its rows
            # (a tiny random LM's weights depend on the run's seed)
            self._table = text_node_features(
                query_lm, self.entity_texts(), quiet=True, tokenizer=self.tokenizer,
                max_length=TABLE_MAX_LENGTH,
            )  # fmt: skip
        graph = None
        if m.graph:
            data = kg.homogeneous("train", add_inverse=True)
            graph = GraphTower(
                self.table(), data.edge_index, data.edge_type,
                num_relations=2 * kg.num_relations, channels=m.graph_channels,
                out_channels=query_lm.hidden_size, num_layers=m.graph_layers,
                dropout=m.graph_dropout, composition=m.composition,
            )  # fmt: skip
        adapter = None
        names = relation_texts(kg.relations.names, kg.relation_text)
        if m.query_encoder == "frozen":
            from gnnlm.fusion.node_features import text_node_features
            from gnnlm.tasks.text_link_prediction.adapter import QueryAdapter

            rel_table = text_node_features(
                query_lm, names, quiet=True, tokenizer=self.tokenizer, max_length=TABLE_MAX_LENGTH
            )  # [2R, H], cached like the entity table
            torch.manual_seed(c.seed)  # the adapter's init: the run's seed, not the LM loads'
            adapter = QueryAdapter(rel_table, width=m.adapter_width, dropout=m.adapter_dropout)
        cross = None
        if c.hybrid.rerank_k:
            from gnnlm.tasks.text_link_prediction.rerank import CrossEncoderHead

            cross = CrossEncoderHead(query_lm.hidden_size)
        return TextKGCModel(
            query_lm, self.tokenizer, self.entity_texts(),
            names, key_lm=key_lm,
            key_table=self.table() if m.key_encoder == "frozen" else None, graph=graph,
            cross=cross, query_adapter=adapter, table_max_length=TABLE_MAX_LENGTH,
            max_length=m.max_length, temperature=m.temperature,
            learn_temperature=m.learn_temperature,
            max_inverse_temperature=m.max_inverse_temperature,
            encode_batch_size=c.evaluation.batch_size,
        )  # fmt: skip

    def parameter_groups(self, model: TextKGCModel) -> dict[str, list[nn.Parameter]]:
        """``lm`` (the LMs), ``gates`` (the graph tower's two gates), ``graph`` (the rest of the
        tower) and ``head`` (the temperature, the frozen keys' linear map and the cross-encoder's
        classifier)."""
        # a frozen query LM (the adapter's) is in no group: the optimizer never sees it
        lm = list(model.query_lm.parameters()) if model.query_adapter is None else []
        if model.key_lm is not None:
            lm += list(model.key_lm.parameters())
        head = [model.log_inverse_temperature]
        if model.key_map is not None:
            head += list(model.key_map.parameters())
        if model.query_adapter is not None:
            head += list(model.query_adapter.parameters())
        if model.cross is not None:
            head += list(model.cross.parameters())
        gates: list[nn.Parameter] = []
        graph: list[nn.Parameter] = []
        if model.graph is not None:  # empty without a tower: every arm reads one param_groups
            gates = [model.graph.key_gate, model.graph.query_gate]
            graph = [p for p in model.graph.parameters() if all(p is not g for g in gates)]
        return {"lm": lm, "head": head, "gates": gates, "graph": graph}

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return 2 * len(self.train_triples)

    def examples(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(heads, relations, tails)`` ``[B]`` of training examples ``indices``: example ``i < n``
        is triple ``i``, example ``n + i`` its inverse ``(t, r + R, h)``."""
        n, r_count = len(self.train_triples), self.kg.num_relations
        triples = self.train_triples[indices % n]
        inverse = indices >= n
        heads = torch.where(inverse, triples[:, 2], triples[:, 0])
        tails = torch.where(inverse, triples[:, 0], triples[:, 2])
        return heads, triples[:, 1] + r_count * inverse.long(), tails

    def training_step(
        self, model: TextKGCModel, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """InfoNCE of the batch's examples against in-batch, pre-batch and self negatives."""
        from gnnlm.tasks.text_link_prediction.loss import (
            contrastive_logits,
            in_batch_mask,
            info_nce,
            pre_batch_mask,
        )

        m = self.config.model
        heads, relations, tails = self.examples(indices.cpu())
        states = model.graph_states()
        query = model.query_vectors(heads, relations, states)  # [B, H]
        keys = model.key_vectors(tails, states)  # [B, H]
        device = query.device
        valid = in_batch_mask(heads, relations, tails, self.known).to(device)
        pre_keys = pre_valid = self_keys = self_valid = None
        queued = self.queue.get()
        if queued is not None:
            pre_keys, pre_entities = queued
            pre_valid = pre_batch_mask(heads, relations, tails, pre_entities.cpu(), self.known)
            pre_valid = pre_valid.to(device)
        if m.self_negatives:
            self_keys = model.key_vectors(heads, states)  # [B, H]
            own = self.known.contains(heads, relations, heads[:, None])[:, 0]  # [B]
            self_valid = ((heads != tails) & ~own).to(device)
        logits = contrastive_logits(
            query, keys, model.inverse_temperature, margin=m.margin, valid=valid,
            pre_keys=pre_keys, pre_valid=pre_valid, pre_weight=m.pre_batch_weight,
            self_keys=self_keys, self_valid=self_valid,
        )  # fmt: skip
        loss = info_nce(logits)
        self.queue.push(keys, tails)
        accuracy = (logits.detach().argmax(1).cpu() == torch.arange(len(indices))).float().mean()
        logs = {
            "inverse_temperature": float(model.inverse_temperature.detach()),
            "accuracy": float(accuracy),
        }
        if model.cross is not None:  # KG-BERT-style re-ranker: the KGE model's hard negatives
            from gnnlm.tasks.text_link_prediction.rerank import cross_entropy_loss, hard_negatives

            h = self.config.hybrid
            negatives = hard_negatives(
                self.kge, heads, relations, tails, self.known, k=h.rerank_k,
                num=h.rerank_negatives, generator=generator,
            )  # fmt: skip
            cross = cross_entropy_loss(model, heads, relations, tails, negatives)
            loss = loss + cross
            logs["cross_entropy"] = float(cross.detach())
        return StepOutput(loss, logs)

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return split in self.eval_triples and len(self.eval_triples[split]) > 0

    def final_splits(self) -> tuple[str, ...]:
        """``valid``, ``test`` and ``test_unseen``: all test triples with an entity that occurs in
        no training triple (WN18RR: 210), evaluated in full even when ``data.max_test`` samples
        test."""
        return tuple(s for s in ("valid", "test", "test_unseen") if self.has_split(s))

    def text_ranker(self, model: TextKGCModel, triples: Tensor) -> nn.Module:
        """The text model over ``triples``' queries, each encoded once, and the key table."""
        from gnnlm.tasks.text_link_prediction.hybrid import CachedTextRanker, QueryCache

        keys, states = model.representations()
        cache = QueryCache(model, triples, states, batch_size=self.config.evaluation.batch_size)
        return CachedTextRanker(cache, keys)

    def evaluate(self, model: TextKGCModel, split: str) -> dict[str, Any]:
        """Filtered rank-based metrics of ``split`` (the evaluator's ``to_dict()``), the ``unseen``
        / ``seen`` breakdown and, with a KGE run, ``kge`` and ``hybrid`` (with ``weight``; chosen
        on validation: the weight curve is in the valid metrics)."""
        triples = self.eval_triples[split]
        text = self.text_ranker(model, triples)
        result = self.evaluator.evaluate(text, triples)
        metrics = result.to_dict()
        metrics["num_triples"] = len(triples)
        metrics["per_triple_rr"] = per_triple_rr(result)
        metrics.update(self.breakdown(result, triples))
        if self.kge is not None:
            from gnnlm.tasks.text_link_prediction.hybrid import EnsembleRanker, choose_weight

            weights = self.config.hybrid.weights
            if split == "valid" or self.hybrid_weight is None:
                if split == "valid":
                    select, ranker = triples, text
                else:  # test before any validation: choose on valid first
                    select = self.eval_triples["valid"]
                    ranker = self.text_ranker(model, select)
                self.hybrid_weight, curve = choose_weight(
                    self.evaluator, ranker, self.kge, select, weights
                )
                metrics["hybrid_curve"] = curve
            kge = self.evaluator.evaluate(self.kge, triples)
            metrics["kge"] = {
                **_flat(kge),
                "per_triple_rr": per_triple_rr(kge),
                **self.breakdown(kge, triples),
            }
            hybrid = self.evaluator.evaluate(
                EnsembleRanker(text, self.kge, self.hybrid_weight), triples
            )
            metrics["hybrid"] = {
                **_flat(hybrid),
                "weight": self.hybrid_weight,
                "per_triple_rr": per_triple_rr(hybrid),
                **self.breakdown(hybrid, triples),
            }
            if model.cross is not None:
                from gnnlm.tasks.text_link_prediction.rerank import RerankRanker, model_scorer

                ranker = RerankRanker(
                    self.kge, model_scorer(model, self.config.evaluation.batch_size),
                    self.config.hybrid.rerank_k, self.kg.num_relations,
                )  # fmt: skip
                rerank = self.evaluator.evaluate(ranker, triples)
                metrics["rerank"] = {**_flat(rerank), **self.breakdown(rerank, triples)}
        return metrics

    def breakdown(self, result: RankBasedMetrics, triples: Tensor) -> dict[str, Any]:
        """``{"unseen": ..., "seen": ...}``: metrics over the triples with (without) an entity that
        is not in any training triple, with ``num_triples`` each (none is dropped)."""
        from gnnlm.eval.metrics import RankMetrics
        from gnnlm.tasks.text_link_prediction.inductive import unseen_mask

        mask = unseen_mask(triples, self.seen)
        out = {}
        for name, part in (("unseen", mask), ("seen", ~mask)):
            ranks = torch.cat([r[part] for r in result.ranks.values()])
            out[name] = {**RankMetrics.from_ranks(ranks).to_dict(), "num_triples": int(part.sum())}
        return out

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        counts = {
            "train_triples": len(self.train_triples),
            "train_triples_in_graph": len(self.kg.train),
            **{f"evaluated_{s}_triples": len(t) for s, t in self.eval_triples.items()},
            "entities_unseen_in_training": int((~self.seen).sum()),
        }
        if "inductive" in self.kg.extra:
            counts["inductive"] = self.kg.extra["inductive"]
        return {**super().run_metrics(epochs=epochs, train_seconds=train_seconds), "counts": counts}

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, model: TextKGCModel, records: list[dict[str, Any]], *, top_k: int = 10):
        """The ``top_k`` tails of ``{"head": ..., "relation": ...}`` (or heads of ``{"tail": ...,
        "relation": ...}``) per record; an entity not in the KG is read as new text."""
        from gnnlm.tasks.text_link_prediction.predict import predict_heads_text, predict_tails_text

        out = []
        for number, record in enumerate(records, 1):
            if "relation" not in record or ("head" in record) == ("tail" in record):
                raise ConfigError(
                    f"record {number}: needs 'relation' and one of 'head' / 'tail', got "
                    f"{sorted(record)}"
                )
            if "head" in record:
                p = predict_tails_text(model, self.kg, record["head"], record["relation"], top_k)
            else:
                p = predict_heads_text(model, self.kg, record["relation"], record["tail"], top_k)
            out.append(p.to_dict())
        return out


def per_triple_rr(result: RankBasedMetrics) -> list[float]:
    """``[n]`` each evaluated triple's reciprocal rank averaged over its sides (head and tail
    prediction), aligned with the triples: the outcomes a paired bootstrap of two models' MRR
    resamples (their mean is the MRR)."""
    sides = torch.stack([r.double().reciprocal() for r in result.ranks.values()])  # [sides, n]
    return [round(float(v), 6) for v in sides.mean(0)]


def _flat(result: RankBasedMetrics) -> dict[str, Any]:
    """The headline metrics and per-side metrics (no per-relation breakdown)."""
    d = result.to_dict()
    d.pop("per_relation", None)
    return d
