"""The multiple-choice model: a fused LM scores every (question, choice) pair, a softmax over the choices.

::

    score(q, c) = w^T [pooled text of "q [SEP] c" ; mean GNN state of the pair's grounded concepts] + b
    P(c | q)    = softmax over the choices of q of score(q, c)          # cross-entropy against the answer

The GNN's initial node state is the concept's text encoding (``node_features: text``) plus a *role*
embedding of the node's type (question / answer / other concept) and its relevance to the question
(binned), which is how QA-GNN's node types and relevance scores reach the graph here
(:class:`QAFusedLM`). As in triple classification, the head has the same shape in every arm: an input an
arm does not read (``head_inputs``) is zeros.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from gnnlm.fusion import FusedLM, TextGraphBatch
from gnnlm.tasks.fused import seeded_linear
from gnnlm.tasks.multiple_choice.batch import MultipleChoiceBatch
from gnnlm.tasks.multiple_choice.extraction import ANSWER

#: weight of the dual tower's contrastive loss, as in triple classification
CONTRASTIVE_WEIGHT = 0.1


class QAFusedLM(FusedLM):
    """A :class:`~gnnlm.fusion.FusedLM` whose node roles are QA-GNN's node types and relevance bins.

    ``role = node_type * bins + bin(relevance)`` with ``node_type`` 0 (other), 1 (question), 2 (answer)
    and ``bin = clamp(floor(relevance * bins), 0, bins - 1)``; build it with ``num_roles = 3 * bins -
    1`` (FusedLM's role table has ``num_roles + 1`` rows).
    """

    @property
    def relevance_bins(self) -> int:
        return (self.config.num_roles + 1) // (ANSWER + 1)

    def node_roles(self, batch: TextGraphBatch) -> Tensor:
        """``[num_nodes]`` role ids from the batch's ``graph.node_type`` and ``graph.relevance``."""
        graph, bins = batch.graph, self.relevance_bins
        level = (graph.relevance * bins).floor().long().clamp(0, bins - 1)  # [num_nodes]
        return graph.node_type * bins + level


def choice_scores(pair_scores: Tensor, num_choices: Tensor) -> Tensor:
    """``[num_pairs]`` scores, flattened question by question -> ``[batch, max_choices]``, ``-inf``
    where a question has fewer choices (so its softmax gives them zero probability)."""
    batch, width = num_choices.numel(), int(num_choices.max())
    position = torch.arange(width, device=pair_scores.device)  # [max_choices]
    real = position < num_choices.unsqueeze(1)  # [batch, max_choices]
    out = pair_scores.new_full((batch, width), float("-inf"))
    return out.masked_scatter(real, pair_scores)


class MultipleChoiceModel(nn.Module):
    """A fused LM and a linear head giving one score per (question, choice) pair.

    Args:
        fused: the fused LM (a :class:`QAFusedLM` for QA-GNN's node roles).
        head_inputs: ``("text", "graph")`` or one of them.
        seed: the head's initialisation depends on this seed only, so every arm starts from the
            same head.
    """

    def __init__(
        self, fused: FusedLM, head_inputs: Iterable[str] = ("text", "graph"), seed: int = 0
    ) -> None:
        super().__init__()
        self.fused = fused
        self.head_inputs = tuple(head_inputs)
        self.node_channels = fused.config.node_channels
        self.head = seeded_linear(fused.lm.hidden_size + self.node_channels, 1, seed)

    def pair_scores(self, pairs: TextGraphBatch) -> tuple[Tensor, Tensor | None]:
        """``([num_pairs] scores, extra loss or None)`` of flattened pairs; the extra loss is the dual
        tower's contrastive loss and the modes' regularisation, when present."""
        out = self.fused(pairs)
        text = out.pooled_output  # [pairs, hidden]
        graph = out.graph_pooled_output  # [pairs, node_channels] or None
        if "text" not in self.head_inputs:
            text = torch.zeros_like(text)
        if graph is None or "graph" not in self.head_inputs:
            graph = text.new_zeros(text.size(0), self.node_channels)
        scores = self.head(torch.cat([text, graph], -1)).squeeze(-1)  # [pairs]
        extra = None
        if out.contrastive_loss is not None:
            extra = CONTRASTIVE_WEIGHT * out.contrastive_loss
        if out.regularization_loss is not None:
            extra = out.regularization_loss if extra is None else extra + out.regularization_loss
        return scores, extra

    def forward(self, batch: MultipleChoiceBatch) -> tuple[Tensor, Tensor | None]:
        """``(scores [batch, max_choices], loss)``: the loss (``None`` without labels) is the
        cross-entropy of the softmax over each question's choices, plus :meth:`pair_scores`' extra."""
        pair_scores, extra = self.pair_scores(batch.pairs)
        scores = choice_scores(pair_scores, batch.num_choices)
        if batch.labels is None:
            return scores, None
        loss = nn.functional.cross_entropy(scores.float(), batch.labels)
        return scores, loss if extra is None else loss + extra
