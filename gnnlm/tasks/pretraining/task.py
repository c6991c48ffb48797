"""Pre-training injection: continue training the fused LM on a KG's text and structure before any task.

Objectives (``objectives:``, any combination, each weighted by ``<objective>.weight``):

* ``mlm``: masked language modelling on entity texts (``"name: description"``), each read with the
  subgraph around its entity;
* ``link_prediction`` (DRAGON, Yasunaga et al., 2022): in the same forward pass, a share of each text's
  subgraph edges is removed from the GNN's input and scored with DistMult on the final node states
  against corruptions within the subgraph; ``[mlm, link_prediction]`` is DRAGON's objective;
* ``kepler`` (KEPLER, Wang et al., 2021): for each entity of the batch, one of its training triples;
  both ends' texts (and the corrupting entities' texts) are encoded by the fused LM, each with its own
  subgraph less the triple, and scored TransE-style; ``[mlm, kepler]`` is KEPLER's objective (MLM on
  the same entity texts).

An example is an entity (``data.num_train`` of them); held-out entities (``data.num_valid``) give the
validation metrics with fixed masks, held-out edges and negatives. The model holds the fused LM as
``fused``, built from the same ``model:`` block as triple classification's, so a downstream model
built from that block starts from these weights by parameter name (two-stage injection).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gnnlm.config import ConfigError
from gnnlm.tasks.fused import (
    build_fused_lm,
    check_fused_model,
    fused_parameter_groups,
    node_feature_table,
)
from gnnlm.tasks.pretraining.config import OBJECTIVES, PretrainingConfig
from gnnlm.tasks.pretraining.data import PretrainingData
from gnnlm.tasks.pretraining.edges import corrupt_in_subgraph, drop_edges
from gnnlm.tasks.pretraining.heads import negative_sampling_loss, transe_score
from gnnlm.tasks.pretraining.masking import IGNORE, mask_tokens, maskable_tokens
from gnnlm.tasks.pretraining.model import PretrainingModel
from gnnlm.train.config import check_dataset
from gnnlm.train.task import StepOutput, Task
from gnnlm.utils.strict_yaml import quote

#: the prefix of each objective's metrics (``mlm_loss``, ``link_accuracy``, ...).
PREFIX = {"mlm": "mlm", "kepler": "kepler", "link_prediction": "link"}


@dataclass
class ObjectiveResult:
    """One objective on one batch: its mean ``loss`` over ``count`` targets (masked tokens, held-out
    edges or triples) and its ``accuracy`` (share of tokens predicted, or of negatives scored below
    their positive)."""

    loss: Tensor
    count: int
    accuracy: float


class PretrainingTask(Task):
    """Pre-train a fused LM with MLM, KEPLER and/or DRAGON link prediction (module docstring).

    Args:
        config: the run.
        data: the :class:`~gnnlm.data.KnowledgeGraph`, if already loaded; it needs entity text.
    """

    name = "pretraining"
    config_class = PretrainingConfig
    metrics = {
        "loss": "min",
        "mlm_loss": "min",
        "mlm_accuracy": "max",
        "kepler_loss": "min",
        "kepler_accuracy": "max",
        "link_loss": "min",
        "link_accuracy": "max",
    }
    config: PretrainingConfig

    def __init__(self, config: PretrainingConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self.kg = data
        self.objectives = [o for o in OBJECTIVES if o in config.objectives]  # canonical order
        prefixes = {PREFIX[o] for o in self.objectives}
        # this run's metrics only: evaluation.metric may name no objective the run leaves out
        self.metrics = {
            k: v
            for k, v in type(self).metrics.items()
            if k == "loss" or k.split("_")[0] in prefixes
        }
        self._node_table: Tensor | None = None

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The objectives, the ``model:`` block (as triple classification checks it) and the dataset,
        before any data is read."""
        c = self.config
        where = c.at("objectives")
        if not c.objectives:
            raise ConfigError(
                f"{where}objectives must list at least one of {', '.join(OBJECTIVES)}"
            )
        for k, objective in enumerate(c.objectives):
            if objective not in OBJECTIVES:
                raise ConfigError(
                    f"{where}objectives[{k}]: unknown objective {quote(objective)}; valid: "
                    f"{', '.join(OBJECTIVES)}"
                )
        if len(set(c.objectives)) != len(c.objectives):
            raise ConfigError(f"{where}objectives lists an objective twice: {c.objectives}")
        if not any(c.weight(o) > 0 for o in self.objectives):
            raise ConfigError(f"{where}every listed objective has weight 0")
        if "link_prediction" in self.objectives and not c.model.injection:
            raise ConfigError(
                f"{c.at('model.injection')}objective link_prediction scores the GNN's node states: "
                "model.injection needs a mode with a GNN (e.g. [graph])"
            )
        check_fused_model(c, c.data.max_length)
        if self.kg is None:
            check_dataset(c)

    def setup(self) -> None:
        """Load the graph, draw the entities and build the subgraph sampler and collator."""
        from gnnlm.data.subgraph import SubgraphSampler
        from gnnlm.fusion import TextGraphCollator, text_positions
        from gnnlm.lm import load_lm_config, load_tokenizer

        c, d = self.config, self.config.data
        if self.kg is None:
            from gnnlm.data import load_dataset

            self.kg = load_dataset(c.dataset, **c.dataset_kwargs)
        kg = self.kg
        self.corpus = PretrainingData.build(kg, d.num_train, d.num_valid, c.seed)
        sampler = SubgraphSampler(
            kg.homogeneous(add_inverse=True), num_hops=d.num_hops, max_nodes=d.max_nodes,
            inverse_offset=kg.num_relations, seed=c.seed,
        )  # fmt: skip
        tokenizer = load_tokenizer(c.model.lm)
        if "mlm" in self.objectives and tokenizer.mask_token_id is None:
            raise ConfigError(
                f"{c.at('model.lm')}model.lm {c.model.lm!r}: its tokenizer has no mask token"
            )
        self.mask_token_id = tokenizer.mask_token_id
        self.special_ids = list(tokenizer.all_special_ids)
        self.collate = TextGraphCollator(
            tokenizer, sampler, max_length=d.max_length,
            max_positions=text_positions(load_lm_config(c.model.lm)),
        )  # fmt: skip

    def build_model(self) -> PretrainingModel:
        """The fused LM of ``model:`` (:func:`~gnnlm.tasks.fused.build_fused_lm`, exactly as triple
        classification builds it) and the objectives' heads."""
        c = self.config
        if self._node_table is None:
            self._node_table = node_feature_table(c.model, self.kg)
        fused = build_fused_lm(c.model, self.kg, seed=c.seed, node_features=self._node_table)
        if "link_prediction" in self.objectives and fused.encoder is None:
            raise ConfigError(
                f"{c.at('model.injection')}objective link_prediction needs a GNN, but no mode of "
                f"model.injection={c.model.injection} uses one"
            )
        return PretrainingModel(fused, self.objectives, self.kg.num_relations, seed=c.seed)

    def parameter_groups(self, model: PretrainingModel) -> dict[str, list[nn.Parameter]]:
        """``lm``, ``gnn``, ``fusion``, ``gates`` (as triple classification's) and ``head`` (the
        objectives' heads)."""
        heads = [p for name, p in model.named_parameters() if not name.startswith("fused.")]
        return {**fused_parameter_groups(model.fused), "head": heads}

    # -- inputs ------------------------------------------------------------------------------------
    def example(self, entity: int, exclude: Tensor | None = None):
        """The text of ``entity``, linked to it over its name, its subgraph less ``exclude``."""
        from gnnlm.fusion import TextGraphExample

        texts = self.corpus.texts
        mention = (0, texts.name_lengths[entity], entity)
        return TextGraphExample(texts.texts[entity], [mention], exclude=exclude, id=entity)

    def _to(self, model: nn.Module, batch):
        device = next(model.parameters()).device
        return batch.to(device) if device.type != "cpu" else batch

    # -- objectives --------------------------------------------------------------------------------
    def text_graph_objectives(
        self, model: PretrainingModel, entities: Tensor, generator: torch.Generator
    ) -> dict[str, ObjectiveResult]:
        """MLM and/or DRAGON link prediction on the texts of ``entities`` (``[b]``) in one forward
        pass: tokens masked (``mlm``) and subgraph edges held out (``link_prediction``), all drawn
        from ``generator`` in that order."""
        c = self.config
        batch = self.collate([self.example(int(e)) for e in entities])
        labels = held = negatives = None
        if "mlm" in self.objectives:
            maskable = maskable_tokens(batch.input_ids, batch.attention_mask, self.special_ids)
            inputs, labels = mask_tokens(
                batch.input_ids, maskable, mask_token_id=self.mask_token_id,
                vocab_size=model.word_embeddings().size(0), generator=generator,
                probability=c.mlm.probability, mask_fraction=c.mlm.mask_fraction,
                random_fraction=c.mlm.random_fraction,
            )  # fmt: skip
            batch = replace(batch, input_ids=inputs)
        if "link_prediction" in self.objectives:
            graph, held = drop_edges(
                batch.graph, self.kg.num_relations, c.link_prediction.drop_rate, generator
            )
            negatives, _ = corrupt_in_subgraph(
                held, batch.graph, c.link_prediction.negatives, generator
            )
            batch = replace(batch, graph=graph)
        batch = self._to(model, batch)
        out = model(batch)
        results = {}
        if labels is not None:
            labels = labels.to(out.last_hidden_state.device)
            where = labels != IGNORE  # [batch, seq]
            targets = labels[where]  # [m]
            logits = model.mlm_logits(out.last_hidden_state[where])  # [m, vocab]: masked only
            if len(targets):
                loss = F.cross_entropy(logits.float(), targets)
                accuracy = float((logits.argmax(-1) == targets).float().mean())
            else:
                loss, accuracy = logits.sum() * 0.0, 0.0
            results["mlm"] = ObjectiveResult(loss, len(targets), accuracy)
        if held is not None:
            x = out.node_states  # [num_nodes, node_channels]
            held, negatives = held.to(x.device), negatives.to(x.device)
            positive = model.link_head(x, held)  # [k]
            negative = model.link_head(x, negatives)  # [k, n]
            if len(held):
                loss, accuracy = negative_sampling_loss(positive, negative)
                results["link_prediction"] = ObjectiveResult(loss, len(held), float(accuracy))
            else:  # no edge held out in this batch: a zero that still has a graph
                results["link_prediction"] = ObjectiveResult(x.sum() * 0.0, 0, 0.0)
        return results

    def kepler_scores(
        self,
        model: PretrainingModel,
        triples: Tensor,
        replacements: Tensor,
        head_corrupted: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """TransE scores of ``triples`` and of their corruptions, entities encoded from their texts.

        Args:
            triples: ``[k, 3]`` (head, relation, tail) entity ids.
            replacements: ``[k, n]`` the entity that replaces the head or the tail in each corruption.
            head_corrupted: ``[k, n]`` bool, whether the head (else the tail) is replaced.

        Returns:
            ``(positive [k], negative [k, n])`` scores ``gamma - ||E(h) + r - E(t)||``, with ``E(e)``
            the fused LM's pooled output on ``e``'s text and subgraph (less the triple and its twin).
        """
        k, n = replacements.shape
        examples = []
        for (h, r, t), others in zip(triples.tolist(), replacements.tolist()):
            exclude = torch.tensor([[h, r, t], [t, r, h]])
            examples += [self.example(e, exclude) for e in (h, t, *others)]
        out = model(self._to(model, self.collate(examples)))
        vectors = out.pooled_output.view(k, 2 + n, -1)  # [k, 2 + n, hidden]
        head, tail, other = vectors[:, :1], vectors[:, 1:2], vectors[:, 2:]
        relation = model.kepler_relations(triples[:, 1].to(vectors.device))[:, None]  # [k, 1, d]
        gamma, norm = self.config.kepler.gamma, self.config.kepler.norm
        positive = transe_score(head, relation, tail, gamma, norm)[:, 0]  # [k]
        negative = torch.where(
            head_corrupted.to(vectors.device),
            transe_score(other, relation, tail, gamma, norm),  # (e', r, t)
            transe_score(head, relation, other, gamma, norm),  # (h, r, e')
        )  # [k, n]
        return positive, negative

    def kepler_objective(
        self, model: PretrainingModel, triples: Tensor, generator: torch.Generator
    ) -> ObjectiveResult:
        """KEPLER's loss on ``triples`` (``[k, 3]``) with ``kepler.negatives`` corruptions each, the
        corrupting entities drawn from the training pool with ``generator``."""
        n, pool = self.config.kepler.negatives, self.corpus.pool
        head_corrupted = torch.rand(len(triples), n, generator=generator) < 0.5
        replacements = pool[torch.randint(len(pool), (len(triples), n), generator=generator)]
        positive, negative = self.kepler_scores(model, triples, replacements, head_corrupted)
        loss, accuracy = negative_sampling_loss(positive, negative)
        return ObjectiveResult(loss, len(triples), float(accuracy))

    def objectives_of(
        self,
        model: PretrainingModel,
        entities: Tensor,
        generator: torch.Generator,
        kepler_triples: Tensor | None = None,
    ) -> dict[str, ObjectiveResult]:
        """Every objective of the run on ``entities``; KEPLER reads ``kepler_triples`` (default: one
        training triple per entity, drawn from ``generator``)."""
        results = {}
        if "mlm" in self.objectives or "link_prediction" in self.objectives:
            results.update(self.text_graph_objectives(model, entities, generator))
        if "kepler" in self.objectives:
            if kepler_triples is None:
                kepler_triples = self.corpus.train_triples.draw(entities, generator)
            results["kepler"] = self.kepler_objective(model, kepler_triples, generator)
        return results

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        return len(self.corpus.train)

    def training_step(
        self, model: PretrainingModel, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """The weighted sum of the objectives' losses on the training entities ``indices``; each
        objective's loss and accuracy are logged (``mlm_loss``, ``kepler_accuracy``, ...)."""
        results = self.objectives_of(model, self.corpus.train[indices], generator)
        loss = sum(self.config.weight(o) * r.loss for o, r in results.items())
        logs = {}
        for objective, r in results.items():
            logs[f"{PREFIX[objective]}_loss"] = float(r.loss.detach())
            logs[f"{PREFIX[objective]}_accuracy"] = r.accuracy
        return StepOutput(loss, logs)

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        corpus = getattr(self, "corpus", None)  # None before setup
        return split == "valid" and corpus is not None and len(corpus.valid) > 0

    def evaluate(self, model: PretrainingModel, split: str) -> dict[str, Any]:
        """Each objective's loss and accuracy on the held-out entities, with masks, held-out edges
        and negatives drawn from ``Generator(seed)`` (the same at every evaluation), and ``loss``, their
        weighted sum."""
        if not self.has_split(split):
            raise ValueError(
                f"pre-training evaluates on 'valid' (held-out entities), not {split!r}"
            )
        generator = torch.Generator().manual_seed(self.config.seed)
        entities, triples = self.corpus.valid, self.corpus.valid_triples
        size = self.config.evaluation.batch_size
        sums: dict[str, list[float]] = {o: [0.0, 0.0, 0] for o in self.objectives}
        for i in range(0, len(entities), size):
            results = self.objectives_of(
                model, entities[i : i + size], generator, triples[i : i + size]
            )
            for objective, r in results.items():
                total = sums[objective]
                total[0] += float(r.loss.detach()) * r.count
                total[1] += r.accuracy * r.count
                total[2] += r.count
        metrics: dict[str, Any] = {"loss": 0.0}
        for objective, (loss, accuracy, count) in sums.items():
            prefix = PREFIX[objective]
            metrics[f"{prefix}_loss"] = loss / count if count else 0.0
            metrics[f"{prefix}_accuracy"] = accuracy / count if count else 0.0
            metrics[f"{prefix}_count"] = count
            metrics["loss"] += self.config.weight(objective) * metrics[f"{prefix}_loss"]
        metrics["num_examples"] = len(entities)
        return metrics


__all__ = ["ObjectiveResult", "PretrainingTask"]
