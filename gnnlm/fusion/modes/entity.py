"""Entity injection: ERNIE-style fusion of entity representations into the tokens of each mention."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gnnlm.fusion.attention import TanhGate
from gnnlm.fusion.injection import FusionState, Injection, InjectionContext

ENTITY_SOURCES = ("learned", "kge", "gnn")


class EntityTable(nn.Module):
    """A table of entity vectors: learned, or a (frozen or trainable) copy of KGE representations.

    Args:
        num_entities: rows.
        channels: width.
        weight: ``[num_entities, channels]`` initial values (e.g. ``kge_model.representations()[0]``).
        trainable: whether the table is a parameter (else a buffer, saved but not trained).
    """

    def __init__(
        self,
        num_entities: int,
        channels: int,
        *,
        weight: Tensor | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if weight is not None and tuple(weight.shape) != (num_entities, channels):
            raise ValueError(
                f"entity table must be [{num_entities}, {channels}], got {tuple(weight.shape)}"
            )
        self.num_entities, self.channels, self.trainable = num_entities, channels, trainable
        init = (
            weight.detach().clone().float()
            if weight is not None
            else torch.empty(num_entities, channels)
        )
        if trainable:
            self.weight = nn.Parameter(init)
        else:
            self.register_buffer("weight", init)
        if weight is None:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        """``[*]`` entity ids -> ``[*, channels]``."""
        return self.weight[ids]

    def extra_repr(self) -> str:
        return f"{self.num_entities}, {self.channels}, trainable={self.trainable}"


class EntityInjection(Injection):
    r"""Entity vectors fused into the hidden states of the tokens that mention them.

    For a token :math:`j` inside a mention of entity :math:`e` (ERNIE, Zhang et al., 2019,
    https://arxiv.org/abs/1905.07129, with a gated residual instead of ERNIE's replaced states):

    .. math::
        h_j' = h_j + \tanh(g_i)\, W_o\,\mathrm{GELU}(W_t\,\mathrm{LN}(h_j) + W_e\, v_e)

    Tokens outside mentions are unchanged; :math:`W_o` starts at zero and the gate open (``gate_init:
    open``, default) or the gate at zero (``closed``). :math:`v_e` comes from ``source``:

    * ``"learned"``: an entity table trained with the task;
    * ``"kge"``: a KGE model's entity representations (``LinkPredictionModel.representations()[0]``),
      given as ``entity_embeddings`` to :class:`~gnnlm.fusion.model.FusedLM`, frozen unless ``trainable``;
    * ``"gnn"``: the current GNN node state of the entity in the example's subgraph. This instance then
      sets ``uses_graph_encoder`` (the only mode whose need for a GNN depends on a setting).

    Args:
        context: sizes.
        source: ``learned``, ``kge`` or ``gnn``.
        entity_channels: width of the learned table (default: ``node_channels``).
        entity_embeddings: ``[num_entities, d]`` initial table for ``kge``.
        trainable: whether a ``kge`` table is trained (``learned`` always is).
    """

    name: ClassVar[str] = "entity"

    @classmethod
    def required_tensors(cls, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """``entity_embeddings`` with ``source: kge``."""
        return ("entity_embeddings",) if kwargs.get("source") == "kge" else ()

    def __init__(
        self,
        context: InjectionContext,
        *,
        source: str = "learned",
        entity_channels: int | None = None,
        entity_embeddings: Tensor | None = None,
        trainable: bool = False,
    ) -> None:
        super().__init__(context)
        if source not in ENTITY_SOURCES:
            raise ValueError(f"entity source must be one of {ENTITY_SOURCES}, got {source!r}")
        self.source = source
        self.uses_graph_encoder = source == "gnn"
        self.table: EntityTable | None = None
        if source == "gnn":
            channels = context.node_channels
        elif source == "kge":
            if entity_embeddings is None:
                raise ValueError("entity source 'kge' needs entity_embeddings [num_entities, d]")
            channels = int(entity_embeddings.size(1))
            self.table = EntityTable(
                context.num_entities, channels, weight=entity_embeddings, trainable=trainable
            )
        else:
            channels = entity_channels or context.node_channels
            self.table = EntityTable(context.num_entities, channels)
        k, d = len(context.fused_layers), context.hidden_size
        self.entity_channels = channels
        self.norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(k))
        self.token_proj = nn.ModuleList(nn.Linear(d, d) for _ in range(k))
        self.entity_proj = nn.ModuleList(nn.Linear(channels, d, bias=False) for _ in range(k))
        self.out = nn.ModuleList(nn.Linear(d, d) for _ in range(k))
        self.gate = TanhGate(k, init=context.gate_value)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for modules in (self.norm, self.token_proj, self.entity_proj, self.out):
            for module in modules:
                module.reset_parameters()
        self.gate.reset_parameters()
        self.zero_outputs()

    def output_modules(self) -> list[nn.Module]:
        """``W_o`` of each fused layer."""
        return list(self.out)

    def _mentions(self, state: FusionState) -> tuple[Tensor, Tensor]:
        """``([m] flat token positions inside a mention, [m] their batched node ids)``, once per batch."""
        cached = state.cache.get("entity")
        if cached is None:
            token_node = state.batch.token_node.reshape(-1)  # [batch * seq]
            rows = (token_node >= 0).nonzero().squeeze(-1)  # [m]
            cached = state.cache["entity"] = (rows, token_node[rows])
        return cached

    def layer_delta(self, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
        j = self.context.fused_index(i)
        if j is None:
            return None
        # Only mention tokens get a delta, so only their rows are computed (the others are exact zeros).
        rows, node = self._mentions(state)  # [m], [m]
        if self.source == "gnn":
            vectors = state.node_states[node]  # [m, dn]
        else:
            vectors = self.table(state.batch.graph.n_id[node])  # [m, de]
        d = hidden.size(-1)
        h = hidden.reshape(-1, d).index_select(0, rows)  # [m, d]
        fused = self.token_proj[j](self.norm[j](h)) + self.entity_proj[j](vectors.to(h.dtype))
        out = self.gate(j) * self.out[j](nn.functional.gelu(fused))  # [m, d]
        delta = hidden.new_zeros(hidden.numel() // d, d).index_copy(0, rows, out)
        return delta.view_as(hidden)  # [batch, seq, d]

    def extra_repr(self) -> str:
        return f"source={self.source}, entity_channels={self.entity_channels}, layers={list(self.context.fused_layers)}"
