"""The one interface every knowledge-injection mode implements.

A fused forward pass (:class:`gnnlm.fusion.model.FusedLM`) runs the LM layer by layer. Around each LM layer
``i`` it asks every injection for

1. an additive attention bias for layer ``i`` (:meth:`Injection.attention_bias`, relation injection),
2. after the layer (and after the paired GNN layer, if any), a *delta* to add to the hidden states
   (:meth:`Injection.layer_delta`: graph, entity and memory injection); deltas are gated residuals that
   are exactly zero at initialisation, and the model adds them out of place (``h = h + delta``),
3. at the end, a chance to add late outputs (:meth:`Injection.finalize`: the dual-tower embeddings and
   contrastive loss).

Every mode of a fused layer reads the same node states, those of the GNN layer just run: a mode that
updates the nodes (graph injection's ``X' = X + gate * Attn(X -> H)``) hands its update to
:meth:`FusionState.add_node_update`, and the model adds all updates after every mode of the layer ran.
Modes run in a canonical order (:func:`canonical_order`, by name), so the order of
``injection: [...]`` does not change the model.

**Initialisation (``gate_init``).** A gated residual ``h + tanh(g) * W_o f(h)`` is the identity at
initialisation when either factor is zero:

* ``"open"`` (default): the output projection ``W_o`` (and its bias) is zero and the gate open
  (``g = GATE_OPEN = 1``, ``tanh(1) ~ 0.76``), the LoRA-B / ControlNet zero-convolution pattern. At the
  first step ``W_o`` gets the full gradient ``tanh(g) * dL/dh f(h)^T``; what is upstream of it (the gate,
  ``f``'s own weights, the GNN through the text path) gets exactly zero, necessarily (its derivative
  passes through ``W_o = 0``), and a non-zero gradient from the second step on.
* ``"closed"``: the gate is zero and ``W_o`` initialised as usual (Flamingo): at the first step only the
  scalar gates get a gradient, and they grow slowly. Kept for ablations.

A mode declares its zero-initialised outputs in :meth:`Injection.output_modules` and builds its gates with
``TanhGate(k, init=context.gate_value)``; the base :meth:`Injection.reset_parameters` does the rest.

A mode that needs GNN node states sets :attr:`Injection.uses_graph_encoder`; a mode that reweights the
other modes' deltas (adaptive injection) sets :attr:`Injection.gates_deltas` and implements
:meth:`Injection.combine`; a mode built from a trained KGE model's tables names them in
:meth:`Injection.required_tensors` and gets them as constructor arguments. A mode may return an auxiliary
loss of the forward pass (:meth:`Injection.regularization_loss`, e.g. a sparsity penalty on its gates).

Modes are chosen by their :attr:`Injection.name` from :data:`gnnlm.fusion.injection_resolver`
(``injection: [graph, entity]`` in a config). A user-defined subclass is found by name only after
``injection_resolver.register(MyInjection)``; its dotted path ``"mypkg.modes:MyInjection"`` always works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gnnlm.fusion.batch import TextGraphBatch
    from gnnlm.fusion.outputs import FusionOutput

#: ``FusionConfig.gate_init`` values: zero output projection and open gate, or zero gate (see above).
GATE_INITS = ("open", "closed")
#: initial gate parameter ``g`` of an open gate (``tanh(1) ~ 0.76``): large enough that the zero output
#: projection gets most of the gradient, below saturation so the gate still learns (``1 - tanh^2 ~ 0.42``).
GATE_OPEN = 1.0


def canonical_order(names: Iterable[str]) -> list[str]:
    """The order in which modes are built and run: by name, whatever the config's list order."""
    return sorted(names)


@dataclass(frozen=True)
class InjectionContext:
    """What every injection is built from (sizes of the LM, the GNN and the KG).

    Attributes:
        hidden_size: LM width.
        num_heads: LM attention heads.
        num_lm_layers: LM depth.
        fused_layers: LM layer indices after which fusion happens (the top ``K``), ascending.
        node_channels: width of the GNN node states.
        num_entities: entities in the KG.
        num_relations: edge types the subgraphs use (including inverse relations).
        gate_init: ``"open"`` (zero output projections, gates at :data:`GATE_OPEN`) or ``"closed"``
            (gates at zero); see the module docstring.
    """

    hidden_size: int
    num_heads: int
    num_lm_layers: int
    fused_layers: tuple[int, ...]
    node_channels: int
    num_entities: int
    num_relations: int
    gate_init: str = "open"

    def __post_init__(self) -> None:
        if self.gate_init not in GATE_INITS:
            raise ValueError(f"gate_init must be one of {GATE_INITS}, got {self.gate_init!r}")

    @property
    def gate_value(self) -> float:
        """Initial ``g`` of the modes' :class:`~gnnlm.fusion.attention.TanhGate` (``init=``)."""
        return GATE_OPEN if self.gate_init == "open" else 0.0

    def fused_index(self, i: int) -> int | None:
        """Position of LM layer ``i`` among the fused layers, ``None`` when it is not fused."""
        return self.fused_layers.index(i) if i in self.fused_layers else None


@dataclass
class FusionState:
    """Everything a fused forward pass shares between the LM loop and the injections.

    Attributes:
        batch: the input batch.
        node_states: ``[num_nodes, node_channels]`` node states (PyG layout) after the last GNN layer
            run, or ``None``; every mode of a fused layer reads the same value.
        node_updates: updates handed in by the modes of the current fused layer
            (:meth:`add_node_update`), added to ``node_states`` by :meth:`apply_node_updates`.
        relation_states: ``[num_relations, channels]`` relation states of encoders that update them.
        knowledge_gates: per fused layer, the adaptive gate ``[batch, seq, 1]`` (adaptive injection).
        cache: per-forward scratch space, keyed by the injection's name.
    """

    batch: TextGraphBatch
    node_states: Tensor | None = None
    relation_states: Tensor | None = None
    node_updates: list[Tensor] = field(default_factory=list)
    knowledge_gates: list[Tensor] = field(default_factory=list)
    cache: dict[str, object] = field(default_factory=dict)

    def dense_layout(self) -> tuple[Tensor, Tensor]:
        """Where each node sits in the padded per-example layout, computed once per batch.

        Returns:
            ``([num_nodes] index into the flattened [batch * max_nodes] rows, [batch, max_nodes] mask)``,
            the layout of ``torch_geometric.utils.to_dense_batch`` (nodes of an example in order).
        """
        layout = self.cache.get("dense_layout")
        if layout is None:
            graph, b = self.batch.graph, self.batch.batch_size
            node_batch = graph.batch  # [num_nodes] (sorted by example)
            counts = graph.ptr[1:] - graph.ptr[:-1]  # [batch]
            max_nodes = int(counts.max()) if b and graph.num_nodes else 0
            local = torch.arange(graph.num_nodes, device=node_batch.device) - graph.ptr[node_batch]
            index = node_batch * max_nodes + local  # [num_nodes]
            mask = torch.arange(max_nodes, device=counts.device) < counts.unsqueeze(-1)
            layout = self.cache["dense_layout"] = (index, mask)  # mask: [batch, max_nodes]
        return layout

    def dense_nodes(self) -> tuple[Tensor, Tensor]:
        """Node states padded per example: ``([batch, max_nodes, channels], [batch, max_nodes] mask)``.

        Same values as ``to_dense_batch(node_states, graph.batch)`` (zeros on padding), with the layout
        indexed once per batch (:meth:`dense_layout`) instead of per call.
        """
        index, mask = self.dense_layout()
        x = self.node_states  # [num_nodes, channels]
        dense = x.new_zeros(mask.numel(), x.size(-1)).index_copy(0, index, x)
        return dense.view(*mask.shape, x.size(-1)), mask

    def set_dense_nodes(self, dense: Tensor, mask: Tensor) -> None:
        """Store ``[batch, max_nodes, channels]`` states back in PyG layout (``dense[mask]``)."""
        self.node_states = self.from_dense(dense)

    def from_dense(self, dense: Tensor) -> Tensor:
        """``[batch, max_nodes, channels]`` -> ``[num_nodes, channels]`` (PyG layout, ``dense[mask]``)."""
        index, _ = self.dense_layout()
        return dense.reshape(-1, dense.size(-1)).index_select(0, index)

    def add_node_update(self, update: Tensor) -> None:
        """Hand in a ``[num_nodes, channels]`` additive node update (PyG layout).

        It is not visible to the other modes of this fused layer; the model adds the updates of all modes
        after they ran (:meth:`apply_node_updates`), so the order of the modes does not matter.
        """
        self.node_updates.append(update)

    def apply_node_updates(self) -> None:
        """``node_states + sum(updates)`` (in the order handed in: canonical mode order); clears them."""
        if self.node_updates:
            x = self.node_states
            for update in self.node_updates:
                x = x + update
            self.node_states = x
            self.node_updates = []


class Injection(nn.Module):
    """Base class of knowledge-injection modes.

    Args:
        context: sizes of the LM, GNN and KG (:class:`InjectionContext`).
    """

    #: registry name (``graph``, ``dual_tower``, ...), the key of the mode in ``FusedLM.injections`` and
    #: of its weights (``injections.<name>.*``); a subclass that sets none gets its class name, lower
    #: case, less ``Injection`` (``MyGraphInjection`` -> ``mygraph``).
    name: ClassVar[str] = ""
    #: needs GNN node states (the model then builds and runs a GNN).
    uses_graph_encoder: ClassVar[bool] = False
    #: reweights the other modes' deltas instead of producing one (:meth:`combine`).
    gates_deltas: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # not inherited: a subclass of a mode is another mode
            cls.name = cls.__name__.removesuffix("Injection").lower()

    def __init__(self, context: InjectionContext) -> None:
        super().__init__()
        self.context = context

    @classmethod
    def required_tensors(cls, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """The KGE tables this mode takes, given its config ``kwargs`` (default: none).

        :class:`~gnnlm.fusion.model.FusedLM` passes each named table as the constructor argument of that
        name: ``"entity_embeddings"`` (``[num_entities, d]``) and ``"relation_embeddings"``
        (``[num_relations, d]``), its own ``entity_embeddings`` / ``relation_embeddings`` arguments
        (e.g. :func:`~gnnlm.fusion.kge_source.kge_tables` of a trained model). A table the model was
        not given arrives as ``None``, for the mode to refuse with a message.

        Args:
            kwargs: the mode's ``injection_kwargs`` from the config (JSON values).
        """
        return ()

    @property
    def gate_init(self) -> str:
        """``"open"`` or ``"closed"`` (:attr:`InjectionContext.gate_init`)."""
        return self.context.gate_init

    def output_modules(self) -> list[nn.Module]:
        """The modules whose output goes (gated) into the LM stream, the nodes or the pooled output,
        zero-initialised when :attr:`gate_init` is ``"open"`` (default: none)."""
        return []

    def reset_parameters(self) -> None:
        """Re-initialise: every child module, then the output modules as :attr:`gate_init` says.

        Gates are :class:`~gnnlm.fusion.attention.TanhGate` children and reset to their ``init``.
        """
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.zero_outputs()

    def zero_outputs(self) -> None:
        """With an open gate, zero every parameter of :meth:`output_modules` (the exact identity)."""
        if self.gate_init != "open":
            return
        with torch.no_grad():
            for module in self.output_modules():
                for param in module.parameters():
                    param.zero_()

    def prepare(self, state: FusionState) -> None:
        """Per-batch set-up before the first LM layer (default: nothing)."""

    def attention_bias(self, i: int, state: FusionState) -> Tensor | None:
        """Additive attention bias ``[batch, heads, seq, seq]`` for LM layer ``i``, or ``None``."""
        return None

    def layer_delta(self, i: int, hidden: Tensor, state: FusionState) -> Tensor | None:
        """What to add to ``hidden`` (``[batch, seq, hidden]``) after LM layer ``i``, or ``None``."""
        return None

    def combine(self, i: int, hidden: Tensor, delta: Tensor, state: FusionState) -> Tensor:
        """Reweight the summed delta of the other modes (only when :attr:`gates_deltas`)."""
        raise NotImplementedError

    def finalize(self, output: FusionOutput, state: FusionState) -> None:
        """Add late outputs to ``output`` (default: nothing)."""

    def regularization_loss(self, state: FusionState) -> Tensor | None:
        """A scalar auxiliary loss of this forward pass, already weighted by the mode's own options
        (e.g. adaptive injection's gate regulariser), or ``None`` (default).

        The model sums the modes' losses into ``FusionOutput.regularization_loss``; a task adds that
        sum to its training loss as it is.
        """
        return None

    def gate_values(self) -> Tensor | None:
        """``[num_fused_layers]`` current ``tanh`` gate values, for inspection (or ``None``)."""
        gate = getattr(self, "gate", None)
        return None if gate is None else gate.weight.detach().tanh()
