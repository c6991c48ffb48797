"""The fused model: a HuggingFace encoder and a GNN over per-example KG subgraphs, run layer by layer.

::

    h = embed(text);  x = node_features(n_id) + role              # learned / kge / text features
    for i in LM layers:
        h = LM_layer_i(h, mask + sum of attention biases)          # relation injection
        if i is one of the top K (paired with GNN layer j):
            x = GNN_layer_j(x, subgraph batch)                       # ONE call for the whole batch
            every mode reads this x (and h):
                delta_m = mode_m(h, x)                              # graph / entity / memory
                u_m     = node update of mode_m                     # graph: gate * Attn(x -> h)
            h = h + adaptive_gate * sum_m delta_m                   # modes in canonical (name) order
            x = x + sum_m u_m                                       # after all modes ran
    pooled = pool(h);  late outputs (dual tower)

Every delta is a gated residual whose output projection starts at zero with its gate open
(``gate_init: open``; or the gate at zero: ``closed``), so a freshly built model returns exactly the LM's
hidden states (and the plain GNN's node states). The list order of ``config.injection`` does not change
the model: modes are built (random draws included) and run in a canonical order, and no mode sees another
mode's node update of the same layer. LM activations are never written in place.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from gnnlm.fusion.batch import TextGraphBatch
from gnnlm.fusion.config import FusionConfig
from gnnlm.fusion.injection import FusionState, InjectionContext, canonical_order
from gnnlm.fusion.modes.entity import EntityTable
from gnnlm.fusion.outputs import FusionOutput
from gnnlm.fusion.registry import injection_resolver
from gnnlm.lm import TransformerBackbone, load_lm, load_tokenizer, pool, save_lm
from gnnlm.utils.atomic import atomic_write

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "fusion.safetensors"
LM_FOLDER = "lm"


def _resolve_encoder(spec, **kwargs) -> nn.Module:
    from gnnlm.encoders import resolve_encoder  # the encoder stage; imported on use

    return resolve_encoder(spec, **kwargs)


class FusedLM(nn.Module):
    """A transformer LM fused with a GNN over KG subgraphs through configurable injection modes.

    Args:
        config: what to build (:class:`~gnnlm.fusion.config.FusionConfig`).
        lm: an already loaded :class:`~gnnlm.lm.TransformerBackbone` (default: ``load_lm(config.lm)``).
        encoder: a GNN instance to use instead of ``config.encoder`` (must have ``num_fused_layers``
            layers of width ``node_channels``).
        entity_embeddings: ``[num_entities, d]`` KGE entity representations, e.g.
            ``kge_tables(kge_model)[0]``; given to each mode that asks for them
            (:meth:`~gnnlm.fusion.injection.Injection.required_tensors`: entity and memory injection
            with ``source: kge``).
        relation_embeddings: ``[num_relations, d]`` KGE relation representations (likewise; memory
            injection with ``include_relations``).
        node_feature_table: ``[num_entities, d]`` initial node features for ``config.node_features``
            ``"kge"`` (default: ``entity_embeddings``) or ``"text"``
            (:func:`~gnnlm.fusion.node_features.text_node_features`); projected to ``node_channels``.

    Attributes:
        lm: the transformer.
        injections: the modes, in config order (``nn.ModuleDict`` keyed by ``Injection.name``); they are
            built and run in :func:`~gnnlm.fusion.injection.canonical_order`.
        encoder: the GNN (``None`` when no mode needs node states).
        node_embedding: the node feature table (with the GNN): ``[num_entities, node_channels]`` learned
            states (``node_features: learned``), or the given ``[num_entities, d]`` KGE / text table,
            frozen unless ``config.node_features_trainable``.
        node_projection: ``Linear(d, node_channels)`` of a ``kge`` / ``text`` table (else ``None``).
        role_embedding: added to the initial state of each example's linked entities by their order
            (first, second, ... linked entity; the rest share one "context" role), as QA-GNN marks
            question / answer / context nodes, so the GNN can tell the entities the text is about
            from their neighbourhood.
        relation_embedding: ``[num_relations, node_channels]`` for encoders that use or update relation
            representations (CompGCN).
    """

    def __init__(
        self,
        config: FusionConfig,
        *,
        lm: TransformerBackbone | None = None,
        encoder: nn.Module | None = None,
        entity_embeddings: Tensor | None = None,
        relation_embeddings: Tensor | None = None,
        node_feature_table: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.lm = (
            lm
            if lm is not None
            else load_lm(config.lm, attn_implementation=config.attn_implementation)
        )
        num_layers = self.lm.num_layers
        k = min(config.num_fused_layers, num_layers)
        if k < 1:
            raise ValueError(f"num_fused_layers must be >= 1, got {config.num_fused_layers}")
        if entity_embeddings is not None:
            config.kge_channels = int(entity_embeddings.size(1))
        if relation_embeddings is not None:
            config.kge_relations = int(relation_embeddings.size(0))
        self.context = InjectionContext(
            hidden_size=self.lm.hidden_size,
            num_heads=self.lm.num_heads,
            num_lm_layers=num_layers,
            fused_layers=tuple(range(num_layers - k, num_layers)),
            node_channels=config.node_channels,
            num_entities=config.num_entities,
            num_relations=config.num_relations,
            gate_init=config.gate_init,
        )
        kge = {"entity_embeddings": entity_embeddings, "relation_embeddings": relation_embeddings}
        classes: dict[str, tuple[str, type]] = {}  # mode name -> (config spelling, class)
        for spec in config.injection:
            cls = injection_resolver.lookup(spec)
            if cls.name in classes:
                raise ValueError(f"injection mode {spec!r} listed twice in {config.injection}")
            classes[cls.name] = (spec, cls)
        built = {}
        for name in canonical_order(classes):  # random draws independent of the list order
            spec, cls = classes[name]
            kwargs = dict(config.injection_kwargs.get(spec, {}))
            required = cls.required_tensors(kwargs)  # the KGE tables the mode takes
            unknown = sorted(set(required) - set(kge))
            if unknown:
                raise ValueError(f"injection {cls.name!r} requires {unknown}; known: {sorted(kge)}")
            kwargs.update({key: kge[key] for key in required})
            built[name] = cls(self.context, **kwargs)
        self.injections = nn.ModuleDict({name: built[name] for name in classes})  # config order
        gating = [inj for inj in self.injections.values() if inj.gates_deltas]
        if gating and len(gating) == len(self.injections):
            raise ValueError(
                f"{[g.name for g in gating]} only reweights other modes' knowledge; combine it with e.g. "
                "graph, entity or memory (injection: [graph, adaptive])"
            )
        self.encoder: nn.Module | None = None
        self.node_embedding: EntityTable | None = None
        self.node_projection: nn.Linear | None = None
        self.role_embedding: nn.Embedding | None = None
        self.relation_embedding: nn.Parameter | None = None
        if config.node_features == "kge" and node_feature_table is None:
            node_feature_table = entity_embeddings
        if config.node_features == "learned" and node_feature_table is not None:
            raise ValueError(
                "node_feature_table given but config.node_features is 'learned' (use 'kge' or 'text')"
            )
        if node_feature_table is not None:
            config.node_feature_channels = int(node_feature_table.size(-1))
        if any(inj.uses_graph_encoder for inj in self.injections.values()):
            self._build_encoder(encoder, k)
            self._build_node_features(node_feature_table)

    def _modes(self):
        """The modes in canonical order (the order in which they run)."""
        return [self.injections[name] for name in canonical_order(self.injections)]

    def _build_node_features(self, table: Tensor | None) -> None:
        config = self.config
        if config.node_features == "learned":
            self.node_embedding = EntityTable(config.num_entities, config.node_channels)
            return
        if table is None:
            how = (
                "FusedLM(..., node_feature_table=text_node_features(lm, entity_texts))"
                if config.node_features == "text"
                else "FusedLM(..., node_feature_table=kge_tables(kge_model)[0]) or entity_embeddings="
            )
            raise ValueError(
                f"node_features {config.node_features!r} needs a [num_entities, d] table: {how}"
            )
        if table.dim() != 2 or table.size(0) != config.num_entities:
            raise ValueError(
                f"node_feature_table must be [num_entities={config.num_entities}, d], "
                f"got {tuple(table.shape)}"
            )
        self.node_embedding = EntityTable(
            config.num_entities,
            int(table.size(1)),
            weight=table,
            trainable=config.node_features_trainable,
        )
        self.node_projection = nn.Linear(int(table.size(1)), config.node_channels)

    def node_features(self, n_id: Tensor) -> Tensor:
        """``[num_nodes]`` entity ids -> ``[num_nodes, node_channels]`` initial node features (before the
        role embedding): the learned table, or the projected KGE / text table."""
        x = self.node_embedding(n_id)
        return x if self.node_projection is None else self.node_projection(x)

    def _build_encoder(self, encoder: nn.Module | None, k: int) -> None:
        config = self.config
        if config.num_entities <= 0:
            raise ValueError(
                "modes that use the GNN need config.num_entities (the KG's entity count)"
            )
        if encoder is None:
            if config.encoder is None:
                raise ValueError(
                    f"modes {config.injection} need a GNN: set config.encoder (e.g. 'rgcn')"
                )
            kwargs = {"num_layers": k, **config.encoder_kwargs}
            encoder = _resolve_encoder(
                config.encoder,
                in_channels=config.node_channels,
                out_channels=config.node_channels,
                num_relations=config.num_relations,
                **kwargs,
            )
        if encoder.num_layers != k:
            raise ValueError(
                f"the GNN has {encoder.num_layers} layers but fusion pairs it with the top {k} LM layers"
            )
        self.encoder = encoder
        self.role_embedding = nn.Embedding(config.num_roles + 1, config.node_channels)
        nn.init.normal_(self.role_embedding.weight, std=0.02)
        if encoder.updates_relations or encoder.supports_edge_attr:
            self.relation_embedding = nn.Parameter(
                torch.empty(config.num_relations, config.node_channels)
            )
            nn.init.normal_(self.relation_embedding, std=0.02)

    @property
    def fused_layers(self) -> tuple[int, ...]:
        return self.context.fused_layers

    def _knowledge(self, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
        """Summed (and adaptively gated) delta of all modes after LM layer ``i``.

        Every mode reads the same ``state.node_states`` (the GNN layer's output); their node updates
        are added after all of them ran.
        """
        modes = self._modes()
        deltas = [
            d
            for inj in modes
            if not inj.gates_deltas and (d := inj.layer_delta(i, hidden, state)) is not None
        ]
        state.apply_node_updates()
        if not deltas:
            return None
        delta = deltas[0]
        for d in deltas[1:]:  # no [modes, batch, seq, hidden] stack
            delta = delta + d
        for inj in modes:
            if inj.gates_deltas:
                delta = inj.combine(i, hidden, delta, state)
        return delta

    def forward(self, batch: TextGraphBatch, *, output_hidden_states: bool = False) -> FusionOutput:
        """Encode a text + subgraph batch.

        Args:
            batch: tokenizer tensors ``[batch, seq]``, the PyG ``Batch`` of subgraphs and the
                token -> node links (:class:`~gnnlm.fusion.batch.TextGraphBatch`).
            output_hidden_states: also return every layer's token states.

        Returns:
            :class:`~gnnlm.fusion.outputs.FusionOutput` (shapes documented there).
        """
        lm, graph = self.lm, batch.graph
        state = FusionState(batch)
        if self.encoder is not None:
            state.node_states = self.node_features(graph.n_id) + self.role_embedding(
                self.node_roles(batch)
            )  # [num_nodes, node_channels]
            state.relation_states = self.relation_embedding
        modes = self._modes()
        for inj in modes:
            inj.prepare(state)
        hidden = lm.embed(batch.input_ids, batch.token_type_ids)  # [batch, seq, hidden]
        plain_mask = lm.attention_mask(batch.attention_mask, hidden)
        all_hidden = [hidden] if output_hidden_states else None
        for i in range(lm.num_layers):
            biases = [b for inj in modes if (b := inj.attention_bias(i, state)) is not None]
            mask = plain_mask
            if biases:
                bias = biases[0]
                for b in biases[1:]:
                    bias = bias + b
                mask = lm.attention_mask(batch.attention_mask, hidden, bias)
            hidden = lm.layer_forward(i, hidden, mask)
            j = self.context.fused_index(i)
            if j is not None:
                if self.encoder is not None:
                    state.node_states, state.relation_states = self.encoder.layer_forward(
                        j,
                        state.node_states,
                        graph.edge_index,
                        graph.edge_type,
                        None,
                        state.relation_states,
                    )
                delta = self._knowledge(i, hidden, state)
                if delta is not None:
                    hidden = hidden + delta
            if all_hidden is not None:
                all_hidden.append(hidden)
        output = FusionOutput(
            last_hidden_state=hidden,
            pooled_output=pool(hidden, batch.attention_mask, self.config.pooling),
            node_states=state.node_states,
            graph_pooled_output=self.pool_linked(state.node_states, batch),
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )
        for inj in modes:
            inj.finalize(output, state)
        output.injection_gates = {
            name: gates
            for name, inj in self.injections.items()
            if (gates := inj.gate_values()) is not None
        }
        if state.knowledge_gates:
            output.knowledge_gates = torch.stack(state.knowledge_gates)  # [num_fused, batch, seq]
        losses = [loss for inj in modes if (loss := inj.regularization_loss(state)) is not None]
        if losses:
            output.regularization_loss = sum(losses[1:], losses[0])
        return output

    def node_roles(self, batch: TextGraphBatch) -> Tensor:
        """``[num_nodes]`` role id: ``k + 1`` for the ``k``-th linked entity (capped), 0 for context."""
        graph = batch.graph
        local = torch.arange(graph.num_nodes, device=graph.batch.device) - graph.ptr[graph.batch]
        linked = local < graph.num_seeds[graph.batch]
        return torch.where(linked, local.clamp_max(self.config.num_roles - 1) + 1, 0)

    @staticmethod
    def pool_linked(node_states: Tensor | None, batch: TextGraphBatch) -> Tensor | None:
        """``[batch, node_channels]`` mean state of each example's linked entities (0 without any)."""
        if node_states is None:
            return None
        graph = batch.graph
        local = torch.arange(graph.num_nodes, device=graph.batch.device) - graph.ptr[graph.batch]
        linked = (
            (local < graph.num_seeds[graph.batch]).to(node_states.dtype).unsqueeze(-1)
        )  # [N, 1]
        total = node_states.new_zeros(batch.batch_size, node_states.size(-1))
        total = total.index_add(0, graph.batch, node_states * linked)  # [batch, node_channels]
        count = graph.num_seeds.clamp_min(1).to(node_states.dtype).unsqueeze(-1)  # [batch, 1]
        return total / count

    # -- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, tokenizer=None) -> None:
        """Write ``config.json``, ``fusion.safetensors`` (GNN + fusion weights) and ``lm/`` (HF format)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / CONFIG_NAME)
        save_lm(self.lm, tokenizer, folder / LM_FOLDER)
        state = {
            name: tensor.detach().contiguous().clone()
            for name, tensor in self.state_dict().items()
            if not name.startswith("lm.")
        }
        atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, {"format": "pt"}))

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        encoder: nn.Module | None = None,
        trust_remote_code: bool = False,
    ) -> FusedLM:
        """Rebuild a model written by :meth:`save_pretrained` (no unpickling: JSON + safetensors).

        Args:
            folder: the saved folder.
            encoder: the GNN instance, when it was passed as an instance rather than a config string.
            trust_remote_code: allow the saved config to name an encoder or an injection mode by
                dotted path (``pkg.mod:Class``), which imports and runs that module; refused
                otherwise, before anything is imported, as in HF ``transformers``.

        Raises:
            UntrustedCodeError: the saved ``encoder`` or an injection mode is a dotted path and
                ``trust_remote_code`` is false.
        """
        from gnnlm.utils.registry import (
            UntrustedCodeError,
            is_dotted_path,
            refuse_code_imports,
            untrusted_code_message,
        )

        folder = Path(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME, LM_FOLDER):
            if not (folder / name).exists():
                raise FileNotFoundError(
                    f"{folder / name} not found (not a save_pretrained folder?)"
                )
        config = FusionConfig.load(folder / CONFIG_NAME)
        source = str(folder / CONFIG_NAME)
        if not trust_remote_code:
            for spec in (None if encoder is not None else config.encoder, *config.injection):
                if is_dotted_path(spec):
                    raise UntrustedCodeError(untrusted_code_message(source, spec))
        lm = load_lm(str(folder / LM_FOLDER), attn_implementation=config.attn_implementation)
        state = load_file(str(folder / WEIGHTS_NAME))
        entity = relation = features = None
        if config.kge_channels is not None:  # placeholders, overwritten by the saved tables below
            entity = torch.zeros(config.num_entities, config.kge_channels)
            rows = config.num_relations if config.kge_relations is None else config.kge_relations
            relation = torch.zeros(rows, config.kge_channels)
        if config.node_features != "learned" and config.node_feature_channels is not None:
            features = torch.zeros(config.num_entities, config.node_feature_channels)  # likewise
        guard = contextlib.nullcontext() if trust_remote_code else refuse_code_imports(source)
        with guard:  # a second line of defence: any dotted-path lookup while building is refused
            model = cls(
                config,
                lm=lm,
                encoder=encoder,
                entity_embeddings=entity,
                relation_embeddings=relation,
                node_feature_table=features,
            )
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [name for name in missing if not name.startswith("lm.")]
        if missing or unexpected:
            raise ValueError(
                f"{folder / WEIGHTS_NAME}: weights do not match the config (missing {missing}, "
                f"unexpected {unexpected})"
            )
        return model

    @staticmethod
    def load_tokenizer(folder: str | os.PathLike):
        """The tokenizer saved with :meth:`save_pretrained`."""
        return load_tokenizer(str(Path(folder) / LM_FOLDER))

    def extra_repr(self) -> str:
        return f"injection={list(self.injections)}, fused_layers={list(self.fused_layers)}"


def injection_parameters(model: FusedLM) -> dict[str, list[nn.Parameter]]:
    """Parameters by group (``lm``, ``gnn``, ``fusion``), e.g. for separate learning rates."""
    groups: dict[str, list[nn.Parameter]] = {"lm": [], "gnn": [], "fusion": []}
    for name, param in model.named_parameters():
        if name.startswith("lm."):
            groups["lm"].append(param)
        elif name.startswith(
            (
                "encoder.",
                "node_embedding.",
                "node_projection.",
                "role_embedding.",
                "relation_embedding",
            )
        ):
            groups["gnn"].append(param)
        else:
            groups["fusion"].append(param)
    return groups
