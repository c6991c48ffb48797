"""The pre-training model: the fused LM under ``fused`` (the name a downstream model shares) and one head
per objective."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from gnnlm.tasks.pretraining.heads import LinkPredictionHead, MLMHead


class PretrainingModel(nn.Module):
    """A fused LM with the heads of its objectives.

    Args:
        fused: the :class:`~gnnlm.fusion.FusedLM` (built by :func:`~gnnlm.tasks.fused.build_fused_lm`
            from the same ``model:`` block as the downstream task's, so every ``fused.*`` parameter
            carries over by name).
        objectives: any of ``mlm``, ``kepler``, ``link_prediction``; only their heads are built.
        num_relations: the KG's relations (without inverses).
        seed: the heads' initialisation depends on this seed only (not on what was built before).

    Attributes:
        mlm_head: :class:`~gnnlm.tasks.pretraining.heads.MLMHead` tied to the LM's word embeddings.
        kepler_relations: ``[num_relations, hidden]`` TransE relation vectors, in the LM's space.
        link_head: :class:`~gnnlm.tasks.pretraining.heads.LinkPredictionHead`, DistMult on the GNN's
            final node states.
    """

    def __init__(self, fused, objectives: Iterable[str], num_relations: int, seed: int = 0) -> None:
        super().__init__()
        objectives = set(objectives)
        self.fused = fused
        hidden = fused.lm.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.mlm_head = (
                MLMHead(hidden, self.word_embeddings().size(0)) if "mlm" in objectives else None
            )
            self.kepler_relations = (
                nn.Embedding(num_relations, hidden) if "kepler" in objectives else None
            )
            self.link_head = (
                LinkPredictionHead(fused.config.node_channels, num_relations)
                if "link_prediction" in objectives
                else None
            )
            if self.kepler_relations is not None:  # small: h + r - t starts as h - t
                nn.init.normal_(self.kepler_relations.weight, std=0.02)

    def word_embeddings(self) -> Tensor:
        """``[vocab, hidden]`` the LM's input embeddings (the MLM decoder's weight)."""
        return self.fused.lm.model.get_input_embeddings().weight

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """``[n, hidden]`` states of the masked tokens -> ``[n, vocab]`` logits."""
        return self.mlm_head(hidden, self.word_embeddings())

    def forward(self, batch):
        """The fused LM's output on a text + graph batch (the objectives read its parts)."""
        return self.fused(batch)


__all__ = ["PretrainingModel"]
