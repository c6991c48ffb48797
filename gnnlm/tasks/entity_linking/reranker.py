"""The KG arm: a GNN over a document's candidate subgraph re-ranks its mentions' candidates jointly.

Input node states (the candidates and bridges of :mod:`~gnnlm.tasks.entity_linking.doc_graph`)::

    x_v = P h_v + role(v) + F f_v

with ``h_v`` the frozen LM encoding of the entity's text (the bi-encoder's entity table), ``f_v`` the
candidate's best string-match / prior features. A relational GNN (R-GCN by default) propagates over the
document's typed KB edges, so a candidate's state reflects which plausible candidates of the *other*
mentions are near it (coherence). The re-ranker adds to the bi-encoder score of mention ``m`` and
candidate ``e``

.. math::
    \\Delta(m, e) = \\mathrm{MLP}([g_e ; q_m ; g_e \\odot q_m]),\\quad q_m = Q \\bar h_m

(``g_e`` the GNN state of ``e``'s node in ``m``'s document). The MLP's last layer starts at zero, so a
fresh KG arm scores exactly as the bi-encoder; both are trained together with the same loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CoherenceReranker(nn.Module):
    """Score corrections from a document's candidate subgraph (module docstring).

    Args:
        hidden_size: width of the LM states (entity table and mentions).
        channels: GNN width.
        num_relations: edge types (relations and inverses).
        num_features: width of the candidate features.
        encoder: a registered encoder name (:func:`~gnnlm.encoders.resolve_encoder`).
        num_layers: GNN layers.
        encoder_kwargs: further encoder options.
    """

    def __init__(
        self,
        hidden_size: int,
        channels: int,
        num_relations: int,
        *,
        num_features: int,
        encoder: str = "rgcn",
        num_layers: int = 2,
        encoder_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        from gnnlm.encoders import resolve_encoder

        self.node = nn.Linear(hidden_size, channels)
        self.role = nn.Embedding(2, channels)
        self.feature = nn.Linear(num_features, channels)
        self.encoder = resolve_encoder(
            encoder, in_channels=channels, out_channels=channels, num_relations=num_relations,
            num_layers=num_layers, **(encoder_kwargs or {}),
        )  # fmt: skip
        self.relation: nn.Parameter | None = None
        if self.encoder.updates_relations or self.encoder.supports_edge_attr:
            self.relation = nn.Parameter(torch.empty(num_relations, channels))
        self.query = nn.Linear(hidden_size, channels)
        self.mlp = nn.Sequential(
            nn.Linear(3 * channels, channels), nn.GELU(), nn.Linear(channels, 1)
        )
        self.channels, self.num_relations = channels, num_relations
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.node, self.feature, self.query, self.mlp[0]):
            layer.reset_parameters()
        nn.init.normal_(self.role.weight, std=0.02)
        if self.relation is not None:
            nn.init.normal_(self.relation, std=0.02)
        nn.init.zeros_(self.mlp[2].weight)  # starts as the bi-encoder
        nn.init.zeros_(self.mlp[2].bias)

    def forward(
        self,
        graph,
        entity_table: Tensor,
        mentions: Tensor,
        candidate_node: Tensor,
    ) -> Tensor:
        """Score corrections of every mention's candidates.

        Args:
            graph: a PyG ``Batch`` of document graphs with ``n_id: [N]``, ``edge_index: [2, E]``,
                ``edge_type: [E]``, ``role: [N]``, ``features: [N, num_features]``.
            entity_table: ``[num_entities, hidden]`` entity text encodings.
            mentions: ``[M, hidden]`` pooled mention encodings.
            candidate_node: ``[M, K]`` the node (index into the batch's ``N`` nodes) of each
                candidate in its mention's document graph, ``-1`` at padding.

        Returns:
            ``[M, K]`` corrections (0 at padding).
        """
        x = (
            self.node(entity_table[graph.n_id])
            + self.role(graph.role)
            + self.feature(graph.features)
        )  # [N, channels]
        g = self.encoder(x, graph.edge_index, graph.edge_type, None, self.relation).x  # [N, c]
        real = candidate_node >= 0  # [M, K]
        states = g[candidate_node.clamp(min=0)]  # [M, K, channels]
        q = self.query(mentions).unsqueeze(1).expand_as(states)  # [M, K, channels]
        delta = self.mlp(torch.cat([states, q, states * q], -1)).squeeze(-1)  # [M, K]
        return delta.masked_fill(~real, 0.0)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(channels={self.channels}, relations={self.num_relations}, "
            f"encoder={type(self.encoder).__name__})"
        )


__all__ = ["CoherenceReranker"]
