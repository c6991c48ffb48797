r"""KG-BERT-style re-ranking: a cross-encoder re-orders a KGE model's top-k of every query.

`KG-BERT (Yao et al. 2019) <https://arxiv.org/abs/1909.03193>`_ reads a whole triple as one text and
scores it with a classifier on the LM's output; reading every candidate that way is too slow for all
entities, so it re-ranks a cheaper model's shortlist. Here the cross-encoder is the text model's query
LM reading ``text(h) [SEP] text(r)`` and ``text(t)`` as one pair, mean-pooled, with a linear head
(:class:`CrossEncoderHead`); it trains beside the bi-encoder (``hybrid.rerank_k``: binary
cross-entropy of the batch's positives against negatives drawn from the KGE model's top-k), and
:class:`RerankRanker` ranks with

.. math::
    s(q, e) = \begin{cases} \max_{e'} s_{\text{KGE}}(q, e') + 1 + \sigma(c(q, e)) & e \in
    \text{top-}k_{\text{KGE}}(q) \\ s_{\text{KGE}}(q, e) & \text{otherwise} \end{cases}

so the top-k keep their place above every other entity and are ordered by the cross-encoder, and the
filtered evaluator ranks the result like any model (an answer outside the top-k keeps its KGE rank).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from gnnlm.tasks.text_link_prediction.loss import KnownTriples
    from gnnlm.tasks.text_link_prediction.model import TextKGCModel

#: ``(heads [Q], relations [Q], candidates [Q, k]) -> [Q, k]`` cross-encoder logits.
CrossScorer = Callable[[Tensor, Tensor, Tensor], Tensor]


class CrossEncoderHead(nn.Module):
    """The classifier of the cross-encoder: ``[B, H] -> [B]`` logits (the LM is the text model's).

    Args:
        hidden_size: the LM's width.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.linear = nn.Linear(hidden_size, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()

    def forward(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled).squeeze(-1)


def cross_logits(model: TextKGCModel, heads: Tensor, relations: Tensor, tails: Tensor) -> Tensor:
    """``[B]`` cross-encoder logits of triples ``(heads[i], relations[i], tails[i])`` (``[B]`` each;
    a relation ``r + R`` is the inverse of ``r``)."""
    if model.cross is None:
        raise ValueError("the model has no cross-encoder head (set hybrid.rerank_k > 0)")
    texts, relation_texts = model.query_texts(heads, relations)
    sep = model.tokenizer.sep_token or "|"
    first = [f"{h} {sep} {r}" for h, r in zip(texts, relation_texts)]
    second = [model.entity_texts[t] for t in tails.tolist()]
    return model.cross(model.encode(model.query_lm, first, second))  # [B]


def model_scorer(model: TextKGCModel, batch_size: int = 256) -> CrossScorer:
    """The :data:`CrossScorer` of a text model with a cross-encoder head (batched LM passes)."""

    def score(heads: Tensor, relations: Tensor, candidates: Tensor) -> Tensor:
        q, k = candidates.shape
        flat_h = heads.cpu().repeat_interleave(k)  # [Q k]
        flat_r = relations.cpu().repeat_interleave(k)
        flat_t = candidates.reshape(-1).cpu()
        out = [
            cross_logits(model, flat_h[s : s + batch_size], flat_r[s : s + batch_size],
                         flat_t[s : s + batch_size])
            for s in range(0, q * k, batch_size)
        ]  # fmt: skip
        return torch.cat(out).view(q, k) if out else candidates.new_zeros(q, k).float()

    return score


class RerankRanker(nn.Module):
    """A KGE model whose top-k per query is re-ordered by a cross-encoder (module docstring).

    Args:
        kge: a link-prediction model (``score_t`` / ``score_h`` over all entities).
        scorer: the cross-encoder's :data:`CrossScorer`.
        k: shortlist size (0: the KGE model unchanged).
        num_relations: ``R``; heads of ``(?, r, t)`` are scored as ``(t, r + R, h)``.
    """

    def __init__(self, kge: nn.Module, scorer: CrossScorer, k: int, num_relations: int) -> None:
        super().__init__()
        self.kge, self.scorer, self.k, self.num_relations = kge, scorer, k, num_relations

    def representations(self) -> tuple[Tensor, Tensor]:
        return self.kge.representations()

    def _rerank(self, scores: Tensor, entities: Tensor, relations: Tensor) -> Tensor:
        if self.k == 0:
            return scores
        scores = scores.float()
        top = scores.topk(min(self.k, scores.size(1)), dim=1).indices  # [Q, k]
        cross = self.scorer(entities, relations, top).float().to(scores.device)  # [Q, k]
        ceiling = scores.max(1, keepdim=True).values + 1.0  # [Q, 1]
        return scores.scatter(1, top, ceiling + torch.sigmoid(cross))

    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (h, r) -> ``[B, N]``."""
        return self._rerank(self.kge.score_t(hr, reps), hr[:, 0], hr[:, 1])

    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (r, t) -> ``[B, N]``: candidates read as tails of ``(t, r + R, ?)``."""
        return self._rerank(self.kge.score_h(rt, reps), rt[:, 1], rt[:, 0] + self.num_relations)


@torch.no_grad()
def hard_negatives(
    kge: nn.Module,
    heads: Tensor,
    relations: Tensor,
    tails: Tensor,
    known: KnownTriples,
    *,
    k: int,
    num: int,
    generator: torch.Generator,
) -> Tensor:
    """``[B, num]`` negatives of ``(heads[i], relations[i], ?)``: drawn from the KGE model's top-k,
    never the positive ``tails[i]`` nor a known answer (a random entity where the top-k holds
    nothing else).

    Args:
        heads, relations, tails: ``[B]``; ``relations[i] >= R`` are inverse queries.
    """
    r_count = known.num_relations
    inverse = relations >= r_count
    hr = torch.stack([heads, relations % r_count], 1)
    scores = kge.score_t(hr).float().cpu()  # [B, N]
    if inverse.any():
        rt = torch.stack([relations[inverse] - r_count, heads[inverse]], 1)
        scores[inverse] = kge.score_h(rt).float().cpu()
    top = scores.topk(min(k, scores.size(1)), dim=1).indices  # [B, k]
    bad = known.contains(heads, relations, top) | (top == tails[:, None])  # [B, k]
    weight = (~bad).float()
    weight[bad.all(1)] = 1.0  # a row with nothing valid draws a random entity below instead
    pick = torch.multinomial(weight, num, replacement=True, generator=generator)  # [B, num]
    chosen = top.gather(1, pick)
    fallback = torch.randint(0, scores.size(1), chosen.shape, generator=generator)
    rows_bad = bad.all(1, keepdim=True).expand_as(chosen)
    return torch.where(rows_bad, fallback, chosen)


def cross_entropy_loss(
    model: TextKGCModel, heads: Tensor, relations: Tensor, tails: Tensor, negatives: Tensor
) -> Tensor:
    """Binary cross-entropy of the cross-encoder: ``(h, r, t)`` positive, ``(h, r, n)`` for each of
    ``negatives`` ``[B, m]`` negative."""
    m = negatives.size(1)
    pos = cross_logits(model, heads, relations, tails)  # [B]
    neg = cross_logits(
        model, heads.repeat_interleave(m), relations.repeat_interleave(m), negatives.reshape(-1)
    )  # [B m]
    logits = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    return F.binary_cross_entropy_with_logits(logits, labels)
