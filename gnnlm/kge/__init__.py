"""Knowledge-graph embedding: scoring functions (interactions), representations and link-prediction models.

>>> import torch
>>> from gnnlm.kge import build_kge_model
>>> model = build_kge_model("complex", num_entities=10, num_relations=3, embedding_dim=8)
>>> model.score_t(torch.tensor([[0, 1]])).shape
torch.Size([1, 10])

Interactions are found through :data:`interaction_resolver` by registered name (``"transe"``,
``"distmult"``, ``"complex"``, ``"rotate"``, ``"tucker"``, ``"conve"``; case, ``-`` and ``_`` are ignored), by class,
by instance, or by dotted path ``"pkg.module:MyInteraction"``. A user's subclass of
:class:`~gnnlm.kge.interaction.Interaction` is found *by name* only after
``interaction_resolver.register(MyInteraction)``; the class itself or its dotted path always works.
"""

from __future__ import annotations

from typing import Any

from gnnlm.kge.interaction import Interaction
from gnnlm.kge.interactions import ComplEx, ConvE, DistMult, RotatE, TransE, TuckER
from gnnlm.kge.model import LinkPredictionModel, Representation
from gnnlm.kge.representation import EmbeddingRepresentation
from gnnlm.utils.registry import DottedPathResolver

#: Registry of scoring functions: ``interaction_resolver.make("complex")``.
interaction_resolver: DottedPathResolver[Interaction] = DottedPathResolver(
    [TransE, DistMult, ComplEx, RotatE, TuckER, ConvE], base=Interaction, suffix=""
)


def resolve_interaction(
    interaction: str | type[Interaction] | Interaction,
    embedding_dim: int | None = None,
    **kwargs: Any,
) -> Interaction:
    """Instantiate an interaction from a name, dotted path, class or instance.

    ``embedding_dim`` is passed to interactions that need it (``requires_embedding_dim``, e.g. TuckER).
    """
    cls = interaction_resolver.lookup(interaction)
    if isinstance(interaction, Interaction):
        if kwargs:
            raise ValueError(
                f"interaction_kwargs {sorted(kwargs)} given with an instance {interaction!r}"
            )
        return interaction
    if cls.requires_embedding_dim:
        if embedding_dim is None:
            raise ValueError(f"{cls.__name__} needs embedding_dim")
        kwargs.setdefault("embedding_dim", embedding_dim)
    return interaction_resolver.make(cls, kwargs)


def build_kge_model(
    interaction: str | type[Interaction] | Interaction,
    num_entities: int,
    num_relations: int,
    embedding_dim: int,
    *,
    interaction_kwargs: dict[str, Any] | None = None,
    reciprocal: bool = False,
    representation: Representation | None = None,
) -> LinkPredictionModel:
    """Compose an interaction with an embedding table (or the given representation).

    Args:
        interaction: registered name, dotted path, class or instance.
        num_entities: number of entities.
        num_relations: number of relations of the KG (without inverses).
        embedding_dim: base width ``d``; the tables are ``entity_dim_factor * d`` /
            ``relation_dim_factor * d`` wide (see :meth:`Interaction.representation_dims`).
        interaction_kwargs: constructor arguments of the interaction.
        reciprocal: add an inverse relation per relation and answer head queries with them.
        representation: replaces the embedding table (e.g. a GNN representation); it must then hold
            ``num_relations`` (``2 * num_relations`` when reciprocal) relations of the right widths.

    Returns:
        The :class:`LinkPredictionModel`.
    """
    inter = resolve_interaction(interaction, embedding_dim, **(interaction_kwargs or {}))
    total_relations = 2 * num_relations if reciprocal else num_relations
    if representation is None:
        entity_dim, relation_dim = inter.representation_dims(embedding_dim)
        representation = EmbeddingRepresentation(
            num_entities,
            total_relations,
            embedding_dim,
            entity_dim=entity_dim,
            relation_dim=relation_dim,
            entity_initializer=inter.reset_entity_,
            relation_initializer=inter.reset_relation_,
            entity_constrainer=inter.constrain_entity_ if inter.constrains_entities else None,
        )
    elif (representation.num_entities, representation.num_relations) != (
        num_entities,
        total_relations,
    ):
        raise ValueError(
            f"representation has {representation.num_entities} entities and "
            f"{representation.num_relations} relations; expected {num_entities} and {total_relations}"
            + (" (reciprocal: twice the KG's relations)" if reciprocal else "")
        )
    return LinkPredictionModel(representation, inter, reciprocal=reciprocal)


__all__ = [
    "ComplEx",
    "ConvE",
    "DistMult",
    "EmbeddingRepresentation",
    "Interaction",
    "LinkPredictionModel",
    "Representation",
    "RotatE",
    "TransE",
    "TuckER",
    "build_kge_model",
    "interaction_resolver",
    "resolve_interaction",
]
