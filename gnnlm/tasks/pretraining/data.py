"""The pre-training data: entity texts, the held-out entities, and KEPLER's triples.

* Every entity with text (a name or description beyond its identifier) reads as ``"name: description"``
  (:func:`~gnnlm.fusion.node_features.entity_texts`), linked to the entity over its name and read with
  the subgraph around it.
* ``num_valid`` entities with text are held out: their texts never enter training (not as an MLM
  text, a KEPLER triple end or a negative); the validation metrics read them.
* Training entities are drawn from the others that have a training triple whose other end is also a
  training-eligible entity; KEPLER draws, at every step, one such triple per entity of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gnnlm.config import ConfigError


@dataclass
class EntityTexts:
    """One text per entity and the span of its name.

    Attributes:
        texts: ``"name: description"`` (or the name) per entity id.
        name_lengths: characters of the name at the start of each text (the entity's mention).
        has_text: ``[num_entities]`` bool, whether the text is more than the entity's identifier.
    """

    texts: list[str]
    name_lengths: list[int]
    has_text: Tensor

    @classmethod
    def of(cls, kg) -> EntityTexts:
        """The texts of ``kg``.

        Raises:
            ConfigError: ``kg`` has no entity text.
        """
        from gnnlm.fusion.node_features import entity_texts

        if kg.entity_text is None:
            raise ConfigError(f"{kg.name}: pre-training needs entity names or descriptions")
        texts = entity_texts(kg)
        names = [kg.entity_label(i) for i in range(kg.num_entities)]
        has_text = torch.tensor([t != kg.entities.name(i) for i, t in enumerate(texts)])
        return cls(texts, [len(n) for n in names], has_text)


@dataclass
class IncidentTriples:
    """For each entity, the triples it is an end of (CSR): ``triples[ids[ptr[e]:ptr[e + 1]]]``.

    Attributes:
        triples: ``[T, 3]`` (head, relation, tail).
        ptr: ``[num_entities + 1]``.
        ids: ``[2T]`` row ids into ``triples`` (a triple appears under its head and its tail; once when
            head equals tail).
    """

    triples: Tensor
    ptr: Tensor
    ids: Tensor

    @classmethod
    def of(cls, triples: Tensor, num_entities: int) -> IncidentTriples:
        rows = torch.arange(len(triples))
        ends = torch.cat([triples[:, 0], triples[:, 2]])
        owners = torch.cat([rows, rows])
        loop = torch.cat(
            [torch.zeros(len(triples), dtype=torch.bool), triples[:, 0] == triples[:, 2]]
        )
        ends, owners = ends[~loop], owners[~loop]  # a self-loop once
        order = torch.argsort(ends, stable=True)
        counts = torch.bincount(ends, minlength=num_entities)
        ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return cls(triples, ptr, owners[order])

    def degree(self) -> Tensor:
        """``[num_entities]`` triples per entity."""
        return self.ptr[1:] - self.ptr[:-1]

    def draw(self, entities: Tensor, generator: torch.Generator) -> Tensor:
        """``[b, 3]``: one triple of each of ``entities`` (``[b]``, each with degree >= 1), uniformly."""
        start, degree = self.ptr[entities], self.degree()[entities]
        pick = (torch.rand(len(entities), generator=generator) * degree).long()
        return self.triples[self.ids[start + pick.minimum(degree - 1)]]


@dataclass
class PretrainingData:
    """The entities of a pre-training run.

    Attributes:
        texts: every entity's text.
        train: ``[num_train]`` training entities (an epoch's examples).
        valid: ``[num_valid]`` held-out entities.
        pool: ``[P]`` entities whose texts training may read (KEPLER's negatives come from here).
        train_triples: the training triples between entities of ``pool``.
        valid_triples: ``[num_valid, 3]`` one training-graph triple per held-out entity (drawn once),
            whose other end has text.
    """

    texts: EntityTexts
    train: Tensor
    valid: Tensor
    pool: Tensor
    train_triples: IncidentTriples
    valid_triples: Tensor

    @classmethod
    def build(cls, kg, num_train: int, num_valid: int, seed: int) -> PretrainingData:
        """Draw the held-out entities, then the training entities, from ``Generator(seed)``.

        Raises:
            ConfigError: no entity qualifies for training.
        """
        generator = torch.Generator().manual_seed(seed)
        texts = EntityTexts.of(kg)
        n = kg.num_entities
        train = kg.splits["train"]
        with_text = texts.has_text[train[:, 0]] & texts.has_text[train[:, 2]]
        readable = IncidentTriples.of(train[with_text], n)  # triples between entities with text
        candidates = torch.nonzero(readable.degree() > 0).flatten()
        valid = candidates[torch.randperm(len(candidates), generator=generator)[:num_valid]]
        held = torch.zeros(n, dtype=torch.bool)
        held[valid] = True
        pool = torch.nonzero(texts.has_text & ~held).flatten()
        between = ~held[readable.triples[:, 0]] & ~held[readable.triples[:, 2]]
        train_triples = IncidentTriples.of(readable.triples[between], n)
        anchors = torch.nonzero(train_triples.degree() > 0).flatten()
        if len(anchors) == 0:
            raise ConfigError(
                f"{kg.name}: no entity with text has a training triple to another such entity"
            )
        train_entities = anchors[torch.randperm(len(anchors), generator=generator)[:num_train]]
        valid_triples = readable.draw(valid, generator) if len(valid) else torch.empty(0, 3).long()
        return cls(texts, train_entities, valid, pool, train_triples, valid_triples)


__all__ = ["EntityTexts", "IncidentTriples", "PretrainingData"]
