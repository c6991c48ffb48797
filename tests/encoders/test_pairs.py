"""RelationalPairs.propagate (one pass, reused workspace) against the step-by-step pair methods."""

from __future__ import annotations

import pytest
import torch

from gnnlm.encoders import pairs as pairs_module
from gnnlm.encoders.pairs import (
    MatmulOp,
    MulConjOp,
    MulOp,
    RelationalPairs,
    _complex,
    csr_matmul,
    csr_operators,
    sparse_mm,
    sparse_mm_difference,
)


def skewed_graph(num_nodes: int = 60, num_relations: int = 12, seed: int = 0):
    """A multigraph whose relations fall into several size buckets (1 to ~150 edges each)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = (torch.rand(num_relations, generator=gen) ** 3 * 150).long() + 1
    edge_type = torch.repeat_interleave(torch.arange(num_relations), sizes)
    edge_index = torch.randint(num_nodes, (2, len(edge_type)), generator=gen)
    return edge_index, edge_type, gen


def stepwise(pairs: RelationalPairs, x, weight, op_name, edge_weight, index, size):
    """The three steps one at a time (aggregate, per-relation op with autograd, scatter)."""
    pair_x = pairs.aggregate(x, edge_weight)  # [S, d]
    if op_name == "matmul":
        out = pairs.relation_matmul(pair_x, weight)
    elif op_name == "mul":
        out = pairs.per_relation(lambda a, z: a * z, pair_x, weight)
    else:
        out = pairs.per_relation(
            lambda a, z: torch.view_as_real(_complex(a) * _complex(z).conj()).flatten(-2),
            pair_x,
            weight,
        )
    return pairs.scatter(out, index, size)


OPS = {"matmul": MatmulOp(), "mul": MulOp(), "mul_conj": MulConjOp()}


@pytest.mark.parametrize("op_name", sorted(OPS))
@pytest.mark.parametrize(
    "chunk", [1 << 19, 8], ids=["one-chunk-per-bucket", "one-relation-per-chunk"]
)
@pytest.mark.parametrize("fine", [False, True], ids=["sqrt2-buckets", "fine-buckets"])
def test_propagate_equals_stepwise_values_and_gradients(op_name, chunk, fine, monkeypatch):
    monkeypatch.setattr(pairs_module, "CHUNK_ELEMENTS", chunk)
    if fine:  # the large-graph layout (width ratio 2^(1/4)) on this small graph
        monkeypatch.setattr(pairs_module, "FINE_BUCKET_PAIRS", 1)
    edge_index, edge_type, gen = skewed_graph()
    num_nodes, num_relations, d = 60, 12, 6
    pairs = RelationalPairs.build(edge_index, edge_type, num_nodes, num_relations)
    assert len(pairs.buckets) >= 4
    if chunk == 8:  # a chunk per relation, never part of one
        assert len(pairs.chunks(d)) == len(pairs.bucket_rel)
    else:
        assert len(pairs.chunks(d)) == len(pairs.buckets)
    x = torch.randn(num_nodes, d, dtype=torch.float64, generator=gen)
    shape = (num_relations, d, 4) if op_name == "matmul" else (num_relations, d)
    weight = torch.randn(*shape, dtype=torch.float64, generator=gen)
    edge_weight = torch.rand(len(edge_type), dtype=torch.float64, generator=gen)
    index = pairs.pair_dst + num_nodes * (pairs.pair_type % 2)  # two output blocks, as CompGCN
    results = []
    for fn in (
        lambda x, w: pairs.propagate(x, w, OPS[op_name], edge_weight, index, 2 * num_nodes),
        lambda x, w: stepwise(pairs, x, w, op_name, edge_weight, index, 2 * num_nodes),
    ):
        xr, wr = x.clone().requires_grad_(), weight.clone().requires_grad_()
        out = fn(xr, wr)
        out.sin().sum().backward()
        results.append((out.detach(), xr.grad, wr.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_workspace_is_reused_across_steps_and_not_shared_while_pending():
    edge_index, edge_type, gen = skewed_graph(seed=1)
    pairs = RelationalPairs.build(edge_index, edge_type, 60, 12)
    weight = torch.randn(12, 5, generator=gen, requires_grad=True)
    x = torch.randn(60, 5, generator=gen, requires_grad=True)

    def grads(*outs):
        x.grad = weight.grad = None
        sum(o.square().sum() for o in outs).backward()
        return x.grad.clone(), weight.grad.clone()

    one = pairs.propagate(x, weight, MulOp())
    expected = grads(one)
    first = pairs.workspace(5, torch.float32, "cpu").data_ptr()
    assert pairs.workspace(5, torch.float32, "cpu").data_ptr() == first  # free again after backward
    # Two forwards before one backward: each keeps its own aggregates.
    a, b = pairs.propagate(x, weight, MulOp()), pairs.propagate(x, weight, MulOp())
    for got, want in zip(grads(a, b), expected):
        torch.testing.assert_close(got, 2 * want)
    assert len(pairs._workspace[(5, torch.float32, torch.device("cpu"))]) == 2
    pending = pairs.propagate(x, weight, MulOp())
    assert pairs.workspace(5, torch.float32, "cpu").data_ptr() != first  # held by `pending`
    del pending  # a graph dropped without backward frees its buffer too
    assert pairs.workspace(5, torch.float32, "cpu").data_ptr() == first


def test_second_backward_is_refused_with_a_clear_error():
    edge_index, edge_type, gen = skewed_graph(seed=2)
    pairs = RelationalPairs.build(edge_index, edge_type, 60, 12)
    x = torch.randn(60, 4, generator=gen, requires_grad=True)
    out = pairs.propagate(x, torch.randn(12, 4, generator=gen), MulOp()).sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once per forward.*fused=False"):
        out.backward()


def test_operators_follow_in_place_edits_of_the_edge_weights():
    edge_index, edge_type, gen = skewed_graph(seed=3)
    pairs = RelationalPairs.build(edge_index, edge_type, 60, 12)
    x = torch.randn(60, 3, generator=gen)
    w = torch.rand(len(edge_type), generator=gen)
    before = pairs.aggregate(x, w)
    w.mul_(2.0)  # same tensor, new version: the cached sparse matrices must not be reused
    torch.testing.assert_close(pairs.aggregate(x, w), 2 * before)
    torch.testing.assert_close(pairs.aggregate(x, w.clone()), 2 * before)


def test_csr_operators_add_duplicates_and_transpose():
    row, col = torch.tensor([0, 2, 2, 1, 2]), torch.tensor([1, 0, 0, 3, 2])
    value = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    a, a_t = csr_operators(row, col, value, (3, 4))
    dense = torch.zeros(3, 4).index_put_((row, col), value, accumulate=True)
    assert torch.equal(a.to_dense(), dense) and torch.equal(a_t.to_dense(), dense.t())


def test_csr_operators_store_each_duplicate_entry_once():
    """Duplicates are summed into one stored entry, so a product gathers each source row once."""
    row, col = torch.tensor([0, 2, 2, 1, 2, 2]), torch.tensor([1, 0, 0, 3, 2, 0])
    value = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    a, a_t = csr_operators(row, col, value, (3, 4))
    assert a._nnz() == a_t._nnz() == 4  # (0,1), (1,3), (2,0) x3, (2,2)
    assert a.to_dense()[2, 0] == 11.0 and a_t.to_dense()[0, 2] == 11.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bag", [True, False], ids=["embedding-bag", "csr-kernel"])
def test_csr_matmul_equals_the_dense_product(dtype, bag, monkeypatch):
    """Both kernels of ``a @ x`` (``embedding_bag`` sums and torch's CSR product) equal the dense
    product, empty rows included (zero), and a matrix without rows gives ``[0, d]``."""
    monkeypatch.setattr(pairs_module, "EMBEDDING_BAG_SPMM", bag)
    gen = torch.Generator().manual_seed(11)
    row = torch.randint(0, 9, (50,), generator=gen) * 2  # odd rows stay empty
    col = torch.randint(0, 13, (50,), generator=gen)
    value = torch.rand(50, generator=gen, dtype=torch.float64)
    a, a_t = csr_operators(row, col, value, (20, 13))
    a, a_t = a.to(dtype), a_t.to(dtype)
    x = torch.randn(13, 5, generator=gen, dtype=dtype)
    out = csr_matmul(a, x)
    assert out.shape == (20, 5) and out.dtype == dtype
    torch.testing.assert_close(out, a.to_dense() @ x)
    assert out[1::2].eq(0).all()  # empty rows
    g = torch.randn(20, 5, generator=gen, dtype=dtype)
    torch.testing.assert_close(csr_matmul(a_t, g), a.to_dense().t() @ g)
    empty, _ = csr_operators(row[:0], col[:0], value[:0], (0, 13))
    assert csr_matmul(empty.to(dtype), x).shape == (0, 5)


@pytest.mark.parametrize("op_name", sorted(OPS))
def test_propagate_kernels_agree(op_name, monkeypatch):
    """The fused pass gives the same values and gradients with either sparse kernel."""
    monkeypatch.setattr(pairs_module, "CHUNK_ELEMENTS", 64)  # several chunks per bucket
    edge_index, edge_type, gen = skewed_graph(seed=7)
    pairs = RelationalPairs.build(edge_index, edge_type, 60, 12)
    x = torch.randn(60, 6, dtype=torch.float64, generator=gen)
    weight = {
        "matmul": torch.randn(12, 6, 4, dtype=torch.float64, generator=gen),
        "mul": torch.randn(12, 6, dtype=torch.float64, generator=gen),
        "mul_conj": torch.randn(12, 6, dtype=torch.float64, generator=gen),
    }[op_name]
    edge_weight = torch.rand(len(edge_type), dtype=torch.float64, generator=gen)
    results = []
    for bag in (True, False):
        monkeypatch.setattr(pairs_module, "EMBEDDING_BAG_SPMM", bag)
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        out = pairs.propagate(xi, wi, OPS[op_name], edge_weight)
        g = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(3))
        results.append((out, *torch.autograd.grad((out * g).sum(), (xi, wi))))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)


def test_sparse_mm_difference_value_and_gradients():
    """``A x - B z`` in one output equals the two separate products, value and both gradients."""
    gen = torch.Generator().manual_seed(5)
    row, col_a, col_b = (torch.randint(n, (40,), generator=gen) for n in (7, 9, 4))
    value = torch.rand(40, generator=gen, dtype=torch.float64)
    a, a_t = csr_operators(row, col_a, value, (7, 9))
    b, b_t = csr_operators(row, col_b, value, (7, 4))
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    z = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    out = sparse_mm_difference(a, a_t, x, b, b_t, z)
    ref = sparse_mm(a, a_t, x) - sparse_mm(b, b_t, z)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out, a.to_dense() @ x - b.to_dense() @ z)
    got = torch.autograd.grad((out * g).sum(), (x, z))
    want = torch.autograd.grad((ref * g).sum(), (x, z))
    for u, v in zip(got, want):
        torch.testing.assert_close(u, v)
    torch.testing.assert_close(got[1], -(b.to_dense().t() @ g))


def test_propagate_block_order_weight_equals_gathered_weight():
    """``block_order=True`` takes ``weight[bucket_rel]`` as given; a wrong row count is refused."""
    edge_index, edge_type, gen = skewed_graph(seed=4)
    pairs = RelationalPairs.build(edge_index, edge_type, 60, 12)
    x = torch.randn(60, 3, dtype=torch.float64, generator=gen)
    weight = torch.randn(12, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    g = torch.randn(60, 2, dtype=torch.float64, generator=gen)
    plain = pairs.propagate(x, weight, MatmulOp())
    (grad_plain,) = torch.autograd.grad((plain * g).sum(), weight)
    ordered = pairs.propagate(x, weight[pairs.bucket_rel], MatmulOp(), block_order=True)
    (grad_ordered,) = torch.autograd.grad((ordered * g).sum(), weight)
    torch.testing.assert_close(ordered, plain)
    torch.testing.assert_close(grad_ordered, grad_plain)
    with pytest.raises(ValueError, match="one weight row per block row"):
        pairs.propagate(x, weight[pairs.bucket_rel][1:], MatmulOp(), block_order=True)


@pytest.mark.parametrize("fine", [False, True])
def test_bucket_width_ratio_follows_the_graph_size(fine, monkeypatch):
    """Relations share a bucket only within a width ratio of sqrt(2) (small graphs) or 2^(1/4)."""
    if fine:
        monkeypatch.setattr(pairs_module, "FINE_BUCKET_PAIRS", 1)
    counts = list(range(1, 300))
    buckets, bucket_rel, _, _, num_slots = pairs_module._layout(counts)
    bound = 2 ** (1 / 4) if fine else 2**0.5
    rel = 0
    for r, n in buckets:
        members = [counts[int(i)] for i in bucket_rel[rel : rel + r]]
        assert max(members) == n and n / min(members) < bound
        rel += r
    assert num_slots == sum(r * n for r, n in buckets) >= sum(counts)
    assert len(buckets) == (28 if fine else 16)  # distinct floor(f log2 n), n = 1..299
