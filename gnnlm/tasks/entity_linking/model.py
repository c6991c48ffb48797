"""The entity linker: the bi-encoder, and for the KG arm the coherence re-ranker on top.

Arms (``model.arm``):

* ``lm``: LM-only, the bi-encoder's score ``s(m, e)``
  (:class:`~gnnlm.tasks.entity_linking.biencoder.BiEncoder`);
* ``kg``: ``s(m, e) + Delta(m, e)``, the correction of the GNN over the document's candidate subgraph
  (:class:`~gnnlm.tasks.entity_linking.reranker.CoherenceReranker`), trained jointly with the same loss.

The alias-prior baseline has no parameters: it is the first candidate
(:mod:`~gnnlm.tasks.entity_linking.candidates`), reported by every run's evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from gnnlm.tasks.entity_linking.batch import LinkingBatch
from gnnlm.tasks.entity_linking.biencoder import BiEncoder
from gnnlm.tasks.entity_linking.reranker import CoherenceReranker

#: the trained arms
ARMS = ("lm", "kg")


@dataclass
class LinkerOutput:
    """What :class:`EntityLinker` returns.

    Attributes:
        scores: ``[M, K]`` final scores, ``-inf`` at padding.
        biencoder_scores: ``[M, K]`` the bi-encoder's part, ``-inf`` at padding.
    """

    scores: Tensor
    biencoder_scores: Tensor


class EntityLinker(nn.Module):
    """Scores of every mention's candidates (module docstring).

    Args:
        biencoder: the bi-encoder.
        reranker: the coherence re-ranker (the ``kg`` arm), or ``None`` (``lm``).
    """

    def __init__(self, biencoder: BiEncoder, reranker: CoherenceReranker | None = None) -> None:
        super().__init__()
        self.biencoder, self.reranker = biencoder, reranker

    @property
    def arm(self) -> str:
        return "lm" if self.reranker is None else "kg"

    def forward(self, batch: LinkingBatch) -> LinkerOutput:
        """Scores of a :class:`~gnnlm.tasks.entity_linking.batch.LinkingBatch`."""
        b = self.biencoder
        mentions = batch.mention_states
        if mentions is None:
            mentions = b.encode_mentions(
                batch.input_ids, batch.attention_mask, batch.token_type_ids
            )  # [M, hidden]
        base = b(mentions, batch.candidates, batch.features)  # [M, K]
        scores = base
        if self.reranker is not None:
            if batch.graph is None:
                raise ValueError("the kg arm needs the batch's document graphs")
            scores = base + self.reranker(
                batch.graph, b.entity_table, mentions, batch.candidate_node
            )
        pad = ~batch.mask
        return LinkerOutput(
            scores.masked_fill(pad, float("-inf")), base.masked_fill(pad, float("-inf"))
        )


__all__ = ["ARMS", "EntityLinker", "LinkerOutput"]
