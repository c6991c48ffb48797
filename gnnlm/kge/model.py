"""Link-prediction models: a representation module composed with an interaction.

This is PyKEEN's ``ERModel`` split with the GNN made first-class: a *representation* computes entity and
relation representations (an embedding table, a GNN over the training graph, a text encoder), and an
:class:`~gnnlm.kge.interaction.Interaction` scores them. The training engine and the evaluator only use
the contract below, so any representation trains with any interaction.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from gnnlm.kge.interaction import Interaction


class Representation(nn.Module):
    """Computes representations of all entities and all relations at once.

    ``forward()`` returns ``(entity: [num_entities, entity_dim], relation: [num_relations, relation_dim])``.
    ``num_relations`` here counts every relation the model scores (including inverse relations when the
    model is trained with reciprocal triples).
    """

    num_entities: int
    num_relations: int

    #: True when single rows can be read without computing the others (a free embedding table, no
    #: encoder over the graph): :meth:`gather` then reads only the requested rows, and with
    #: ``sparse=True`` their gradient is row-sparse (see :mod:`gnnlm.train.sparse`).
    supports_row_gather: ClassVar[bool] = False

    def forward(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def gather(
        self, entities: Tensor, relations: Tensor, *, sparse: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The representations of some entities and relations only.

        Args:
            entities: ``[n]`` entity ids (repeats allowed).
            relations: ``[m]`` relation ids.
            sparse: give the underlying tables a row-sparse gradient (only meaningful when
                :attr:`supports_row_gather`; ignored otherwise).

        Returns:
            ``(entity [n, entity_dim], relation [m, relation_dim])``. This default computes every
            representation with :meth:`forward` and indexes them (the reference path).
        """
        ent, rel = self()
        return ent[entities], rel[relations]

    def post_step(self) -> None:
        """Called by training loops after every optimiser step (e.g. to re-apply constraints)."""


class LinkPredictionModel(nn.Module):
    """``score(h, r, t) = interaction(rep_entity[h], rep_relation[r], rep_entity[t])``.

    Args:
        representation: module whose ``forward()`` gives all entity and relation representations.
        interaction: the scoring function.
        reciprocal: the representation holds ``2 * num_relations`` relations, relation
            ``r + num_relations`` being the inverse of ``r``; head queries ``(?, r, t)`` are then answered
            as the tail queries ``(t, r + num_relations, ?)`` (Lacroix et al. 2018, Dettmers et al. 2018).

    Every scoring method accepts precomputed ``reps`` (the output of :meth:`representations`) so that an
    evaluator computes a GNN's representations once for a whole split, not once per batch.
    :attr:`num_relations` is the number of relations of the KG (without inverses); relation ids in
    ``[num_relations, 2 * num_relations)`` are valid in :meth:`score_hrt` / :meth:`score_t` of a
    reciprocal model and mean the inverse relations.
    """

    def __init__(
        self, representation: Representation, interaction: Interaction, *, reciprocal: bool = False
    ) -> None:
        super().__init__()
        if reciprocal and representation.num_relations % 2:
            raise ValueError(
                "a reciprocal model needs a representation with 2 * num_relations relations, got "
                f"num_relations={representation.num_relations}"
            )
        self.representation = representation
        self.interaction = interaction
        self.reciprocal = reciprocal

    @property
    def num_entities(self) -> int:
        return self.representation.num_entities

    @property
    def num_relations(self) -> int:
        """Relations of the KG, without the inverse relations of a reciprocal model."""
        n = self.representation.num_relations
        return n // 2 if self.reciprocal else n

    def representations(self) -> tuple[Tensor, Tensor]:
        """``(entity [num_entities, d_e], relation [num_relations (x2 if reciprocal), d_r])``."""
        return self.representation()

    def score_hrt(self, triples: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 3]`` (h, r, t) ids -> ``[B]`` scores."""
        ent, rel = reps if reps is not None else self.representations()
        # index_select, not ent[ids]: the same rows, and its backward (index_add_) is ~1.5x faster on
        # CPU than advanced indexing's (index_put_ with accumulate)
        triples = triples.to(ent.device)  # a no-op on the same device, as ent[ids] allowed
        h, t = ent.index_select(0, triples[:, 0]), ent.index_select(0, triples[:, 2])  # [B, d_e]
        return self.interaction(h, rel.index_select(0, triples[:, 1]), t)

    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (h, r) ids -> ``[B, num_entities]`` scores of every tail."""
        ent, rel = reps if reps is not None else self.representations()
        hr = hr.to(ent.device)
        h, r = ent.index_select(0, hr[:, 0]), rel.index_select(0, hr[:, 1])  # [B, d_e], [B, d_r]
        return self.interaction.score_t(h, r, ent)

    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (r, t) ids -> ``[B, num_entities]`` scores of every head.

        A reciprocal model answers ``(?, r, t)`` with ``score_t((t, r + num_relations))``.
        """
        if self.reciprocal:
            hr = torch.stack([rt[:, 1], rt[:, 0] + self.num_relations], dim=1)  # [B, 2]
            return self.score_t(hr, reps=reps)
        ent, rel = reps if reps is not None else self.representations()
        rt = rt.to(ent.device)
        r, t = rel.index_select(0, rt[:, 0]), ent.index_select(0, rt[:, 1])  # [B, d_r], [B, d_e]
        return self.interaction.score_h(ent, r, t)

    def gather_hrt(self, triples: Tensor, *, sparse: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, 3]`` (h, r, t) ids -> the ``(h [B, d_e], r [B, d_r], t [B, d_e])`` representations.

        Reads only the rows the triples use when the representation supports it
        (:attr:`Representation.supports_row_gather`); ``sparse=True`` makes the gradient of the tables
        row-sparse. ``self.interaction(*self.gather_hrt(triples))`` equals :meth:`score_hrt`.
        """
        pairs, rel = self.gather_pairs(triples, sparse=sparse)
        h, t = pairs.unbind(0)  # [B, d_e] each (no slice-backward fills)
        return h, rel, t

    def gather_pairs(
        self,
        triples: Tensor,
        reps: tuple[Tensor, Tensor] | None = None,
        *,
        sparse: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """``[B, 3]`` ids -> ``(pairs [2, B, d_e], r [B, d_r])``: heads in ``pairs[0]``, tails in
        ``pairs[1]``, read as one ``[2B]`` gather.

        From the precomputed ``reps`` (:meth:`representations`) when given, otherwise from the
        representation's rows as :meth:`gather_hrt` reads them (``sparse`` as there).
        """
        entities = torch.cat([triples[:, 0], triples[:, 2]])  # [2B]: heads, then tails
        if reps is not None:
            ent, rel = reps
            entities, relations = entities.to(ent.device), triples[:, 1].to(ent.device)
            ent, rel = ent.index_select(0, entities), rel.index_select(0, relations)
        else:
            ent, rel = self.representation.gather(entities, triples[:, 1], sparse=sparse)
        return ent.reshape(2, len(triples), -1), rel

    def score_pairs(self, pairs: Tensor, rel: Tensor) -> Tensor:
        """Scores ``[B]`` of :meth:`gather_pairs`' output: ``interaction(pairs[0], rel, pairs[1])``.

        Uses the interaction's ``score_pairs(pairs, rel)`` where it has one (TransE, DistMult,
        ComplEx, RotatE: a hand-written backward that writes the heads' and tails' gradients into
        one ``[2, B, d_e]`` tensor, which the ``[2B]`` gather takes as it is; through ``unbind`` the
        two would be stacked again, a copy of the whole block).
        """
        score_pairs = getattr(self.interaction, "score_pairs", None)
        if score_pairs is not None:
            return score_pairs(pairs, rel)
        h, t = pairs.unbind(0)
        return self.interaction(h, rel, t)

    def forward(self, triples: Tensor) -> Tensor:
        return self.score_hrt(triples)

    def post_step(self) -> None:
        """Call after every optimiser step: re-applies the representation's constraints, if any."""
        if isinstance(self.representation, Representation):
            self.representation.post_step()

    def regularization_factors(
        self,
        *,
        entities: Tensor | None = None,
        relations: Tensor | None = None,
        reps: tuple[Tensor, Tensor] | None = None,
    ) -> list[Tensor]:
        """The factors an L2 / N3 regulariser penalises for the rows a batch used.

        Args:
            entities: ``[n]`` entity ids (e.g. the heads and tails of a batch, repeats allowed).
            relations: ``[m]`` relation ids.
            reps: precomputed :meth:`representations`.

        Returns:
            A list of ``[n, k]`` / ``[m, k']`` tensors (the interaction's
            :meth:`~gnnlm.kge.interaction.Interaction.entity_factors` /
            :meth:`~gnnlm.kge.interaction.Interaction.relation_factors`, e.g. complex moduli for
            ComplEx; relations are absent when the interaction does not regularise them). L2 is
            ``sum(f ** 2)``, N3 is ``sum(f.abs() ** 3)`` over the list.
        """
        ent, rel = reps if reps is not None else self.representations()
        return self.row_regularization_factors(
            ent.index_select(0, entities) if entities is not None else None,
            rel.index_select(0, relations) if relations is not None else None,
        )

    def row_regularization_factors(
        self, entity_rows: Tensor | None = None, relation_rows: Tensor | None = None
    ) -> list[Tensor]:
        """:meth:`regularization_factors` of already gathered rows (``[n, d_e]`` / ``[m, d_r]``)."""
        out = []
        if entity_rows is not None:
            out.append(self.interaction.entity_factors(entity_rows))
        if relation_rows is not None:
            factors = self.interaction.relation_factors(relation_rows)
            if factors is not None:
                out.append(factors)
        return out

    def extra_repr(self) -> str:
        return f"reciprocal={self.reciprocal}"
