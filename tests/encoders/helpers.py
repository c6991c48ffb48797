"""Shared helpers for the encoder tests: a short 1-N training loop on a real KG and its filtered MRR."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gnnlm.eval import RankBasedEvaluator


def train_kvsall(model, kg, *, steps: int, batch_size: int = 512, lr: float = 0.01, seed: int = 0):
    """``steps`` Adam steps of 1-N BCE on reciprocal training queries; returns the per-step losses."""
    gen = torch.Generator().manual_seed(seed)
    triples = kg.with_inverse_triples(kg.train)  # [2n, 3]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        batch = triples[torch.randint(len(triples), (batch_size,), generator=gen)]  # [B, 3]
        target = torch.zeros(batch_size, kg.num_entities)
        target[torch.arange(batch_size), batch[:, 2]] = 1.0
        loss = F.binary_cross_entropy_with_logits(model.score_t(batch[:, :2]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def filtered_mrr(model, kg, split: str = "test") -> float:
    with torch.no_grad():
        return RankBasedEvaluator(kg.filter_index).evaluate(model, kg.splits[split]).mrr
