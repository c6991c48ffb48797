from __future__ import annotations

import math

import pytest
import torch

from gnnlm.train.losses import (
    BCELoss,
    CrossEntropyLoss,
    MarginRankingLoss,
    SoftplusLoss,
    loss_resolver,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


POS = torch.tensor([2.0, -1.0])
NEG = torch.tensor([[1.5, -3.0], [0.5, -2.0]])


def test_margin_ranking_by_hand():
    loss = MarginRankingLoss(margin=1.0).slcwa(POS, NEG)
    # row 0: max(0, 1 - 2 + 1.5) = 0.5, max(0, 1 - 2 - 3) = 0 -> mean 0.25
    # row 1: max(0, 1 + 1 + 0.5) = 2.5, max(0, 1 + 1 - 2) = 0 -> mean 1.25
    assert loss.item() == pytest.approx((0.25 + 1.25) / 2)
    weighted = MarginRankingLoss(margin=1.0).slcwa(
        POS, NEG, torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    )
    assert weighted.item() == pytest.approx((0.5 + 0.25 * 2.5) / 2)


def test_margin_ranking_refuses_kvsall():
    assert not MarginRankingLoss.supports_kvsall
    with pytest.raises(NotImplementedError, match="slcwa"):
        MarginRankingLoss().kvsall(torch.zeros(1, 3), torch.zeros(1, 3))


def test_softplus_by_hand():
    loss = SoftplusLoss(margin=0.5).slcwa(POS, NEG)
    row0 = softplus(-(2.0 + 0.5)) + (softplus(1.5 + 0.5) + softplus(-3.0 + 0.5)) / 2
    row1 = softplus(-(-1.0 + 0.5)) + (softplus(0.5 + 0.5) + softplus(-2.0 + 0.5)) / 2
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    scores, targets = torch.tensor([[1.0, -2.0]]), torch.tensor([[1.0, 0.0]])
    expected = (softplus(-1.0) + softplus(-2.0)) / 2
    assert SoftplusLoss().kvsall(scores, targets).item() == pytest.approx(expected, rel=1e-6)


def test_bce_by_hand():
    loss = BCELoss().slcwa(POS, NEG)
    total = softplus(-2.0) + softplus(1.0)  # positives: -log sigmoid(s)
    total += (
        softplus(1.5) + softplus(-3.0) + softplus(0.5) + softplus(-2.0)
    )  # negatives: -log(1 - sigmoid)
    assert loss.item() == pytest.approx(total / 6, rel=1e-6)
    scores, targets = torch.tensor([[1.0, -2.0, 0.0]]), torch.tensor([[0.9, 0.1, 0.5]])
    expected = (
        sum(
            -(y * math.log(1 / (1 + math.exp(-s))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-s))))
            for s, y in zip([1.0, -2.0, 0.0], [0.9, 0.1, 0.5])
        )
        / 3
    )
    assert BCELoss().kvsall(scores, targets).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_by_hand():
    loss = CrossEntropyLoss().slcwa(POS, NEG)
    row0 = -2.0 + math.log(math.exp(2.0) + math.exp(1.5) + math.exp(-3.0))
    row1 = 1.0 + math.log(math.exp(-1.0) + math.exp(0.5) + math.exp(-2.0))
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # a filtered negative (weight 0) is left out of the softmax
    masked = CrossEntropyLoss().slcwa(POS[:1], NEG[:1], torch.tensor([[0.0, 1.0]]))
    assert masked.item() == pytest.approx(-2.0 + math.log(math.exp(2.0) + math.exp(-3.0)), rel=1e-6)
    # KvsAll: two true answers share the target mass
    scores, targets = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 0.0, 1.0]])
    log_z = math.log(math.exp(1.0) + math.exp(2.0) + math.exp(3.0))
    expected = -0.5 * (1.0 - log_z) - 0.5 * (3.0 - log_z)
    assert CrossEntropyLoss().kvsall(scores, targets).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("margin", MarginRankingLoss), ("marginranking", MarginRankingLoss), ("softplus", SoftplusLoss),
     ("logistic", SoftplusLoss), ("bce", BCELoss), ("crossentropy", CrossEntropyLoss), ("ce", CrossEntropyLoss)],
)  # fmt: skip
def test_loss_resolver_names(name, cls):
    assert type(loss_resolver.make(name)) is cls
