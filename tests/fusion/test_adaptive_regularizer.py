"""The adaptive gates' regulariser: sparsity and target openness over real tokens, added to the loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnnlm.fusion.gate_stats import record_outputs
from gnnlm.fusion.modes.adaptive import masked_layer_means
from gnnlm.tasks.triple_classification import TripleClassifier
from tests.fusion.helpers import EXAMPLES, build, collator


def adaptive(granularity: str = "token", **options):
    """A tiny ``[entity, adaptive]`` model (entity's zero output projection: the identity at start)."""
    kwargs = {"adaptive": {"granularity": granularity, **options}}
    return build("bert", ["entity", "adaptive"], injection_kwargs=kwargs)


def hand_regularizer(
    gates: torch.Tensor, mask: torch.Tensor, kind: str, target=None
) -> torch.Tensor:
    """The regulariser, unweighted, by explicit loops over layers and real tokens."""
    per_layer = []
    for layer in gates:  # [batch, seq]
        values = [
            float(layer[b, s])
            for b in range(mask.size(0))
            for s in range(mask.size(1))
            if mask[b, s]
        ]
        per_layer.append(sum(values) / len(values))
    per_layer = torch.tensor(per_layer, dtype=torch.float64)
    if kind == "sparsity":
        return per_layer.mean()
    return (per_layer - target).pow(2).mean()


@pytest.fixture(scope="module")
def batch():
    batch = collator()(EXAMPLES)
    assert not batch.attention_mask.bool().all()  # the batch has padding, so masking matters
    return batch


def test_identity_at_initialisation_holds_with_a_regulariser(batch):
    plain = adaptive()
    regularized = adaptive(regularizer="sparsity", regularizer_weight=1.0)
    real = batch.attention_mask.bool()
    reference = plain.lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    out = regularized(batch)
    assert torch.equal(out.last_hidden_state[real], reference.last_hidden_state[real])
    assert out.regularization_loss is not None and out.regularization_loss.dim() == 0


@pytest.mark.parametrize("granularity", ["token", "layer"])
def test_sparsity_equals_the_mean_gate_over_real_tokens_and_descent_lowers_the_gates(
    batch, granularity
):
    model = adaptive(granularity, regularizer="sparsity", regularizer_weight=0.3)
    out = model(batch)
    expected = 0.3 * hand_regularizer(
        out.knowledge_gates.detach(), batch.attention_mask, "sparsity"
    )
    assert out.regularization_loss.item() == pytest.approx(float(expected), rel=1e-5)

    out.regularization_loss.backward()
    gate = model.injections["adaptive"]
    assert torch.all(gate.bias.grad > 0)  # d mean(sigmoid) / d b > 0: descent closes every layer
    before = masked_layer_means(out.knowledge_gates.detach(), batch.attention_mask)
    with torch.no_grad():
        for p in gate.parameters():
            if p.grad is not None:
                p -= 5.0 * p.grad
    after = masked_layer_means(model(batch).knowledge_gates, batch.attention_mask)
    assert torch.all(after < before)


@pytest.mark.parametrize("bias, direction", [(2.0, -1), (-2.0, 1)], ids=["above", "below"])
def test_target_pulls_the_mean_gate_toward_the_target_from_both_sides(batch, bias, direction):
    """sigmoid(2) ~ .88 is above a .5 target and sigmoid(-2) ~ .12 below it: gradient descent on the
    regulariser alone moves every layer's mean gate toward .5 (down from above, up from below)."""
    model = adaptive(regularizer="target", target=0.5, regularizer_weight=1.0, bias=bias)
    gate = model.injections["adaptive"]
    out = model(batch)
    expected = hand_regularizer(out.knowledge_gates.detach(), batch.attention_mask, "target", 0.5)
    assert out.regularization_loss.item() == pytest.approx(float(expected), rel=1e-5)
    start = masked_layer_means(out.knowledge_gates.detach(), batch.attention_mask)
    out.regularization_loss.backward()
    assert torch.all(torch.sign(gate.bias.grad) == -direction)  # descent moves b toward the target

    optimizer = torch.optim.SGD(gate.parameters(), lr=20.0)
    for _ in range(10):
        optimizer.zero_grad()
        model(batch).regularization_loss.backward()
        optimizer.step()
    end = masked_layer_means(model(batch).knowledge_gates.detach(), batch.attention_mask)
    assert torch.all(direction * (end - start) > 0)  # moved toward .5 ...
    assert torch.all((end - 0.5).abs() < (start - 0.5).abs() / 2)  # ... and most of the way


def test_no_regulariser_no_field_and_the_loss_is_the_bce(batch):
    model = TripleClassifier(adaptive(), seed=0)
    with record_outputs(model.fused) as outputs:
        logits, loss = model(batch)
    assert outputs[0].regularization_loss is None
    bce = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels.float())
    assert torch.equal(loss, bce)


@pytest.mark.parametrize("kind, target", [("sparsity", None), ("target", 0.3)])
def test_the_classifier_adds_weight_times_the_regulariser(batch, kind, target):
    model = TripleClassifier(
        adaptive(regularizer=kind, target=target, regularizer_weight=0.25), seed=0
    )
    with record_outputs(model.fused) as outputs:
        logits, loss = model(batch)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels.float())
    gates = outputs[0].knowledge_gates.detach()
    hand = hand_regularizer(gates, batch.attention_mask, kind, target)
    assert (loss - bce).item() == pytest.approx(0.25 * float(hand), rel=1e-5)
    assert float(hand) > 0.01  # a visible term, not a rounding error


@pytest.mark.parametrize("kind, target", [("sparsity", None), ("target", 0.3)])
def test_padding_tokens_do_not_count(batch, kind, target):
    """Other token ids at the padding positions change the gates there (they read the padded hidden
    states) but neither the real tokens' gates nor the regulariser."""
    model = adaptive(regularizer=kind, target=target, regularizer_weight=1.0)
    with torch.no_grad():  # gates that differ from token to token (at start all are ~sigmoid(2))
        weight = model.injections["adaptive"].weight
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * 0.3)
    pad = ~batch.attention_mask.bool()
    other = collator()(EXAMPLES)
    other.input_ids = torch.where(pad, torch.full_like(other.input_ids, 7), other.input_ids)
    a, b = model(batch), model(other)
    assert not torch.allclose(a.knowledge_gates[:, pad], b.knowledge_gates[:, pad])
    assert torch.allclose(a.knowledge_gates[:, ~pad], b.knowledge_gates[:, ~pad], atol=1e-6)
    assert a.regularization_loss.item() == pytest.approx(b.regularization_loss.item(), abs=1e-6)
    # and the value is the masked mean, not the mean over every position
    unmasked = hand_regularizer(
        a.knowledge_gates.detach(), torch.ones_like(batch.attention_mask), kind, target
    )
    assert a.regularization_loss.item() != pytest.approx(float(unmasked), rel=1e-3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"regularizer": "l2"}, "regularizer must be one of"),
        ({"regularizer": "target"}, "needs a target in"),
        ({"regularizer": "target", "target": 1.0}, "needs a target in"),
        ({"regularizer": "sparsity", "target": 0.5}, "only with regularizer: target"),
        ({"regularizer": "sparsity", "regularizer_weight": -1.0}, "regularizer_weight must be"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        adaptive(**options)
