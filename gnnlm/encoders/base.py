"""The plug-in protocol for GNN encoders over a knowledge graph.

An encoder maps the KG's homogeneous view to entity representations (and, when it updates them, relation
representations). Link prediction (:class:`gnnlm.kge.model.Representation`) and LM fusion both use this
protocol; fusion steps through it one layer at a time (:meth:`GraphEncoder.layer_forward`) so that GNN
layer ``i`` can run right after LM layer ``i``.

Users plug in an encoder in three ways: a registered name (``encoder: compgcn``), a dotted path
(``encoder: mypkg.encoders:MyGNN``), or an instance. A subclass only has to build ``self.layers`` (any
modules) and, if its layers have an unusual signature, override :meth:`layer_forward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        x: ``[num_nodes, out_channels]`` node (entity) representations after the last layer.
        relation: ``[num_relations, relation_channels]`` relation representations after the last layer,
            or ``None`` when the encoder does not update them.
        hidden_states: the node states after each layer (``num_layers`` tensors), when asked for.
    """

    x: Tensor
    relation: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None


class GraphEncoder(nn.Module):
    """Base class of GNN encoders: a stack of ``self.layers`` with activation and dropout between them.

    Capabilities are class-level flags, never ``hasattr`` sniffing:

    * ``supports_edge_type``: the layers use ``edge_type`` (relational GNNs);
    * ``supports_edge_attr``: the layers use ``edge_attr`` (e.g. relation embeddings per edge);
    * ``updates_relations``: :meth:`layer_forward` returns new relation representations (CompGCN).
    """

    supports_edge_type: ClassVar[bool] = False
    supports_edge_attr: ClassVar[bool] = False
    updates_relations: ClassVar[bool] = False

    layers: nn.ModuleList

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def layer_forward(
        self,
        i: int,
        x: Tensor,
        edge_index: Tensor,
        edge_type: Tensor | None = None,
        edge_attr: Tensor | None = None,
        relation: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Run layer ``i`` (including its activation / dropout).

        Args:
            i: layer index in ``[0, num_layers)``.
            x: ``[num_nodes, channels]`` node states.
            edge_index: ``[2, num_edges]``, row 0 = source (head).
            edge_type: ``[num_edges]`` relation id per edge.
            edge_attr: ``[num_edges, edge_channels]`` edge features.
            relation: ``[num_relations, relation_channels]`` relation representations.

        Returns:
            ``(x, relation)``: new node states ``[num_nodes, channels_i]`` and relation representations
            (unchanged unless ``updates_relations``).
        """
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_type: Tensor | None = None,
        edge_attr: Tensor | None = None,
        relation: Tensor | None = None,
        *,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        """Run all layers; shapes as in :meth:`layer_forward`."""
        hidden = []
        for i in range(self.num_layers):
            x, relation = self.layer_forward(i, x, edge_index, edge_type, edge_attr, relation)
            if output_hidden_states:
                hidden.append(x)
        return EncoderOutput(x, relation, tuple(hidden) if output_hidden_states else None)
