"""The 1-N product helper: the oneDNN path equals the plain product, and autograd keeps working."""

from __future__ import annotations

import torch

from gnnlm.kge import gemm
from gnnlm.kge.gemm import matmul_nt


def test_matmul_nt_equals_plain_product():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(37, 24, generator=g), torch.randn(101, 24, generator=g)
    expected = q.double() @ c.double().t()
    with torch.no_grad():
        fast = matmul_nt(q, c)
        column_major = matmul_nt(q, c.t().contiguous().t())  # same values, other strides
        strided_queries = matmul_nt(torch.randn(24, 37, generator=g).t(), c)
    torch.testing.assert_close(fast.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(column_major, fast, rtol=1e-6, atol=1e-6)
    assert strided_queries.shape == (37, 101)
    assert fast.dtype == torch.float32 and fast.is_contiguous()


def test_matmul_nt_gradients_and_switch(monkeypatch):
    q = torch.randn(5, 8, requires_grad=True)
    c = torch.randn(7, 8)
    out = matmul_nt(q, c)
    out.sum().backward()
    torch.testing.assert_close(q.grad, c.sum(0).expand(5, 8))
    monkeypatch.setattr(gemm, "USE_ONEDNN", False)
    with torch.no_grad():
        torch.testing.assert_close(matmul_nt(q, c), q @ c.t())
    double = matmul_nt(q.double().detach(), c.double())  # other dtypes: the plain product
    assert double.dtype == torch.float64


def test_training_product_gradients_equal_plain_autograd(monkeypatch):
    # With autograd the product is MatmulNT (entity-major output); the reference is plain `@`.
    g = torch.Generator().manual_seed(1)
    q0, c0, grad = (
        torch.randn(9, 16, generator=g),
        torch.randn(33, 16, generator=g),
        torch.randn(9, 33, generator=g),
    )
    results = []
    for fast in (True, False):
        monkeypatch.setattr(gemm, "USE_TRAINING_PRODUCT", fast)
        q, c = q0.clone().requires_grad_(), c0.clone().requires_grad_()
        out = matmul_nt(q, c)
        assert isinstance(out.grad_fn, gemm.MatmulNT._backward_cls) == fast
        assert out.t().is_contiguous() == fast  # entity-major
        out.backward(grad)
        results.append((out.detach(), q.grad, c.grad))
    for got, plain in zip(*results):
        torch.testing.assert_close(got, plain, rtol=1e-5, atol=1e-5)
