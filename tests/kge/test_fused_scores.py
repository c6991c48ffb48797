"""Hand-written backward passes of interactions against their autograd reference expressions."""

from __future__ import annotations

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
