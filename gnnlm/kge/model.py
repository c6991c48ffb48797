"""Link-prediction models: a representation module composed with an interaction.

This is PyKEEN's ``ERModel`` split with the GNN made first-class: a *representation* computes entity and
relation representations (an embedding table, a GNN over the training graph, a text encoder), and an
:class:`~gnnlm.kge.interaction.Interaction` scores them. The training engine and the evaluator only use
the contract below, so any representation trains with any interaction.
"""

from __future__ import annotations

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

    def forward(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class LinkPredictionModel(nn.Module):
    """``score(h, r, t) = interaction(rep_entity[h], rep_relation[r], rep_entity[t])``.

    Args:
        representation: module whose ``forward()`` gives all entity and relation representations.
        interaction: the scoring function.

    Every scoring method accepts precomputed ``reps`` (the output of :meth:`representations`) so that an
    evaluator computes a GNN's representations once for a whole split, not once per batch.
    """

    def __init__(self, representation: Representation, interaction: Interaction) -> None:
        super().__init__()
        self.representation = representation
        self.interaction = interaction

    @property
    def num_entities(self) -> int:
        return self.representation.num_entities

    @property
    def num_relations(self) -> int:
        return self.representation.num_relations

    def representations(self) -> tuple[Tensor, Tensor]:
        """``(entity [num_entities, d_e], relation [num_relations, d_r])``."""
        return self.representation()

    def score_hrt(self, triples: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 3]`` (h, r, t) ids -> ``[B]`` scores."""
        ent, rel = reps if reps is not None else self.representations()
        return self.interaction(ent[triples[:, 0]], rel[triples[:, 1]], ent[triples[:, 2]])

    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (h, r) ids -> ``[B, num_entities]`` scores of every tail."""
        ent, rel = reps if reps is not None else self.representations()
        return self.interaction.score_t(ent[hr[:, 0]], rel[hr[:, 1]], ent)

    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (r, t) ids -> ``[B, num_entities]`` scores of every head."""
        ent, rel = reps if reps is not None else self.representations()
        return self.interaction.score_h(ent, rel[rt[:, 0]], ent[rt[:, 1]])

    def forward(self, triples: Tensor) -> Tensor:
        return self.score_hrt(triples)
