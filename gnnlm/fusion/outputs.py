"""Output dataclass of the fused model (HF ``ModelOutput`` style, without importing transformers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class FusionOutput:
    """What :class:`~gnnlm.fusion.model.FusedLM` returns.

    Attributes:
        last_hidden_state: ``[batch, seq, hidden]`` token states after the last LM layer.
        pooled_output: ``[batch, hidden]`` sentence representation (mean or first-token pooling; the
            dual tower adds its late-joined graph part here).
        node_states: ``[num_nodes, node_channels]`` final GNN node states in PyG layout
            (``batch.graph.batch`` says which example each row belongs to), or ``None`` without a GNN.
        graph_pooled_output: ``[batch, node_channels]`` mean final state of each example's linked entities
            (zeros for an example without any), or ``None`` without a GNN.
        hidden_states: ``num_lm_layers + 1`` tensors ``[batch, seq, hidden]`` (embeddings, then after each
            layer and its fusion), when asked for.
        injection_gates: per mode, ``[num_fused_layers]`` current gate values (``tanh(g)``: ``tanh(1) ~
            0.76`` at initialisation with ``gate_init: open``, whose output projections start at zero,
            0 with ``closed``; relation injection reports its mean absolute bias; adaptive its
            ``sigmoid(b)``), on the parameters' device.
        knowledge_gates: ``[num_fused_layers, batch, seq]`` adaptive gate per token (adaptive injection).
        text_embedding: ``[batch, e]`` normalised text-tower embedding (dual tower).
        graph_embedding: ``[batch, e]`` normalised graph-tower embedding of the anchor (dual tower).
        contrastive_loss: scalar InfoNCE text-graph alignment loss (dual tower).
        regularization_loss: scalar sum of the modes' auxiliary losses
            (:meth:`~gnnlm.fusion.injection.Injection.regularization_loss`, each already weighted:
            adaptive injection's gate regulariser), ``None`` when no mode defines one; a task adds it
            to its loss as it is.
    """

    last_hidden_state: Tensor
    pooled_output: Tensor
    node_states: Tensor | None = None
    graph_pooled_output: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    injection_gates: dict[str, Tensor] = field(default_factory=dict)
    knowledge_gates: Tensor | None = None
    text_embedding: Tensor | None = None
    graph_embedding: Tensor | None = None
    contrastive_loss: Tensor | None = None
    regularization_loss: Tensor | None = None
