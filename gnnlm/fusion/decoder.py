"""A decoder LM (GPT-2, Llama, Qwen2, ...) with a GNN over each example's KG subgraph.

Two ways for the graph to reach a decoder, alone or together (``knowledge: [xattn, prompt]``):

* ``xattn``: **gated cross-attention** from the tokens to the example's nodes after chosen LM layers
  (Flamingo, Alayrac et al., 2022, https://arxiv.org/abs/2204.14198)

  .. math:: H \\leftarrow H + \\tanh(g_i)\\, W_o\\, \\mathrm{Attn}(\\mathrm{LN}(H) \\to X)

  with :math:`X` the GNN's final node states. The nodes never read the text, so no token sees a later
  token through them; the LM's own causal mask is untouched. :math:`W_o` starts at zero behind an open
  gate (``gate_init: open``, as the encoder modes, :mod:`gnnlm.fusion.injection`): a fresh model is the
  LM exactly and :math:`W_o` learns from the first step.
* ``prompt``: **graph prompts**: a pooled GNN state (of the whole subgraph, or of the linked entities)
  projected into ``k`` soft-prompt embeddings placed before the text (G-Retriever, He et al., 2024,
  https://arxiv.org/abs/2402.07630; GraphToken, Perozzi et al., 2024; KoPA's prefix adapter, Zhang et
  al., 2023), trained with the LM frozen or with LoRA. Prompts are inputs, not residuals: they change
  the output from the start.

The third style, verbalised triples in the prompt, needs no model change
(:func:`gnnlm.fusion.verbalize.verbalize_triples`); ``knowledge: []`` is the plain decoder.

The GNN (any :mod:`gnnlm.encoders` encoder, CompGCN by default), its node features (learned or a
``text`` table such as :func:`~gnnlm.fusion.text_node_features`) and the role embedding of linked
entities are those of :class:`~gnnlm.fusion.FusedLM`; batches are
:class:`~gnnlm.fusion.TextGraphBatch` made by :class:`~gnnlm.fusion.decoder_batch.DecoderCollator`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, Config, checked
from gnnlm.fusion.attention import MaskedCrossAttention, TanhGate
from gnnlm.fusion.batch import TextGraphBatch
from gnnlm.fusion.decoder_batch import IGNORE_INDEX, position_ids
from gnnlm.fusion.injection import GATE_INITS, FusionState, InjectionContext
from gnnlm.fusion.model import FusedLM
from gnnlm.fusion.modes.entity import EntityTable
from gnnlm.lm.causal import CausalBackbone, load_causal_lm

#: the graph styles a decoder model implements
KNOWLEDGE = ("xattn", "prompt")
PROMPT_SOURCES = ("subgraph", "entities")
CONFIG_NAME = "decoder_config.json"
GRAPH_WEIGHTS = "graph.safetensors"
ADAPTER_WEIGHTS = "adapters.safetensors"
LORA_NAME = "lora.json"
LM_FOLDER = "lm"


@dataclass
class DecoderFusionConfig(Config):
    """How to build a :class:`GraphDecoder`.

    Attributes:
        lm: ``"tiny-gpt2"`` / ``"tiny-llama"`` / ``"tiny-qwen2"`` (random, from a config), a folder or a
            hub id of a causal LM.
        lm_kwargs: sizes of a tiny LM (``hidden_size``, ``num_layers``, ``num_heads``,
            ``max_positions``): a small decoder trained from its config.
        attn_implementation: ``"eager"`` / ``"sdpa"`` / ``None`` (HF default).
        knowledge: graph styles, a subset of ``xattn`` and ``prompt``; ``[]`` is the plain LM.
        xattn_layers: LM layers after which tokens cross-attend to the nodes (``[]``: every layer).
        xattn_heads: cross-attention heads (default: the LM's).
        num_prompt_tokens: ``k`` soft prompts.
        prompt_source: what the prompts are made from: ``subgraph`` (mean of every node state of the
            example) or ``entities`` (mean of its linked entities' states).
        encoder, encoder_kwargs, node_channels, num_roles, gate_init: as in
            :class:`~gnnlm.fusion.FusionConfig`.
        num_gnn_layers: GNN depth (the GNN runs before the LM; nodes never read the text).
        num_entities, num_relations: KG sizes (relations with inverses).
        node_features: ``learned`` or ``text`` (a ``[num_entities, d]`` table given to the model).
        node_feature_channels: width of that table (set by the model).
    """

    lm: str = "tiny-gpt2"
    lm_kwargs: dict[str, Any] = field(default_factory=dict)
    attn_implementation: str | None = None
    knowledge: list[str] = field(default_factory=lambda: ["xattn"])
    xattn_layers: list[int] = field(default_factory=list)
    xattn_heads: int | None = None
    num_prompt_tokens: int = checked(4, AT_LEAST_1, "4")
    prompt_source: str = "subgraph"
    encoder: str = "compgcn"
    encoder_kwargs: dict[str, Any] = field(default_factory=lambda: {"batch_norm": False})
    num_gnn_layers: int = checked(2, AT_LEAST_1, "2")
    node_channels: int = checked(64, AT_LEAST_1, "64")
    num_entities: int = checked(0, AT_LEAST_0, "the KG's entity count")
    num_relations: int = checked(0, AT_LEAST_0, "the KG's relation count with inverses")
    num_roles: int = checked(2, AT_LEAST_1, "2")
    node_features: str = "learned"
    node_feature_channels: int | None = None
    gate_init: str = "open"

    def __post_init__(self) -> None:
        if isinstance(self.knowledge, str):
            self.knowledge = [self.knowledge]
        unknown = [k for k in self.knowledge if k not in KNOWLEDGE]
        if unknown or len(set(self.knowledge)) != len(self.knowledge):
            raise ValueError(
                f"knowledge: expected distinct styles among {', '.join(KNOWLEDGE)}, got "
                f"{self.knowledge!r}"
            )
        for name, choices in (
            ("prompt_source", PROMPT_SOURCES),
            ("node_features", ("learned", "text")),
            ("gate_init", GATE_INITS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {choices}, got {getattr(self, name)!r}")

    @property
    def uses_graph(self) -> bool:
        return bool(self.knowledge)


@dataclass
class GraphContext:
    """The graph side of a batch, computed once (and reused at every generation step).

    Attributes:
        node_states: ``[num_nodes, node_channels]`` final GNN states (PyG layout), or ``None``.
        nodes: ``[batch, max_nodes, node_channels]`` the same, padded per example (for ``xattn``).
        node_mask: ``[batch, max_nodes]`` True for real nodes.
        prompts: ``[batch, k, hidden]`` soft-prompt embeddings (for ``prompt``).
    """

    node_states: Tensor | None = None
    nodes: Tensor | None = None
    node_mask: Tensor | None = None
    prompts: Tensor | None = None


@dataclass
class DecoderOutput:
    """What :class:`GraphDecoder` returns.

    Attributes:
        logits: ``[batch, seq, vocab]`` next-token logits at the text's positions (soft prompts
            dropped); ``[batch, 1, vocab]`` or ``[num_targets, vocab]`` as ``forward(logits=...)``
            asks.
        loss: mean cross-entropy of the shifted ``batch.labels`` (``None`` without labels).
        node_states: ``[num_nodes, node_channels]`` final GNN states, or ``None``.
        gates: ``[num_xattn_layers]`` current ``tanh`` gates of the cross-attention, or ``None``.
    """

    logits: Tensor
    loss: Tensor | None = None
    node_states: Tensor | None = None
    gates: Tensor | None = None


class GraphPrompt(nn.Module):
    r"""Soft prompts from a graph vector: :math:`P = s \cdot \mathrm{MLP}(z) \in \mathbb{R}^{k \times d}`.

    :math:`s` is the RMS of the LM's token embeddings (a buffer), so the prompts start at the scale the
    LM's layers expect whatever the LM.

    Args:
        node_channels: width of :math:`z`.
        hidden_size: the LM's width :math:`d`.
        num_tokens: :math:`k`.
        scale: :math:`s`.
    """

    def __init__(
        self, node_channels: int, hidden_size: int, num_tokens: int, *, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.num_tokens, self.hidden_size = num_tokens, hidden_size
        self.mlp = nn.Sequential(
            nn.Linear(node_channels, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, num_tokens * hidden_size),
        )
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, z: Tensor) -> Tensor:
        """``[batch, node_channels]`` -> ``[batch, k, hidden]`` prompt embeddings."""
        out = self.mlp(z) * self.scale  # [batch, k * hidden]
        return out.view(z.size(0), self.num_tokens, self.hidden_size)

    def extra_repr(self) -> str:
        return f"tokens={self.num_tokens}, hidden={self.hidden_size}"


class GraphDecoder(nn.Module):
    """A causal LM with graph cross-attention and / or graph prompts (see the module docstring).

    Args:
        config: what to build.
        lm: an already loaded :class:`~gnnlm.lm.CausalBackbone` (default:
            ``load_causal_lm(config.lm, ...)``).
        node_feature_table: ``[num_entities, d]`` node features for ``node_features: text``.
        seed: seed of a tiny LM's random weights (when ``lm`` is not given).

    Attributes:
        lm: the decoder.
        encoder: the GNN (``None`` without graph styles).
        xattn: one :class:`~gnnlm.fusion.MaskedCrossAttention` per layer of ``xattn_layers``.
        gate: their :class:`~gnnlm.fusion.TanhGate`.
        prompt: the :class:`GraphPrompt` (``None`` without ``prompt``).
    """

    def __init__(
        self,
        config: DecoderFusionConfig,
        *,
        lm: CausalBackbone | None = None,
        node_feature_table: Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        self.lm = lm if lm is not None else load_causal_lm(
            config.lm, attn_implementation=config.attn_implementation, seed=seed,
            tiny_kwargs=config.lm_kwargs or None,
        )  # fmt: skip
        num_layers = self.lm.num_layers
        layers = tuple(sorted(set(config.xattn_layers))) or tuple(range(num_layers))
        bad = [i for i in layers if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f"xattn_layers {bad} outside the LM's layers [0, {num_layers})")
        self.context = InjectionContext(
            hidden_size=self.lm.hidden_size, num_heads=self.lm.num_heads, num_lm_layers=num_layers,
            fused_layers=layers if "xattn" in config.knowledge else (),
            node_channels=config.node_channels, num_entities=config.num_entities,
            num_relations=config.num_relations, gate_init=config.gate_init,
        )  # fmt: skip
        self.encoder = self.node_embedding = self.node_projection = None
        self.role_embedding = self.relation_embedding = None
        self.xattn = self.gate = self.prompt = None
        if config.uses_graph:
            self._build_graph(node_feature_table)
        if "xattn" in config.knowledge:
            d, dn = self.lm.hidden_size, config.node_channels
            heads = config.xattn_heads or self.lm.num_heads
            self.xattn = nn.ModuleList(MaskedCrossAttention(d, dn, heads) for _ in layers)
            self.gate = TanhGate(len(layers), init=self.context.gate_value)
            if config.gate_init == "open":  # zero W_o behind an open gate: the exact LM at init
                with torch.no_grad():
                    for attn in self.xattn:
                        attn.o.weight.zero_()
                        attn.o.bias.zero_()
        if "prompt" in config.knowledge:
            weight = self.lm.model.get_input_embeddings().weight
            scale = float(weight.detach().float().pow(2).mean().sqrt())
            self.prompt = GraphPrompt(
                config.node_channels, self.lm.hidden_size, config.num_prompt_tokens, scale=scale
            )

    # -- the graph side ------------------------------------------------------------------------------
    def _build_graph(self, table: Tensor | None) -> None:
        from gnnlm.encoders import resolve_encoder

        c = self.config
        if c.num_entities <= 0 or c.num_relations <= 0:
            raise ValueError("a decoder with graph knowledge needs num_entities and num_relations")
        self.encoder = resolve_encoder(
            c.encoder, in_channels=c.node_channels, out_channels=c.node_channels,
            num_relations=c.num_relations, **{"num_layers": c.num_gnn_layers, **c.encoder_kwargs},
        )  # fmt: skip
        if c.node_features == "learned":
            if table is not None:
                raise ValueError("node_feature_table given but node_features is 'learned'")
            self.node_embedding = EntityTable(c.num_entities, c.node_channels)
        else:
            if table is None or table.dim() != 2 or table.size(0) != c.num_entities:
                shape = None if table is None else tuple(table.shape)
                raise ValueError(
                    f"node_features: text needs a [num_entities={c.num_entities}, d] "
                    f"node_feature_table, got {shape}"
                )
            c.node_feature_channels = int(table.size(1))
            self.node_embedding = EntityTable(
                c.num_entities, int(table.size(1)), weight=table, trainable=False
            )
            self.node_projection = nn.Linear(int(table.size(1)), c.node_channels)
        self.role_embedding = nn.Embedding(c.num_roles + 1, c.node_channels)
        nn.init.normal_(self.role_embedding.weight, std=0.02)
        if self.encoder.updates_relations or self.encoder.supports_edge_attr:
            self.relation_embedding = nn.Parameter(torch.empty(c.num_relations, c.node_channels))
            nn.init.normal_(self.relation_embedding, std=0.02)

    def node_roles(self, batch: TextGraphBatch) -> Tensor:
        """``[num_nodes]`` role ids (:meth:`FusedLM.node_roles`: ``k + 1`` for the ``k``-th linked
        entity, capped; 0 for context nodes)."""
        return FusedLM.node_roles(self, batch)  # reads only batch and config.num_roles

    def encode_graph(self, batch: TextGraphBatch) -> GraphContext:
        """Run the GNN over the batch's subgraphs; cross-attention keys and / or soft prompts."""
        if self.encoder is None:
            return GraphContext()
        graph = batch.graph
        x = self.node_embedding(graph.n_id)
        if self.node_projection is not None:
            x = self.node_projection(x)
        x = x + self.role_embedding(self.node_roles(batch))  # [num_nodes, node_channels]
        relation = self.relation_embedding
        for j in range(self.encoder.num_layers):
            x, relation = self.encoder.layer_forward(
                j, x, graph.edge_index, graph.edge_type, None, relation
            )
        context = GraphContext(node_states=x)
        if self.xattn is not None:
            state = FusionState(batch, node_states=x)
            context.nodes, context.node_mask = state.dense_nodes()  # [B, M, dn], [B, M]
        if self.prompt is not None:
            if self.config.prompt_source == "entities":
                z = FusedLM.pool_linked(x, batch)  # [batch, node_channels]
            else:
                total = x.new_zeros(batch.batch_size, x.size(-1)).index_add(0, graph.batch, x)
                counts = (graph.ptr[1:] - graph.ptr[:-1]).clamp_min(1).to(x.dtype)  # [batch]
                z = total / counts.unsqueeze(-1)  # [batch, node_channels]
            context.prompts = self.prompt(z)  # [batch, k, hidden]
        return context

    # -- forward -------------------------------------------------------------------------------------
    def forward(
        self, batch: TextGraphBatch, *, graph: GraphContext | None = None, logits: str = "all"
    ) -> DecoderOutput:
        """Next-token logits of a text + subgraph batch.

        Args:
            batch: ``input_ids`` / ``attention_mask`` ``[batch, seq]`` (left or right padded), the
                subgraphs, and optionally ``labels`` ``[batch, seq]`` (``-100`` where no loss).
            graph: :meth:`encode_graph`'s output for this batch's subgraphs (computed when ``None``).
            logits: which positions get vocabulary logits (the LM head over a 30k-150k vocabulary is
                most of a small decoder's cost): ``"all"`` (``[batch, seq, vocab]``), ``"last"``
                (``[batch, 1, vocab]``, for generation) or ``"loss"`` (only the positions with a
                target, ``[num_targets, vocab]``: the same loss, a fraction of the cost).

        Returns:
            :class:`DecoderOutput`.
        """
        lm = self.lm
        if graph is None:
            graph = self.encode_graph(batch)
        mask = batch.attention_mask  # [batch, seq]
        embeds = lm.token_embeddings(batch.input_ids)  # [batch, seq, hidden]
        k = 0
        if graph.prompts is not None:
            k = graph.prompts.size(1)
            embeds = torch.cat(
                [graph.prompts.to(embeds.dtype), embeds], 1
            )  # [batch, k + seq, hidden]
            mask = torch.cat([mask.new_ones(mask.size(0), k), mask], 1)
        positions = position_ids(mask)  # [batch, k + seq]
        hidden = lm.embed(inputs_embeds=embeds, position_ids=positions)
        inputs = lm.causal_inputs(mask, hidden, positions)
        for i in range(lm.num_layers):
            hidden = lm.layer_forward(i, hidden, inputs)
            j = self.context.fused_index(i)
            if j is not None and graph.nodes is not None:
                ctx = self.xattn[j](
                    hidden, graph.nodes, graph.node_mask
                )  # [batch, k + seq, hidden]
                hidden = (
                    hidden + self.gate(j) * ctx
                )  # out of place: never write into the LM's states
        hidden = hidden[:, k:]  # [batch, seq, hidden]: the soft prompts predict nothing
        loss = out = None
        if logits == "loss":
            if batch.labels is None:
                raise ValueError('logits="loss" needs a batch with labels')
            targets = batch.labels[:, 1:]  # position t predicts labels[t + 1]
            keep = targets != IGNORE_INDEX  # [batch, seq - 1]
            out = lm.lm_logits(hidden[:, :-1][keep])  # [num_targets, vocab]
            loss = F.cross_entropy(out.float(), targets[keep])
        elif logits in ("all", "last"):
            out = lm.lm_logits(
                hidden if logits == "all" else hidden[:, -1:]
            )  # [batch, seq|1, vocab]
            if batch.labels is not None and logits == "all":
                loss = causal_lm_loss(out, batch.labels)
        else:
            raise ValueError(f"logits must be 'all', 'last' or 'loss', got {logits!r}")
        gates = None if self.gate is None else self.gate.weight.detach().tanh()
        return DecoderOutput(out, loss, graph.node_states, gates)

    # -- parameters ----------------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``lm`` (with LoRA adapters), ``gnn`` (GNN, node features, roles, relations), ``fusion``
        (cross-attention and prompt projector) and ``gates``."""
        groups: dict[str, list[nn.Parameter]] = {"lm": [], "gnn": [], "fusion": [], "gates": []}
        for name, p in self.named_parameters():
            if name.startswith("lm."):
                groups["lm"].append(p)
            elif name.startswith(("encoder.", "node_", "role_", "relation_")):
                groups["gnn"].append(p)
            elif name.startswith("gate."):
                groups["gates"].append(p)
            else:
                groups["fusion"].append(p)
        return groups

    # -- persistence ---------------------------------------------------------------------------------
    def save_pretrained(
        self, folder: str | os.PathLike, tokenizer=None, *, include_lm: bool = True
    ) -> None:
        """Write the model as safetensors + JSON (nothing pickled).

        ``decoder_config.json``; ``graph.safetensors`` (GNN, node features, cross-attention, gates,
        prompt projector); with LoRA adapters, ``adapters.safetensors`` and ``lora.json``; and ``lm/``,
        the base LM without its adapters in HF format (HF's ``save_pretrained``). With
        ``include_lm=False`` the base LM is not written and :meth:`from_pretrained` loads
        ``config.lm`` again (a hub id or folder of frozen weights: the adapters, GNN and projector are
        all a LoRA run needs to store).
        """
        from gnnlm.strategies.partial import has_lora
        from gnnlm.train.checkpoint import module_tensors, save_tensors

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2))
        state = module_tensors(self)
        save_tensors(
            folder / GRAPH_WEIGHTS, {k: v for k, v in state.items() if not k.startswith("lm.")}
        )
        lm_state = {k[len("lm.model.") :]: v for k, v in state.items() if k.startswith("lm.model.")}
        if has_lora(self):
            settings = getattr(self, "lora_settings", None)
            if settings is None:
                raise ValueError("LoRA adapters found but not added by GraphDecoder.add_lora")
            (folder / LORA_NAME).write_text(json.dumps(settings.to_dict(), indent=2))
            save_tensors(
                folder / ADAPTER_WEIGHTS, {k: v for k, v in lm_state.items() if "lora_" in k}
            )
        if include_lm:
            base = {
                k.replace(".base_layer.", "."): v for k, v in lm_state.items() if "lora_" not in k
            }
            self.lm.model.save_pretrained(folder / LM_FOLDER, state_dict=base)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder / LM_FOLDER)

    def add_lora(self, settings) -> int:
        """Wrap the LM's linear layers with LoRA adapters (:func:`gnnlm.strategies.partial.apply_lora`:
        the LM's own weights freeze, GNN and projector stay trainable). Returns the adapter size."""
        from gnnlm.strategies.partial import apply_lora

        self.lora_settings = settings
        return apply_lora(self, settings)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> GraphDecoder:
        """Rebuild what :meth:`save_pretrained` wrote (base LM, adapters, GNN, projector)."""
        from gnnlm.strategies.config import LoraSettings
        from gnnlm.train.checkpoint import load_module_tensors, load_tensors

        folder = Path(folder)
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found (not a GraphDecoder.save_pretrained folder?)"
            )
        config = DecoderFusionConfig.from_dict(json.loads(path.read_text()), source=str(path))
        lm_source = folder / LM_FOLDER
        lm = load_causal_lm(
            str(lm_source) if lm_source.is_dir() else config.lm,
            attn_implementation=config.attn_implementation,
            tiny_kwargs=None if lm_source.is_dir() else config.lm_kwargs or None,
        )
        graph, _ = load_tensors(folder / GRAPH_WEIGHTS)
        table = None
        if config.node_features == "text":  # placeholder, overwritten by the saved table
            table = torch.zeros(config.num_entities, int(config.node_feature_channels))
        model = cls(config, lm=lm, node_feature_table=table)
        if (folder / LORA_NAME).is_file():
            settings = json.loads((folder / LORA_NAME).read_text())
            model.add_lora(LoraSettings.from_dict(settings, source=str(folder / LORA_NAME)))
        tensors = dict(graph)
        if (folder / ADAPTER_WEIGHTS).is_file():
            adapters, _ = load_tensors(folder / ADAPTER_WEIGHTS)
            tensors.update({f"lm.model.{k}": v for k, v in adapters.items()})
        expected = model.state_dict()
        for key in expected:  # the base LM's weights are already in place (under base_layer names)
            if key.startswith("lm.") and key not in tensors:
                tensors[key] = expected[key]
        load_module_tensors(model, tensors, source=str(folder))
        return model

    def extra_repr(self) -> str:
        c = self.config
        layers = list(self.context.fused_layers)
        return (
            f"knowledge={c.knowledge}, xattn_layers={layers}, prompt_tokens={c.num_prompt_tokens}"
        )


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy: position ``t`` predicts ``labels[t + 1]``.

    Args:
        logits: ``[batch, seq, vocab]``.
        labels: ``[batch, seq]`` target ids, ``-100`` where there is no target.
    """
    shifted = logits[:, :-1].reshape(-1, logits.size(-1))  # [batch * (seq - 1), vocab]
    targets = labels[:, 1:].reshape(-1)  # [batch * (seq - 1)]
    return F.cross_entropy(shifted.float(), targets, ignore_index=IGNORE_INDEX)


__all__ = [
    "KNOWLEDGE",
    "DecoderFusionConfig",
    "DecoderOutput",
    "GraphContext",
    "GraphDecoder",
    "GraphPrompt",
    "causal_lm_loss",
]
