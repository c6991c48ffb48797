"""The plug-in protocol for GNN encoders over a knowledge graph.

An encoder maps the KG's homogeneous view to entity representations (and, when it updates them, relation
representations). Link prediction (:class:`gnnlm.kge.model.Representation`) and LM fusion both use this
protocol; fusion steps through it one layer at a time (:meth:`GraphEncoder.layer_forward`) so that GNN
layer ``i`` can run right after LM layer ``i``.

Users plug in an encoder in three ways: a registered name (``encoder: compgcn``), a dotted path
(``encoder: mypkg.encoders:MyGNN``), or an instance (see :func:`gnnlm.encoders.resolve_encoder`). A
subclass only has to call ``super().__init__(act=..., dropout=...)``, build ``self.layers`` (any modules)
and set its capability flags; the default :meth:`GraphEncoder.layer_forward` calls layer ``i`` as

* ``layer(x, edge_index)`` plus ``edge_type=`` when ``supports_edge_type`` and ``edge_attr=`` when
  ``supports_edge_attr`` (``edge_attr`` defaults to ``relation[edge_type]``: relation embeddings per edge);
* ``layer(x, edge_index, edge_type, relation) -> (x, relation)`` when ``updates_relations``;

then applies the activation and dropout (between layers; also after the last one with ``act_last``).
Layers with another signature override :meth:`GraphEncoder.layer_forward`.

Example (a whole encoder)::

    class MyGNN(GraphEncoder):
        supports_edge_type = True

        def __init__(self, in_channels, out_channels, num_relations, num_layers=2):
            super().__init__(act="relu", dropout=0.1)
            self.layers = nn.ModuleList(
                RGCNConv(in_channels if i == 0 else out_channels, out_channels, num_relations)
                for i in range(num_layers)
            )
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn
from torch_geometric.nn.resolver import activation_resolver

from gnnlm.encoders.dropout import dropout


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
    * ``updates_relations``: :meth:`layer_forward` returns new relation representations (CompGCN);
    * ``needs_source_degree``: a node's output depends on its neighbours' degrees (symmetric
      normalisation), so an exact subgraph needs one hop more than ``num_layers``.
    """

    supports_edge_type: ClassVar[bool] = False
    supports_edge_attr: ClassVar[bool] = False
    updates_relations: ClassVar[bool] = False
    needs_source_degree: ClassVar[bool] = False

    layers: nn.ModuleList

    def __init__(
        self,
        *,
        act: str | Callable | None = None,
        dropout: float = 0.0,
        act_last: bool = False,
    ) -> None:
        """Set the between-layer activation and dropout used by the default :meth:`layer_forward`.

        Args:
            act: activation (a name for PyG's ``activation_resolver`` such as ``"relu"``/``"tanh"``,
                a module or a function), or ``None`` for none.
            dropout: feature dropout probability after the activation
                (:func:`gnnlm.encoders.dropout.dropout`).
            act_last: also apply activation and dropout after the last layer.
        """
        super().__init__()
        self.act = activation_resolver(act) if isinstance(act, str) else act
        self.dropout = float(dropout)
        self.act_last = bool(act_last)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def post_layer(self, i: int, x: Tensor) -> Tensor:
        """Activation and dropout after layer ``i`` (skipped after the last unless ``act_last``)."""
        if i < self.num_layers - 1 or getattr(self, "act_last", False):
            act = getattr(self, "act", None)
            if act is not None:
                x = act(x)
            x = dropout(x, getattr(self, "dropout", 0.0), self.training)
        return x

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
        layer = self.layers[i]
        if self.updates_relations:
            x, relation = layer(x, edge_index, edge_type, relation)
            return self.post_layer(i, x), relation
        kwargs = {}
        if self.supports_edge_type:
            kwargs["edge_type"] = edge_type
        if self.supports_edge_attr:
            if edge_attr is None:
                if relation is None or edge_type is None:
                    raise ValueError(
                        f"{type(self).__name__} uses edge_attr: pass edge_attr [num_edges, d] or "
                        "relation [num_relations, d] together with edge_type"
                    )
                edge_attr = relation[edge_type]  # [E, d]
            kwargs["edge_attr"] = edge_attr
        return self.post_layer(i, layer(x, edge_index, **kwargs)), relation

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
