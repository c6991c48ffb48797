"""The fused KvsAll losses equal the unfused reference (dense targets, ``Loss.kvsall``) in value and
gradient, per loss and through the training loop."""

from __future__ import annotations

import pytest
import torch

from gnnlm.kge import build_kge_model, gemm
from gnnlm.train import kvsall_fused
from gnnlm.train.kvsall_fused import KvsAllTargets, fused_kvsall_loss
from gnnlm.train.loops import KvsAllLoop
from gnnlm.train.losses import BCELoss, CrossEntropyLoss, SoftplusLoss
from gnnlm.train.regularizers import regularizer_resolver

LOSSES = {
    "bce": BCELoss,
    "softplus": lambda: SoftplusLoss(margin=0.7),
    "crossentropy": CrossEntropyLoss,
}


def random_targets(b, n, generator, eps, empty_row=False):
    dense = torch.rand(b, n, generator=generator) < 0.15
    dense[0, :3] = True  # a row with several answers
    if empty_row:
        dense[1] = False
    rows, cols = dense.nonzero().unbind(1)
    return KvsAllTargets(rows, cols, b, n, eps)


def product_grads(loss, targets, fused, *, num_rows=None, blocks=1):
    """Loss and (dQ, dE) of ``loss(Q @ E.T)``, through the fused or the reference path."""
    g = torch.Generator().manual_seed(1)
    q = (torch.randn(targets.num_rows, 6, generator=g) * 2).requires_grad_()
    e = (torch.randn(targets.num_cols, 6, generator=g) * 2).requires_grad_()
    if fused:
        value = 0.0
        rows = torch.arange(targets.num_rows).tensor_split(blocks)
        for part in rows:
            keep = (targets.rows >= part[0]) & (targets.rows <= part[-1])
            sub = KvsAllTargets(
                targets.rows[keep] - part[0], targets.cols[keep], len(part), targets.num_cols,
                targets.label_smoothing,
            )  # fmt: skip
            scores = gemm.matmul_nt(q[part], e)  # [b, N]
            value = value + fused_kvsall_loss(loss, scores, sub, num_rows or targets.num_rows)
    else:
        value = loss.kvsall(q @ e.t(), targets.dense())
    value.backward()
    return value.detach(), q.grad, e.grad


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("slice_elements", [2**18, 50])  # one slice; slices of 2 rows
def test_fused_loss_and_gradients_equal_reference(name, eps, slice_elements, monkeypatch):
    monkeypatch.setattr(kvsall_fused, "SLICE_ELEMENTS", slice_elements)
    loss = LOSSES[name]()
    targets = random_targets(9, 23, torch.Generator().manual_seed(0), eps, empty_row=True)
    ref = product_grads(loss, targets, fused=False)
    for blocks in (1, 3):  # a batch scored in several blocks adds up to the same loss
        got = product_grads(loss, targets, fused=True, blocks=blocks)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("entity_major", [False, True])
def test_fused_loss_on_generic_scores_works_on_a_copy(name, entity_major):
    # Scores from other ops (here scaled) are not overwritten, whatever their layout; same gradient.
    loss, targets = LOSSES[name](), random_targets(5, 11, torch.Generator().manual_seed(2), 0.2)
    x = torch.randn(11, 5).t() if entity_major else torch.randn(5, 11)
    x.requires_grad_()
    scores = x * 3.0
    before = scores.detach().clone()
    fused_kvsall_loss(loss, scores, targets).backward()
    assert torch.equal(scores.detach(), before)
    x_ref = x.detach().clone().requires_grad_()
    loss.kvsall(x_ref * 3.0, targets.dense()).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-7)


def test_fused_gradient_reuses_the_score_buffer():
    # The point of the fusion: the [B, N] gradient handed to the product's backward is the score
    # buffer itself, not a new matrix.
    q = torch.randn(4, 8, requires_grad=True)
    e = torch.randn(30, 8, requires_grad=True)
    scores = gemm.matmul_nt(q, e)
    assert isinstance(scores.grad_fn, gemm.MatmulNT._backward_cls)
    seen = []
    scores.register_hook(lambda grad: seen.append(grad.data_ptr()))
    pointer = scores.data_ptr()
    targets = random_targets(4, 30, torch.Generator().manual_seed(3), 0.1)
    out = fused_kvsall_loss(BCELoss(), scores, targets)
    out.backward(retain_graph=True)
    assert seen == [pointer]
    with pytest.raises(RuntimeError, match="only once"):
        out.backward()


@pytest.mark.parametrize("interaction", ["distmult", "complex"])
@pytest.mark.parametrize("reciprocal", [True, False])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_fused_loop_equals_reference_loop(interaction, reciprocal, name):
    g = torch.Generator().manual_seed(0)
    num_entities, num_relations = 13, 3
    triples = torch.stack(
        [
            torch.randint(num_entities, (40,), generator=g),
            torch.randint(num_relations, (40,), generator=g),
            torch.randint(num_entities, (40,), generator=g),
        ],
        dim=1,
    )
    torch.manual_seed(0)
    model = build_kge_model(interaction, num_entities, num_relations, 8, reciprocal=reciprocal)
    regularizer = regularizer_resolver.make("n3", weight=0.01)
    grads, values = [], []
    for fused in (False, True):
        loop = KvsAllLoop(
            model, triples, num_relations, LOSSES[name](), batch_size=16, reciprocal=reciprocal,
            label_smoothing=0.1, regularizer=regularizer, fused=fused,
        )  # fmt: skip
        model.zero_grad()
        indices = torch.randperm(loop.num_examples, generator=torch.Generator().manual_seed(5))[:16]
        value = loop.batch_loss(indices, torch.Generator())
        value.backward()
        values.append(value.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-7)
    for fused_grad, ref_grad in zip(grads[1], grads[0]):
        torch.testing.assert_close(fused_grad, ref_grad, rtol=1e-5, atol=1e-7)


def test_fused_loop_reuses_its_score_buffer_only_after_backward():
    g = torch.Generator().manual_seed(0)
    triples = torch.stack(
        [torch.randint(11, (30,), generator=g), torch.randint(2, (30,), generator=g),
         torch.randint(11, (30,), generator=g)], dim=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_kge_model("complex", 11, 2, 4, reciprocal=False)
    loops = {
        fused: KvsAllLoop(model, triples, 2, CrossEntropyLoss(), batch_size=8, fused=fused)
        for fused in (True, False)
    }
    first, second = torch.arange(8), torch.arange(8, 16)
    grads = {}
    for fused, loop in loops.items():
        # Gradient accumulation: two forwards before one backward must not share a buffer.
        model.zero_grad()
        (loop.batch_loss(first, g) + loop.batch_loss(second, g)).backward()
        grads[fused] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    loop = loops[True]
    loop.batch_loss(first, g).backward()
    pointer = loop._score_buffer._buffer.data_ptr()
    loop.batch_loss(second, g).backward()  # the previous step is done: same memory
    assert loop._score_buffer._buffer.data_ptr() == pointer


@pytest.mark.parametrize("interaction", ["tucker", "conve", "transe", "rotate"])
def test_fused_loop_equals_reference_for_other_interactions(interaction):
    # TuckER / ConvE tails write into the buffer (MatmulNT); TransE / RotatE scores get copied.
    g = torch.Generator().manual_seed(0)
    triples = torch.stack(
        [torch.randint(13, (40,), generator=g), torch.randint(3, (40,), generator=g),
         torch.randint(13, (40,), generator=g)], dim=1,
    )  # fmt: skip
    kwargs = {"embedding_height": 2, "kernel_size": 2, "num_filters": 4}
    torch.manual_seed(0)
    model = build_kge_model(
        interaction, 13, 3, 8, reciprocal=interaction != "transe",
        interaction_kwargs=kwargs if interaction == "conve" else None,
    )  # fmt: skip
    results = []
    for fused in (False, True):
        loop = KvsAllLoop(
            model, triples, 3, CrossEntropyLoss(), batch_size=16,
            reciprocal=interaction != "transe", label_smoothing=0.1, fused=fused,
        )  # fmt: skip
        model.zero_grad()
        torch.manual_seed(1)  # same dropout masks
        value = loop.batch_loss(torch.arange(16), torch.Generator())
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-7)
    for fused_grad, ref_grad in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(fused_grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_fused_loss_scales_with_the_incoming_gradient():
    targets = random_targets(4, 9, torch.Generator().manual_seed(4), 0.1)
    q0, e0 = torch.randn(4, 5), torch.randn(9, 5)
    grads = []
    for fused in (True, False):
        q = q0.clone().requires_grad_()
        if fused:
            value = fused_kvsall_loss(BCELoss(), gemm.matmul_nt(q, e0), targets)
        else:
            value = BCELoss().kvsall(q @ e0.t(), targets.dense())
        (2.5 * value).backward()
        grads.append(q.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
