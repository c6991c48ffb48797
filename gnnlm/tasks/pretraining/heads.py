"""The pre-training heads and scores: an MLM head tied to the LM's word embeddings, TransE (KEPLER) and
DistMult (DRAGON's link prediction) scores, and their shared negative-sampling loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MLMHead(nn.Module):
    """BERT's prediction head: ``LayerNorm(gelu(W h)) @ E^T + b`` with ``E`` the LM's word embeddings.

    The decoder weight is the embedding matrix passed to :meth:`forward` (tied, not a copy), so the
    head adds only the transform and a bias, and the saved model holds the embeddings once.

    Args:
        hidden_size: the LM's width.
        vocab_size: rows of the word-embedding matrix.
    """

    def __init__(self, hidden_size: int, vocab_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        """``[n, hidden]`` token states -> ``[n, vocab]`` logits (``word_embeddings: [vocab, hidden]``)."""
        x = self.norm(F.gelu(self.dense(hidden)))
        return x @ word_embeddings.t() + self.bias


class LinkPredictionHead(nn.Module):
    """DRAGON's link scorer: DistMult on layer-normalised final node states.

    The fused model's node states start small (its node tables are initialised at ``std=0.02``), and
    a product of three small factors barely moves in a short run; the head's own ``LayerNorm`` puts
    the states at unit scale, and the relation diagonals start at ``std=1/sqrt(channels)``, so the
    initial scores are of unit variance.

    Args:
        channels: the GNN's width (``node_channels``).
        num_relations: the KG's relations (without inverses).
    """

    def __init__(self, channels: int, num_relations: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.relations = nn.Embedding(num_relations, channels)
        nn.init.normal_(self.relations.weight, std=channels**-0.5)

    def forward(self, nodes: Tensor, triples: Tensor) -> Tensor:
        """Scores of ``triples: [..., 3]`` (head, relation, tail; rows of ``nodes: [N, channels]``)
        -> ``[...]``."""
        x = self.norm(nodes)
        head, tail = x[triples[..., 0]], x[triples[..., 2]]
        return distmult_score(head, self.relations(triples[..., 1]), tail)


def transe_score(head: Tensor, relation: Tensor, tail: Tensor, gamma: float, norm: int) -> Tensor:
    """KEPLER's score ``gamma - ||h + r - t||_norm`` over the last dimension (shapes broadcast:
    ``[..., d]`` each -> ``[...]``)."""
    return gamma - torch.linalg.vector_norm(head + relation - tail, ord=norm, dim=-1)


def distmult_score(head: Tensor, relation: Tensor, tail: Tensor) -> Tensor:
    """DistMult ``<h, r, t> = sum_i h_i r_i t_i`` (``[..., d]`` each -> ``[...]``)."""
    return (head * relation * tail).sum(-1)


def negative_sampling_loss(positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
    """KEPLER's (and RotatE's) loss ``mean_k [-log s(pos_k) - mean_j log s(-neg_kj)]`` and the share of
    negatives scored below their positive.

    Args:
        positive: ``[k]`` scores of true triples.
        negative: ``[k, n]`` scores of their corruptions.

    Returns:
        ``(loss, accuracy)``, scalars (accuracy detached).
    """
    loss = -F.logsigmoid(positive) - F.logsigmoid(-negative).mean(-1)  # [k]
    accuracy = (negative.detach() < positive.detach()[:, None]).float().mean()
    return loss.mean(), accuracy


__all__ = [
    "LinkPredictionHead",
    "MLMHead",
    "distmult_score",
    "negative_sampling_loss",
    "transe_score",
]
