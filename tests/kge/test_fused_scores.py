"""Hand-written backward passes of interactions against their autograd reference expressions."""

from __future__ import annotations

import pytest
import torch

from gnnlm.kge import ComplEx
from gnnlm.kge.interactions.complex import _ComplExScore


def test_complex_fused_score_equals_the_reference_values_and_gradients():
    torch.manual_seed(0)
    model = ComplEx()
    inputs = [torch.randn(7, 10, requires_grad=True) for _ in range(3)]
    copies = [x.detach().clone().requires_grad_() for x in inputs]
    fused = model(*inputs)  # equal shapes: the fused path
    reference = model.reference_forward(*copies)
    assert torch.equal(fused, reference)
    weights = torch.randn(7)
    (fused * weights).sum().backward()
    (reference * weights).sum().backward()
    for x, y in zip(inputs, copies):
        torch.testing.assert_close(x.grad, y.grad)
    doubles = [torch.randn(3, 4, dtype=torch.double, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(_ComplExScore.apply, doubles)


def test_complex_broadcast_shapes_take_the_reference_path():
    torch.manual_seed(0)
    model = ComplEx()
    h, r, t = torch.randn(4, 1, 6), torch.randn(4, 1, 6), torch.randn(1, 5, 6)
    out = model(h, r, t)
    assert out.shape == (4, 5)
    torch.testing.assert_close(
        out, model.reference_forward(h.expand(4, 5, 6), r.expand(4, 5, 6), t.expand(4, 5, 6))
    )


def test_transe_l1_score_equals_vector_norm():
    from gnnlm.kge import TransE

    torch.manual_seed(0)
    h, r, t = (torch.randn(6, 9, requires_grad=True) for _ in range(3))
    h2, r2, t2 = (x.detach().clone().requires_grad_() for x in (h, r, t))
    out = TransE(p=1, margin=2.0)(h, r, t)
    reference = 2.0 - torch.linalg.vector_norm(h2 + r2 - t2, ord=1, dim=-1)
    torch.testing.assert_close(out, reference)
    out.sum().backward()
    reference.sum().backward()
    for x, y in zip((h, r, t), (h2, r2, t2)):
        torch.testing.assert_close(x.grad, y.grad)


def test_rotate_fused_distance_equals_the_reference():
    from gnnlm.kge import RotatE
    from gnnlm.kge.interactions.rotate import _RotatEDistance

    torch.manual_seed(0)
    model = RotatE(margin=6.0)
    h, r, t = (torch.randn(9, w, requires_grad=True) for w in (8, 4, 8))
    copies = [x.detach().clone().requires_grad_() for x in (h, r, t)]
    fused, reference = model(h, r, t), model.reference_forward(*copies)
    assert torch.equal(fused, reference)
    fused.sum().backward()
    reference.sum().backward()
    for x, y in zip((h, r, t), copies):
        torch.testing.assert_close(x.grad, y.grad)
    doubles = [torch.randn(3, w, dtype=torch.double, requires_grad=True) for w in (6, 3, 6)]
    assert torch.autograd.gradcheck(_RotatEDistance.apply, doubles)
    # a tail exactly on the rotated head: zero subgradient, no NaN
    on_head = model._rotate(h.detach(), r.detach()).requires_grad_()
    model(h, r, on_head).sum().backward()
    assert not on_head.grad.isnan().any() and (on_head.grad == 0).all()
    # broadcast shapes (1-N scoring) take the reference path
    out = model(h[:, None], r[:, None], t[None, :4])
    assert out.shape == (9, 4)


# -- score_pairs: heads and tails as one [2, n, d] block, one gradient for it ----------------------
PAIR_MODELS = {
    "transe": lambda: __import__("gnnlm.kge", fromlist=["TransE"]).TransE(p=1, margin=2.0),
    "distmult": lambda: __import__("gnnlm.kge", fromlist=["DistMult"]).DistMult(),
    "complex": lambda: ComplEx(),
    "rotate": lambda: __import__("gnnlm.kge", fromlist=["RotatE"]).RotatE(margin=6.0),
}
#: interactions whose pair kernel does the reference's operations in the same order (bit for bit)
BIT_EXACT = {"transe", "distmult"}


@pytest.mark.parametrize("name", sorted(PAIR_MODELS))
def test_score_pairs_equals_the_reference_values_and_gradients(name):
    torch.manual_seed(0)
    model = PAIR_MODELS[name]()
    d_e = 10
    d_r = 5 if name == "rotate" else d_e
    n = 7
    pairs = torch.randn(2, n, d_e, requires_grad=True)
    r = torch.randn(n, d_r, requires_grad=True)
    pairs2, r2 = (x.detach().clone().requires_grad_() for x in (pairs, r))
    fused = model.score_pairs(pairs, r)
    h, t = pairs2.unbind(0)
    reference = (
        model.reference_forward(h, r2, t)
        if hasattr(model, "reference_forward")
        else model(h, r2, t)
    )
    weights = torch.randn(n)
    (fused * weights).sum().backward()
    (reference * weights).sum().backward()
    check = torch.testing.assert_close
    if name in BIT_EXACT:
        assert torch.equal(fused, reference)
        check = lambda a, b: torch.testing.assert_close(a, b, rtol=0, atol=0)  # noqa: E731
    else:
        torch.testing.assert_close(fused, reference)
    check(pairs.grad, pairs2.grad)
    check(r.grad, r2.grad)
    assert pairs.grad.shape == (2, n, d_e) and pairs.grad.is_contiguous()


@pytest.mark.parametrize("name", sorted(PAIR_MODELS))
def test_score_pairs_passes_gradcheck(name):
    from gnnlm.kge.interactions.complex import _ComplExPairs
    from gnnlm.kge.interactions.distmult import _DistMultPairs
    from gnnlm.kge.interactions.rotate import _RotatEPairs
    from gnnlm.kge.interactions.transe import _TransEL1Pairs

    fn = {"transe": _TransEL1Pairs, "distmult": _DistMultPairs, "complex": _ComplExPairs,
          "rotate": _RotatEPairs}[name]  # fmt: skip
    torch.manual_seed(1)
    d_r = 3 if name == "rotate" else 6
    pairs = torch.randn(2, 4, 6, dtype=torch.double, requires_grad=True)
    r = torch.randn(4, d_r, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(fn.apply, (pairs, r))


def test_rotate_pairs_zero_distance_has_a_zero_subgradient():
    from gnnlm.kge import RotatE

    model = RotatE()
    h, phase = torch.randn(5, 8), torch.zeros(5, 4)  # phase 0: the rotated head is h, exactly
    t = torch.cat([h[:3], torch.randn(2, 8)])  # the first three tails sit on their rotated heads
    pairs = torch.stack([h, t]).requires_grad_()
    model.score_pairs(pairs, phase.requires_grad_()).sum().backward()
    assert not pairs.grad.isnan().any() and not phase.grad.isnan().any()
    assert (pairs.grad[:, :3] == 0).all() and (pairs.grad[:, 3:] != 0).any()


def test_transe_l2_score_pairs_takes_the_autograd_path():
    from gnnlm.kge import TransE

    torch.manual_seed(0)
    model = TransE(p=2)
    pairs, r = torch.randn(2, 6, 4), torch.randn(6, 4)
    assert torch.equal(model.score_pairs(pairs, r), model(pairs[0], r, pairs[1]))
