"""The relation classifier: a fused LM read at the two start markers and the sentence, one linear head.

::

    x      = [ s ; h(e1 start) ; h(e2 start) ; g(e1) ; g(e2) ]          # [batch, 3 hidden + 2 node_channels]
    logits = W dropout(x) + b                                          # [batch, 19]

``s`` is the fused LM's pooled sentence state, ``h(.)`` the last-layer state of a start-marker token
(R-BERT, Wu & He 2019, https://arxiv.org/abs/1905.08284, and matching the blanks' entity-start
representation, Baldini Soares et al. 2019, https://arxiv.org/abs/1906.03158), and ``g(.)`` the final
GNN state of a nominal's linked synset (zeros when it is not linked or there is no GNN). The head has
the same shape and the same seed-only initialisation in every arm; an input an arm does not read
(``head_inputs``) is zeros, so arms differ in what reaches the head and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from gnnlm.fusion import FusedLM
from gnnlm.tasks.fused import seeded_linear
from gnnlm.tasks.relation_classification.batch import RelationBatch
from gnnlm.tasks.relation_classification.reader import LABELS

#: weight of the dual tower's contrastive loss, as in triple classification
CONTRASTIVE_WEIGHT = 0.1


class RelationClassifier(nn.Module):
    """A fused LM and the relation head (see the module docstring).

    Args:
        fused: the fused LM.
        head_inputs: ``("text", "graph")`` or one of them.
        num_labels: output classes (19 for SemEval-2010 Task 8).
        dropout: dropout on the head's input in training.
        seed: the head's initialisation depends on this seed only.
    """

    def __init__(
        self,
        fused: FusedLM,
        head_inputs: Iterable[str] = ("text",),
        *,
        num_labels: int = len(LABELS),
        dropout: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.fused = fused
        self.head_inputs = tuple(head_inputs)
        self.node_channels = fused.config.node_channels
        hidden = fused.lm.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = seeded_linear(3 * hidden + 2 * self.node_channels, num_labels, seed)

    def features(self, batch: RelationBatch) -> tuple[Tensor, Tensor | None]:
        """``([batch, 3 hidden + 2 node_channels] head input, extra loss or None)``; the extra loss
        is the dual tower's contrastive loss and the modes' regularisation, when present."""
        out = self.fused(batch.inputs)
        states = out.last_hidden_state  # [batch, seq, hidden]
        rows = torch.arange(states.size(0), device=states.device).unsqueeze(1)  # [batch, 1]
        marker_states = states[rows, batch.markers].flatten(1)  # [batch, 2 hidden]
        text = torch.cat([out.pooled_output, marker_states], -1)  # [batch, 3 hidden]
        if "text" not in self.head_inputs:
            text = torch.zeros_like(text)
        graph = text.new_zeros(text.size(0), 2 * self.node_channels)
        if out.node_states is not None and out.node_states.size(0) and "graph" in self.head_inputs:
            linked = batch.linked  # [batch, 2]
            nodes = out.node_states[linked.clamp(min=0)]  # [batch, 2, node_channels]
            nodes = nodes * (linked >= 0).unsqueeze(-1).to(nodes.dtype)  # unlinked -> zeros
            graph = nodes.flatten(1).to(text.dtype)  # [batch, 2 node_channels]
        extra = None
        if out.contrastive_loss is not None:
            extra = CONTRASTIVE_WEIGHT * out.contrastive_loss
        if out.regularization_loss is not None:
            extra = out.regularization_loss if extra is None else extra + out.regularization_loss
        return torch.cat([text, graph], -1), extra

    def forward(self, batch: RelationBatch) -> tuple[Tensor, Tensor | None]:
        """``(logits [batch, num_labels], loss)``: the loss (``None`` without labels) is the
        cross-entropy plus :meth:`features`' extra loss."""
        x, extra = self.features(batch)
        logits = self.head(self.dropout(x))  # [batch, num_labels]
        if batch.labels is None:
            return logits, None
        loss = nn.functional.cross_entropy(logits.float(), batch.labels)
        return logits, loss if extra is None else loss + extra
