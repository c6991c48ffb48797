from __future__ import annotations

import pytest
import torch

from gnnlm.kge import build_kge_model
from gnnlm.train.loops import KvsAllLoop, SLCWALoop
from gnnlm.train.losses import BCELoss, MarginRankingLoss
from gnnlm.train.negative_sampling import UniformNegativeSampler

TRIPLES = torch.tensor([[0, 0, 1], [0, 0, 2], [1, 0, 2], [2, 1, 0], [3, 1, 0], [0, 0, 1]])


def brute_force_targets(triples, reciprocal, num_relations):
    answers = {}
    for h, r, t in triples.tolist():
        answers.setdefault((0, h, r), set()).add(t)
        if reciprocal:
            answers.setdefault((0, t, r + num_relations), set()).add(h)
        else:
            answers.setdefault((1, t, r), set()).add(h)
    return answers


@pytest.mark.parametrize("reciprocal", [False, True])
def test_kvsall_targets_are_all_true_answers(reciprocal):
    model = build_kge_model("distmult", 5, 2, 4, reciprocal=reciprocal)
    loop = KvsAllLoop(model, TRIPLES, 2, BCELoss(), batch_size=3, reciprocal=reciprocal)
    expected = brute_force_targets(TRIPLES, reciprocal, 2)
    assert loop.num_examples == len(expected)
    targets = loop.targets(torch.arange(loop.num_examples))
    for q in range(loop.num_examples):
        key = (int(loop.sides[q]), int(loop.anchors[q]), int(loop.relations[q]))
        row = torch.zeros(5)
        row[sorted(expected[key])] = 1.0
        assert torch.equal(targets[q], row), key


def test_kvsall_label_smoothing():
    model = build_kge_model("distmult", 5, 2, 4)
    loop = KvsAllLoop(model, TRIPLES, 2, BCELoss(), batch_size=3, label_smoothing=0.2)
    targets = loop.targets(torch.arange(loop.num_examples))
    assert targets.unique().tolist() == pytest.approx([0.2 / 5, 0.8 + 0.2 / 5])


def test_kvsall_loss_equals_manual_computation():
    torch.manual_seed(0)
    model = build_kge_model("distmult", 5, 2, 4, reciprocal=True)
    loop = KvsAllLoop(model, TRIPLES, 2, BCELoss(), batch_size=8, reciprocal=True)
    idx = torch.arange(loop.num_examples)
    hr = torch.stack([loop.anchors, loop.relations], 1)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        model.score_t(hr), loop.targets(idx)
    )
    assert loop.batch_loss(idx, torch.Generator()).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_kvsall_refuses_margin_loss():
    with pytest.raises(ValueError, match="does not support KvsAll"):
        KvsAllLoop(
            build_kge_model("distmult", 5, 2, 4), TRIPLES, 2, MarginRankingLoss(), batch_size=2
        )


def test_self_adversarial_weights():
    model = build_kge_model("transe", 5, 2, 4)
    loop = SLCWALoop(
        model, TRIPLES, UniformNegativeSampler(TRIPLES, 5, num_negatives=3), MarginRankingLoss(),
        batch_size=2, adversarial_temperature=0.5,
    )  # fmt: skip
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    weights = loop.negative_weights(scores, None)
    assert torch.allclose(weights, torch.softmax(0.5 * scores.detach(), 1))
    assert not weights.requires_grad  # weights are constants (Sun et al. 2019)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    masked = loop.negative_weights(scores, mask)
    assert masked[0, 1] == 0 and masked[0].sum().item() == pytest.approx(1.0)
    assert masked[1].sum() == 0  # every negative filtered: no negative term


def test_batches_cover_every_example_once():
    model = build_kge_model("distmult", 5, 2, 4)
    loop = SLCWALoop(model, TRIPLES, UniformNegativeSampler(TRIPLES, 5), BCELoss(), batch_size=4)
    batches = list(loop.batches(torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(len(TRIPLES)))
