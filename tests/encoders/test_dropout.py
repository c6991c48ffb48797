"""The encoders' dropout: a uniform-draw mask on CPU, with F.dropout's distribution and gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gnnlm.encoders import dropout as dropout_module
from gnnlm.encoders.dropout import dropout


def test_mask_is_the_uniform_draw_kept_at_or_above_p():
    x = torch.randn(50, 7, dtype=torch.float64)
    torch.manual_seed(3)
    out = dropout(x, 0.3)
    torch.manual_seed(3)
    u = torch.empty_like(x).uniform_()  # the same draws, by hand
    expected = torch.where(u >= 0.3, x / 0.7, torch.zeros_like(x))
    torch.testing.assert_close(out, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_and_mean_match_p(p):
    torch.manual_seed(0)
    n = 1_000_000
    out = dropout(torch.ones(n), p)
    dropped = (out == 0).double().mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(dropped - p) < 5 * sigma, (dropped, p)
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))
    # unbiased: E[out] = 1 (the kept count's own binomial noise, scaled)
    assert abs(out.double().mean().item() - 1) < 5 * sigma / (1 - p)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_drop_rate_is_exact_in_every_float_dtype(dtype):
    """bfloat16's own uniform_ keeps u >= 0.1 with probability 0.898 (rounded draws): 13 sigma off."""
    torch.manual_seed(0)
    n = 2_000_000
    out = dropout(torch.ones(n, dtype=dtype), 0.1)
    assert out.dtype == dtype
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - 0.1) < 5 * math.sqrt(0.09 / n), dropped


def test_gradient_is_the_same_mask():
    x = torch.randn(30, 6, requires_grad=True)
    grad = torch.randn(30, 6)
    torch.manual_seed(1)
    out = dropout(x, 0.4)
    out.backward(grad)
    kept = out.detach() != 0
    torch.testing.assert_close(x.grad, torch.where(kept, grad / 0.6, torch.zeros_like(grad)))


def test_inplace_on_a_product_output_keeps_the_gradients():
    a = torch.randn(20, 5, requires_grad=True)
    w = torch.randn(5, 4, requires_grad=True)
    torch.manual_seed(2)
    out = dropout(a @ w, 0.5, inplace=True)
    torch.manual_seed(2)
    ref = dropout(a @ w, 0.5)
    torch.testing.assert_close(out, ref)
    out.square().sum().backward()
    grad_a, grad_w = a.grad.clone(), w.grad.clone()
    a.grad = w.grad = None
    ref.square().sum().backward()
    torch.testing.assert_close(grad_a, a.grad)
    torch.testing.assert_close(grad_w, w.grad)


def test_identity_when_not_training_or_p_zero_and_zeros_at_one():
    x = torch.randn(4, 3)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    out = dropout(x, 1.0)
    assert torch.equal(out, torch.zeros_like(x))  # no 0 * inf
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        dropout(x, 1.5)


def test_flag_off_is_torch_dropout(monkeypatch):
    monkeypatch.setattr(dropout_module, "UNIFORM_MASK_ON_CPU", False)
    x = torch.randn(40, 8)
    torch.manual_seed(5)
    out = dropout(x, 0.25)
    torch.manual_seed(5)
    torch.testing.assert_close(out, F.dropout(x, 0.25, training=True))
