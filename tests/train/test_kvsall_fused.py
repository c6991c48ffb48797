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


# -- slices of the candidates ----------------------------------------------------------------------
def sliced_case(interaction_name, side, *, train=False):
    from gnnlm.kge import resolve_interaction

    torch.manual_seed(0)
    inter = resolve_interaction(interaction_name, 4)
    inter.train(train)
    dim = inter.representation_dims(4)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(7, dim[0], generator=g).requires_grad_()
    r = torch.randn(7, dim[1], generator=g).requires_grad_()
    ent = torch.randn(19, dim[0], generator=g).requires_grad_()
    if side == "tail":
        score = inter.score_t
    else:  # (?, r, t): the query's anchor is the tail
        score = lambda r_, t_, cand: inter.score_h(cand, r_, t_)  # noqa: E731
    queries = (h, r) if side == "tail" else (r, h)
    return inter, score, queries, ent


def gradients(value, tensors):
    value.backward()
    out = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("interaction", ["distmult", "complex", "transe", "rotate", "tucker"])
@pytest.mark.parametrize("width", [None, 4, 1])  # one slice; uneven slices; one entity each
@pytest.mark.parametrize("side", ["tail", "head"])
def test_sliced_loss_and_gradients_equal_the_reference(name, eps, interaction, width, side):
    inter, score, queries, ent = sliced_case(interaction, side)
    loss = LOSSES[name]()
    targets = random_targets(7, 19, torch.Generator().manual_seed(2), eps, empty_row=True)
    tensors = [*queries, ent, *inter.parameters()]
    ref_value = loss.kvsall(score(*queries, ent), targets.dense())
    ref = gradients(ref_value, tensors)
    fused_value = fused_kvsall_loss(loss, score(*queries, ent), targets)
    fused = gradients(fused_value, tensors)
    value = kvsall_fused.sliced_kvsall_loss(
        loss, score, queries, ent, targets, width=width, params=tuple(inter.parameters())
    )
    got = gradients(value * 2.0, tensors)  # an incoming gradient of 2
    torch.testing.assert_close(value.detach(), ref_value.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(value.detach(), fused_value.detach(), rtol=1e-5, atol=1e-6)
    for a, b, c in zip(got, ref, fused):
        # (TuckER's head-side gradients sum many terms near 0: absolute tolerance)
        torch.testing.assert_close(a, 2.0 * b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a, 2.0 * c, rtol=1e-4, atol=1e-5)


def test_sliced_loss_replays_dropout_and_adds_up_over_row_blocks():
    # TuckER in train mode draws dropout masks: the backward sweep must see the forward's masks.
    inter, score, queries, ent = sliced_case("tucker", "tail", train=True)
    loss = CrossEntropyLoss()
    targets = random_targets(7, 19, torch.Generator().manual_seed(3), 0.1)
    tensors = [*queries, ent, *inter.parameters()]
    torch.manual_seed(5)
    ref_value = fused_kvsall_loss(loss, score(*queries, ent), targets)
    ref = gradients(ref_value, tensors)
    torch.manual_seed(5)
    value = kvsall_fused.sliced_kvsall_loss(
        loss, score, queries, ent, targets, params=tuple(inter.parameters())
    )
    state = torch.get_rng_state()
    got = gradients(value, tensors)
    assert torch.equal(torch.get_rng_state(), state)  # the backward sweep replays, then restores
    torch.testing.assert_close(value.detach(), ref_value.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # Several slices in train mode: a mask per slice, the same masks in the backward sweep as in
    # the forward one (the reference scores the slices in order, from the same seed).
    torch.manual_seed(6)
    manual = torch.cat([score(*queries, ent[a : a + 5]) for a in range(0, 19, 5)], dim=1)
    ref_value = loss.kvsall(manual, targets.dense())
    ref = gradients(ref_value, tensors)
    torch.manual_seed(6)
    value = kvsall_fused.sliced_kvsall_loss(
        loss, score, queries, ent, targets, width=5, params=tuple(inter.parameters())
    )
    got = gradients(value, tensors)
    torch.testing.assert_close(value.detach(), ref_value.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Two row blocks with num_rows = 7 add up to the whole batch's loss, in eval mode.
    inter.eval()
    whole = kvsall_fused.sliced_kvsall_loss(loss, score, queries, ent, targets, width=5)
    parts = []
    for rows in (torch.arange(0, 3), torch.arange(3, 7)):
        keep = (targets.rows >= rows[0]) & (targets.rows <= rows[-1])
        sub = KvsAllTargets(targets.rows[keep] - rows[0], targets.cols[keep], len(rows), 19, 0.1)
        q = tuple(x[rows] for x in queries)
        parts.append(kvsall_fused.sliced_kvsall_loss(loss, score, q, ent, sub, 7, width=5))
    torch.testing.assert_close(sum(parts), whole, rtol=1e-5, atol=1e-6)


def test_slice_width_bounds_the_block():
    assert kvsall_fused.slice_width(256, 2_500_000) * 256 <= kvsall_fused.MAX_SLICE_ELEMENTS
    assert kvsall_fused.slice_width(256, 2_500_000, max_elements=256 * 1000) == 1000
    assert kvsall_fused.slice_width(4, 10) == 10
    assert kvsall_fused.slice_width(10**9, 10) == 1
    with pytest.raises(ValueError, match="19 columns for 18 candidates"):
        _, score, queries, ent = sliced_case("distmult", "tail")
        kvsall_fused.sliced_kvsall_loss(
            BCELoss(), score, queries, ent[:18], random_targets(7, 19, torch.Generator(), 0.0)
        )


@pytest.mark.parametrize("interaction", ["distmult", "rotate"])
@pytest.mark.parametrize("reciprocal", [True, False])
@pytest.mark.parametrize("name", ["bce", "crossentropy"])
def test_sliced_side_loss_equals_the_fused_loop(interaction, reciprocal, name):
    """The loop's batch (both sides), scored in slices of 4 entities, equals its fused step."""
    g = torch.Generator().manual_seed(0)
    triples = torch.stack(
        [torch.randint(13, (40,), generator=g), torch.randint(3, (40,), generator=g),
         torch.randint(13, (40,), generator=g)], dim=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_kge_model(interaction, 13, 3, 4, reciprocal=reciprocal)
    loop = KvsAllLoop(
        model, triples, 3, LOSSES[name](), batch_size=16, reciprocal=reciprocal,
        label_smoothing=0.1, fused=True,
    )  # fmt: skip
    indices = torch.randperm(loop.num_examples, generator=torch.Generator().manual_seed(5))[:16]
    model.zero_grad()
    expected = loop.batch_loss(indices, torch.Generator())
    expected.backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reps = model.representations()
    value = 0.0
    for side in (0, 1):
        queries = indices[loop.sides[indices] == side]
        if len(queries):
            value = value + kvsall_fused.sliced_side_loss(
                model, loop.loss, reps, loop.anchors[queries], loop.relations[queries], side,
                loop.sparse_targets(queries), len(indices), max_elements=4 * len(queries),
            )  # fmt: skip
    value.backward()
    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip((p.grad for p in model.parameters()), ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reciprocal", [True, False])
@pytest.mark.parametrize("name", ["bce", "crossentropy"])
def test_loop_over_its_score_budget_slices_and_equals_the_one_buffer_step(reciprocal, name):
    """A KvsAllLoop whose batch's [B, N] scores exceed ``max_scores`` scores bounded slices of
    candidates (the path for millions of entities) and gives the one-buffer step's loss and gradients."""
    g = torch.Generator().manual_seed(1)
    triples = torch.stack(
        [torch.randint(13, (40,), generator=g), torch.randint(3, (40,), generator=g),
         torch.randint(13, (40,), generator=g)], dim=1,
    )  # fmt: skip
    indices = torch.arange(16)
    results = []
    for max_scores in (None, 40):  # 40 floats: slices of a few entities
        torch.manual_seed(0)
        model = build_kge_model("distmult", 13, 3, 4, reciprocal=reciprocal)
        loop = KvsAllLoop(
            model, triples, 3, LOSSES[name](), batch_size=16, reciprocal=reciprocal,
            label_smoothing=0.1, max_scores=max_scores,
        )  # fmt: skip
        calls = []
        original = kvsall_fused.sliced_kvsall_loss
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(
                kvsall_fused, "sliced_kvsall_loss",
                lambda *a, _calls=calls, _original=original, **k: (
                    _calls.append(k) or _original(*a, **k)
                ),
            )  # fmt: skip
            loss = loop.batch_loss(indices, torch.Generator())
        loss.backward()
        assert bool(calls) == (max_scores is not None)
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for x, y in zip(grads_b, grads_a):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="max_scores must be >= 1"):
        KvsAllLoop(model, triples, 3, LOSSES[name](), batch_size=16, max_scores=0)
