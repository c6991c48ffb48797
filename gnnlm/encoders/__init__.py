"""GNN encoders over a knowledge graph: R-GCN, CompGCN, any stock PyG conv, and your own.

>>> from gnnlm.encoders import resolve_encoder
>>> enc = resolve_encoder("rgcn", in_channels=8, out_channels=8, num_relations=4)
>>> enc = resolve_encoder("pyg:GATConv", in_channels=8, out_channels=8, num_relations=4)

The protocol is :class:`GraphEncoder` (see :mod:`gnnlm.encoders.base`); plug-in forms are listed in
:func:`resolve_encoder`. A user's ``GraphEncoder`` subclass is found *by name* only after
``encoder_resolver.register(MyGNN)``; its dotted path ``"mypkg.mod:MyGNN"`` always works.
"""

from __future__ import annotations

from gnnlm.encoders.base import EncoderOutput, GraphEncoder
from gnnlm.encoders.compgcn import CompGCN, CompGCNConv, ccorr, compose
from gnnlm.encoders.pairs import PairCache, RelationalPairs
from gnnlm.encoders.pyg import ModuleEncoder, PyGConvEncoder
from gnnlm.encoders.representation import GNNRepresentation, build_gnn_representation
from gnnlm.encoders.resolver import (
    EncoderProtocolError,
    check_encoder,
    encoder_resolver,
    lookup_encoder,
    probe_encoder,
    resolve_encoder,
)
from gnnlm.encoders.rgcn import RGCN, RGCNConv

__all__ = [
    "RGCN",
    "CompGCN",
    "CompGCNConv",
    "EncoderOutput",
    "EncoderProtocolError",
    "GNNRepresentation",
    "GraphEncoder",
    "ModuleEncoder",
    "PairCache",
    "PyGConvEncoder",
    "RGCNConv",
    "RelationalPairs",
    "build_gnn_representation",
    "ccorr",
    "check_encoder",
    "compose",
    "encoder_resolver",
    "lookup_encoder",
    "probe_encoder",
    "resolve_encoder",
]
