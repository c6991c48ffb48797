"""A GNN encoder over the training graph as a link-prediction :class:`~gnnlm.kge.model.Representation`.

:func:`build_gnn_representation` is what the training engine calls when a config names
``model.encoder``. The representation holds initial entity (and, when the encoder needs them, relation)
embeddings, the encoder and the training graph with inverse edges (``kg.homogeneous(add_inverse=True)``:
edge type ``r + R`` is the inverse of ``r``). Relation representations for *scoring* come from the
encoder when it updates them (CompGCN: its output for relation ``r`` scores relation ``r``; with
reciprocal training the inverse relation ``r + R`` is the graph's inverse edge type, so both agree), and
from a separate relation table otherwise (R-GCN + DistMult, as in the R-GCN paper).

Mini-batch (subgraph) mode, for graphs whose full forward does not fit: inside
``with representation.subgraph(seed_entities):`` a forward runs the encoder only on the
``k``-hop in-neighbourhood of the seeds (PyG's ``k_hop_subgraph``, ``k = num_layers``, plus one hop for
encoders that normalise by the source's degree such as CompGCN) and returns exact rows for the seeds and
``NaN`` rows elsewhere, so a stray use of a non-seed entity is loud. Typical use in a negative-sampling
loop::

    seeds = torch.cat([pos[:, [0, 2]], neg[:, [0, 2]]]).flatten()
    with model.representation.subgraph(seeds):
        reps = model.representations()
        loss = loss_fn(model.score_hrt(pos, reps), model.score_hrt(neg, reps))

Batch norm (CompGCN) uses the subgraph's batch statistics in training mode; in eval mode, subgraph rows
equal full-graph rows exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import k_hop_subgraph

from gnnlm.encoders.base import GraphEncoder
from gnnlm.encoders.resolver import (
    EncoderProtocolError,
    filter_kwargs,
    lookup_encoder,
    probe_encoder,
    resolve_encoder,
)
from gnnlm.kge.model import Representation

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph


class GNNRepresentation(Representation):
    """Entity / relation representations computed by a :class:`GraphEncoder` over a fixed graph.

    Args:
        encoder: the GNN.
        edge_index: ``[2, E]`` the graph (row 0 = source), over ``num_entities`` nodes.
        edge_type: ``[E]`` edge types in ``[0, num_graph_relations)``.
        num_entities: number of entities (nodes).
        num_relations: number of relations the link-prediction model *scores* (``2 R`` with
            reciprocal training, else ``R``).
        num_graph_relations: number of edge types in the graph (``2 R`` with inverse edges).
        in_channels: width of the initial entity embeddings.
        relation_channels: width of the initial relation embeddings fed to the encoder, or ``None``
            when the encoder uses no relation features (R-GCN).
        relation_dim: width of the relations the interaction scores: of the scoring relation table
            when the encoder does not update relations; otherwise the encoder's relation output
            (``[*, encoder_relation_channels]``) is mapped to it by a learned linear projection when the
            widths differ (e.g. CompGCN + RotatE, whose relations are ``d`` phases for ``2d``-wide
            entities, or + ConvE, whose entities carry an extra bias column).
        encoder_relation_channels: width of the relations the encoder returns (default: ``relation_dim``).
    """

    def __init__(
        self,
        encoder: GraphEncoder,
        edge_index: Tensor,
        edge_type: Tensor,
        *,
        num_entities: int,
        num_relations: int,
        num_graph_relations: int,
        in_channels: int,
        relation_channels: int | None,
        relation_dim: int,
        encoder_relation_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.num_graph_relations = num_graph_relations
        # The graph is derived from the KG, so it is not part of the checkpoint.
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_type", edge_type, persistent=False)
        self.entity_embedding = nn.Embedding(num_entities, in_channels)
        self.relation_embedding = (
            nn.Embedding(num_graph_relations, relation_channels)
            if relation_channels is not None
            else None
        )
        self.score_relation = (
            None if encoder.updates_relations else nn.Embedding(num_relations, relation_dim)
        )
        enc_rel = encoder_relation_channels or relation_dim
        self.relation_projection = (
            nn.Linear(enc_rel, relation_dim, bias=False)
            if encoder.updates_relations and enc_rel != relation_dim
            else None
        )
        self._seeds: Tensor | None = None
        self._num_hops: int | None = None
        self._reset_embeddings()  # not the encoder: an instance passed in keeps its weights

    def _reset_embeddings(self) -> None:
        for emb in (self.entity_embedding, self.relation_embedding, self.score_relation):
            if emb is not None:
                nn.init.xavier_uniform_(emb.weight)

    def reset_parameters(self) -> None:
        """Re-initialise the embeddings and every encoder submodule that has ``reset_parameters``."""
        self._reset_embeddings()
        if self.relation_projection is not None:
            self.relation_projection.reset_parameters()
        for module in self.encoder.modules():
            if module is not self.encoder and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()

    @property
    def default_num_hops(self) -> int:
        """Receptive field of the encoder: one hop per layer (+1 for source-degree normalisers)."""
        return self.encoder.num_layers + int(self.encoder.needs_source_degree)

    def forward(self) -> tuple[Tensor, Tensor]:
        """``(entity [num_entities, d_e], relation [num_relations, d_r])``.

        Inside :meth:`subgraph`, entity rows other than the seeds are ``NaN``.
        """
        relation = self.relation_embedding.weight if self.relation_embedding is not None else None
        if self._seeds is None:
            out = self.encoder(
                self.entity_embedding.weight, self.edge_index, self.edge_type, None, relation
            )
            entity = out.x
        else:
            seeds = self._seeds
            subset, sub_edge_index, mapping, edge_mask = k_hop_subgraph(
                seeds,
                self._num_hops or self.default_num_hops,
                self.edge_index,
                relabel_nodes=True,
                num_nodes=self.num_entities,
            )
            out = self.encoder(
                self.entity_embedding(subset),  # [S, d_in]
                sub_edge_index,
                self.edge_type[edge_mask],
                None,
                relation,
            )
            entity = out.x.new_full((self.num_entities, out.x.size(-1)), float("nan"))
            entity = entity.index_put((seeds,), out.x[mapping])  # [N, d]
        if self.score_relation is not None:
            return entity, self.score_relation.weight
        if out.relation is None:
            raise EncoderProtocolError(
                f"{type(self.encoder).__name__} sets updates_relations=True but returned "
                "relation=None"
            )
        relation = out.relation[: self.num_relations]  # [num_relations, encoder_relation_channels]
        if self.relation_projection is not None:
            relation = self.relation_projection(relation)  # [num_relations, relation_dim]
        return entity, relation

    @contextlib.contextmanager
    def subgraph(self, seeds: Tensor, num_hops: int | None = None) -> Iterator[None]:
        """Compute representations only for ``seeds`` (``[S]`` entity ids) on their k-hop subgraph.

        Args:
            seeds: entity ids whose rows must be exact (duplicates are fine).
            num_hops: subgraph radius; default :attr:`default_num_hops`.
        """
        previous = (self._seeds, self._num_hops)
        self._seeds = torch.unique(seeds.to(self.edge_index.device))
        self._num_hops = num_hops
        try:
            yield
        finally:
            self._seeds, self._num_hops = previous

    def extra_repr(self) -> str:
        return (
            f"num_entities={self.num_entities}, num_relations={self.num_relations}, "
            f"num_edges={self.edge_index.size(1)}"
        )


def _interaction_dims(interaction: Any, embedding_dim: int) -> tuple[int, int]:
    """``(entity_dim, relation_dim)`` the interaction scores, from the interaction itself."""
    from gnnlm.kge import resolve_interaction

    # An instance knows its widths exactly (TuckER's relation_dim, ConvE's bias column); a name or
    # class is built with its defaults.
    return resolve_interaction(interaction, embedding_dim).representation_dims(embedding_dim)


def build_gnn_representation(
    encoder: str | type | nn.Module,
    kg: KnowledgeGraph,
    *,
    embedding_dim: int,
    interaction: Any,
    reciprocal: bool,
    encoder_kwargs: dict[str, Any] | None = None,
) -> GNNRepresentation:
    """A GNN representation over ``kg``'s training graph, sized for ``interaction``.

    Args:
        encoder: any form :func:`~gnnlm.encoders.resolve_encoder` accepts.
        kg: the knowledge graph; the encoder runs on ``kg.homogeneous("train", add_inverse=True)``.
        embedding_dim: base width ``d``; entity and relation widths are the interaction's
            :meth:`~gnnlm.kge.Interaction.representation_dims` of ``d``.
        interaction: the scoring function (name, class or instance; pass the instance when it was
            built with non-default widths), for its representation widths.
        reciprocal: the model scores ``2 R`` relations (inverse relation ``r + R`` = the graph's inverse
            edge type) instead of ``R``.
        encoder_kwargs: constructor arguments (override the defaults ``in_channels``,
            ``out_channels``, ``num_relations``, ``relation_channels`` derived here).

    Raises:
        EncoderProtocolError: the encoder does not meet the protocol or gives the wrong widths.
    """
    entity_dim, relation_dim = _interaction_dims(interaction, embedding_dim)
    graph = kg.homogeneous("train", add_inverse=True)
    num_graph_relations = 2 * kg.num_relations
    num_scored = num_graph_relations if reciprocal else kg.num_relations
    defaults = {
        "in_channels": entity_dim,
        "out_channels": entity_dim,
        "num_relations": num_graph_relations,
        "relation_channels": entity_dim,
    }
    if isinstance(encoder, nn.Module):
        if encoder_kwargs:
            raise ValueError(
                f"encoder_kwargs {sorted(encoder_kwargs)} given with an encoder instance"
            )
        enc = resolve_encoder(encoder)
    else:
        cls = lookup_encoder(encoder)
        kwargs = {**filter_kwargs(cls, defaults), **(encoder_kwargs or {})}
        enc = resolve_encoder(cls, **kwargs)
    uses_relations = enc.supports_edge_attr or enc.updates_relations
    relation_channels = entity_dim if uses_relations else None
    # Catch wrong widths and broken plug-ins now, with a message, not deep inside training.
    probe = probe_encoder(
        enc,
        in_channels=entity_dim,
        num_relations=num_graph_relations,
        relation_channels=relation_channels,
        expected_channels=entity_dim,
    )
    return GNNRepresentation(
        enc,
        graph.edge_index,
        graph.edge_type,
        num_entities=kg.num_entities,
        num_relations=num_scored,
        num_graph_relations=num_graph_relations,
        in_channels=entity_dim,
        relation_channels=relation_channels,
        relation_dim=relation_dim,
        # CompGCN's relations are as wide as its entities; a projection maps them to the
        # interaction's relation width when that differs (see GNNRepresentation).
        encoder_relation_channels=probe.relation.size(1) if enc.updates_relations else None,
    )
