from __future__ import annotations

import pytest
import torch

from gnnlm.train.negative_sampling import (
    BernoulliNegativeSampler,
    UniformNegativeSampler,
    sampler_resolver,
)


def random_triples(num_entities=30, num_relations=4, n=300, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(num_entities, (n,), generator=g)
    r = torch.randint(num_relations, (n,), generator=g)
    # relation 0 is 1-to-N (one head), relation 1 is N-to-1 (one tail); others random
    h = torch.where(r == 0, torch.zeros_like(h), h)
    t = torch.randint(num_entities, (n,), generator=g)
    t = torch.where(r == 1, torch.ones_like(t), t)
    return torch.stack([h, r, t], 1)


def brute_force_head_probability(triples: torch.Tensor, relation: int) -> float:
    rows = {tuple(x) for x in triples.tolist() if x[1] == relation}
    heads = {h for h, _, _ in rows}
    tails = {t for _, _, t in rows}
    tph = len(rows) / len(heads)
    hpt = len(rows) / len(tails)
    return tph / (tph + hpt)


def test_bernoulli_probabilities_match_brute_force():
    triples = random_triples()
    sampler = BernoulliNegativeSampler(triples, 30, num_negatives=3)
    for r in range(4):
        assert sampler.head_probs[r].item() == pytest.approx(
            brute_force_head_probability(triples, r), rel=1e-6
        )
    assert sampler.head_probs[0] > 0.9  # 1-to-N: corrupt the single head
    assert sampler.head_probs[1] < 0.1  # N-to-1: corrupt the tails


def test_bernoulli_empirical_frequency():
    triples = random_triples()
    sampler = BernoulliNegativeSampler(triples, 30, num_negatives=50)
    batch = sampler.sample(triples, torch.Generator().manual_seed(1))
    for r in range(4):
        rows = triples[:, 1] == r
        freq = batch.corrupt_head[rows].float().mean().item()
        n = int(rows.sum()) * 50
        p = sampler.head_probs[r].item()
        assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3


@pytest.mark.parametrize("cls", [UniformNegativeSampler, BernoulliNegativeSampler])
def test_negatives_change_exactly_one_side_and_never_equal_the_positive(cls):
    triples = random_triples()
    batch = cls(triples, 30, num_negatives=20).sample(triples, torch.Generator().manual_seed(0))
    neg, pos = batch.negatives, triples[:, None, :].expand_as(batch.negatives)
    assert neg.shape == (len(triples), 20, 3)
    assert torch.equal(neg[..., 1], pos[..., 1])
    head_changed, tail_changed = neg[..., 0] != pos[..., 0], neg[..., 2] != pos[..., 2]
    assert torch.equal(head_changed, batch.corrupt_head)
    assert torch.equal(tail_changed, ~batch.corrupt_head)
    assert ((neg >= 0) & (neg < 30)).all()


def test_uniform_side_and_entity_distribution():
    triples = torch.tensor([[0, 0, 1]])
    batch = UniformNegativeSampler(triples, 5, num_negatives=20000).sample(
        triples, torch.Generator().manual_seed(0)
    )
    assert abs(batch.corrupt_head.float().mean().item() - 0.5) < 0.02
    heads = batch.negatives[0, batch.corrupt_head[0], 0]
    counts = torch.bincount(heads, minlength=5).float() / len(heads)
    assert counts[0] == 0  # never the original head
    assert torch.allclose(counts[1:], torch.full((4,), 0.25), atol=0.02)


def test_filtered_mask_drops_exactly_the_known_triples():
    triples = random_triples(num_entities=8, n=120)
    sampler = sampler_resolver.make(
        "uniform", triples=triples, num_entities=8, num_negatives=16, filtered=True
    )
    batch = sampler.sample(triples, torch.Generator().manual_seed(3))
    known = {tuple(x) for x in triples.tolist()}
    for row, keep in zip(batch.negatives.view(-1, 3).tolist(), batch.mask.view(-1).tolist()):
        assert keep == (tuple(row) not in known)
    assert (~batch.mask).any()  # the dense toy graph makes some collisions


def test_sampling_is_reproducible_from_the_generator():
    triples = random_triples()
    sampler = BernoulliNegativeSampler(triples, 30, num_negatives=4)
    a = sampler.sample(triples, torch.Generator().manual_seed(7)).negatives
    b = sampler.sample(triples, torch.Generator().manual_seed(7)).negatives
    assert torch.equal(a, b)
