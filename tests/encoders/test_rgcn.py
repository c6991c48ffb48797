"""RGCNConv against a per-edge dense reference and against stock PyG RGCNConv / FastRGCNConv."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import FastRGCNConv
from torch_geometric.nn import RGCNConv as PyGRGCNConv

from gnnlm.encoders import RGCN, RelationalPairs, RGCNConv


def tiny_graph(num_nodes: int = 6, num_relations: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    src = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1, 1, 2, 5, 3, 3])
    dst = torch.tensor([1, 2, 3, 4, 5, 0, 2, 0, 0, 0, 0, 3, 1])  # multi-edges and a self-edge
    edge_type = torch.randint(0, num_relations, (len(src),), generator=gen)
    edge_type[7:9] = 1  # the same (dst, relation) pair twice, and a duplicate edge
    x = torch.randn(num_nodes, 4, generator=gen)
    return x, torch.stack([src, dst]), edge_type


def dense_reference(conv: RGCNConv, x, edge_index, edge_type):
    """x'_i = root x_i + sum_r sum_{j in N_r(i)} W_r x_j / c_{i,r} + b, one edge at a time."""
    w = conv.relation_weight()
    out = x @ conv.root + conv.bias
    for e in range(edge_index.size(1)):
        j, i, r = int(edge_index[0, e]), int(edge_index[1, e]), int(edge_type[e])
        if conv.relation_aggr == "mean":
            c = int(((edge_index[1] == i) & (edge_type == r)).sum())
        else:
            c = 1
        out[i] = out[i] + x[j] @ w[r] / c
    return out


@pytest.mark.parametrize(
    "decomp", [{}, {"num_bases": 2}, {"num_blocks": 2}], ids=["full", "basis", "block"]
)
@pytest.mark.parametrize("aggr", ["mean", "add"])
def test_rgcn_conv_matches_dense_reference(decomp, aggr):
    x, edge_index, edge_type = tiny_graph()
    conv = RGCNConv(4, 6 if "num_blocks" not in decomp else 4, 3, aggr=aggr, **decomp)
    torch.nn.init.normal_(conv.bias)
    out = conv(x, edge_index, edge_type)
    torch.testing.assert_close(out, dense_reference(conv, x, edge_index, edge_type))


def test_block_weight_is_block_diagonal():
    conv = RGCNConv(4, 6, 2, num_blocks=2)
    w = conv.relation_weight()  # [2, 4, 6]
    assert w.shape == (2, 4, 6)
    torch.testing.assert_close(w[1, :2, :3], conv.weight[1, 0])
    torch.testing.assert_close(w[1, 2:, 3:], conv.weight[1, 1])
    assert w[:, :2, 3:].abs().sum() == 0 and w[:, 2:, :3].abs().sum() == 0


@pytest.mark.parametrize("stock", [PyGRGCNConv, FastRGCNConv])
@pytest.mark.parametrize("decomp", [{"num_bases": 2}, {"num_blocks": 2}], ids=["basis", "block"])
def test_rgcn_conv_matches_stock_pyg(stock, decomp):
    x, edge_index, edge_type = tiny_graph()
    ours = RGCNConv(4, 4, 3, **decomp)
    theirs = stock(4, 4, 3, **decomp)
    theirs.load_state_dict(ours.state_dict())  # same parameter names and layouts
    torch.nn.init.normal_(ours.bias)
    theirs.bias.data.copy_(ours.bias.data)
    torch.testing.assert_close(ours(x, edge_index, edge_type), theirs(x, edge_index, edge_type))


@pytest.mark.parametrize("aggr", ["mean", "add"])
def test_fused_equals_message_passing(aggr):
    """The sparse pair aggregation equals PyG propagate() with the layer's own message()."""
    x, edge_index, edge_type = tiny_graph()
    fused = RGCNConv(4, 4, 3, num_bases=2, aggr=aggr)
    plain = RGCNConv(4, 4, 3, num_bases=2, aggr=aggr, fused=False)
    plain.load_state_dict(fused.state_dict())
    torch.testing.assert_close(fused(x, edge_index, edge_type), plain(x, edge_index, edge_type))
    pairs = RelationalPairs.build(edge_index, edge_type, 6, 3)
    assert pairs.num_unique_pairs < edge_index.size(1)  # the tiny graph does share pairs


def test_gradients_reach_every_parameter_and_input():
    x, edge_index, edge_type = tiny_graph()
    x.requires_grad_(True)
    for decomp in ({"num_bases": 2}, {"num_blocks": 2}, {}):
        enc = RGCN(4, 4, 3, num_layers=2, **decomp)
        enc(x, edge_index, edge_type).x.square().sum().backward()
        for name, p in enc.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gradient_matches_dense_reference():
    x, edge_index, edge_type = tiny_graph()
    conv = RGCNConv(4, 4, 3, num_bases=2)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    conv(x1, edge_index, edge_type).sin().sum().backward()
    g1 = [p.grad.clone() for p in conv.parameters()]
    conv.zero_grad()
    dense_reference(conv, x2, edge_index, edge_type).sin().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for a, p in zip(g1, conv.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_edge_dropout_is_training_only_and_unbiased():
    x, edge_index, edge_type = tiny_graph()
    conv = RGCNConv(4, 4, 3, edge_dropout=0.5, self_loop_dropout=0.5)
    conv.eval()
    clean = conv(x, edge_index, edge_type)
    conv.train()
    torch.manual_seed(0)
    runs = torch.stack([conv(x, edge_index, edge_type) for _ in range(1000)])
    assert not torch.allclose(runs[0], clean)
    # Kept edges and self-loops are scaled by 1 / (1 - p): the mean over samples is the clean output
    # (without the scaling it would be off by about half the output's magnitude, ~1 here).
    torch.testing.assert_close(runs.mean(0), clean, atol=0.3, rtol=0.0)


def test_cache_rebuilds_on_new_or_edited_graph():
    x, edge_index, edge_type = tiny_graph()
    conv = RGCNConv(4, 4, 3)
    a = conv(x, edge_index, edge_type)
    edge_type2 = edge_type.clone()
    edge_type2[0] = (edge_type2[0] + 1) % 3
    b = conv(x, edge_index, edge_type2)
    torch.testing.assert_close(b, dense_reference(conv, x, edge_index, edge_type2))
    edge_type2[0] = edge_type[0]  # in-place edit back: the version counter changes
    torch.testing.assert_close(conv(x, edge_index, edge_type2), a)


def test_reset_parameters_and_repr():
    conv = RGCNConv(4, 6, 5, num_bases=3)
    before = [p.detach().clone() for p in conv.parameters()]
    conv.reset_parameters()
    assert any(not torch.equal(a, p) for a, p in zip(before, conv.parameters()))
    assert repr(conv) == "RGCNConv(4, 6, num_relations=5, num_bases=3, aggr='mean')"
    assert (
        repr(RGCNConv(4, 4, 2, num_blocks=2))
        == "RGCNConv(4, 4, num_relations=2, num_blocks=2, aggr='mean')"
    )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_blocks=3 must divide in_channels=4"):
        RGCNConv(4, 6, 2, num_blocks=3)
    x, edge_index, edge_type = tiny_graph()
    with pytest.raises(ValueError, match=r"relation ids outside \[0, 2\)"):
        RGCNConv(4, 4, 2)(x, edge_index, edge_type + 1)


def test_many_relations_and_buckets_match_stock_pyg():
    """A random multigraph whose relations fall into many size buckets (1 to ~250 pairs each)."""
    gen = torch.Generator().manual_seed(1)
    num_nodes, num_relations = 120, 40
    sizes = (
        torch.rand(num_relations, generator=gen) ** 3 * 400
    ).long() + 1  # skewed, like real KGs
    edge_type = torch.repeat_interleave(torch.arange(num_relations), sizes)
    edge_index = torch.randint(num_nodes, (2, len(edge_type)), generator=gen)
    x = torch.randn(num_nodes, 8, generator=gen, requires_grad=True)
    ours = RGCNConv(8, 8, num_relations, num_bases=5)
    theirs = FastRGCNConv(8, 8, num_relations, num_bases=5)
    theirs.load_state_dict(ours.state_dict())
    pairs = RelationalPairs.build(edge_index, edge_type, num_nodes, num_relations)
    assert len(pairs.buckets) >= 5
    out = ours(x, edge_index, edge_type)
    torch.testing.assert_close(out, theirs(x, edge_index, edge_type))
    (g_ours,) = torch.autograd.grad(out.square().sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs(x, edge_index, edge_type).square().sum(), x)
    torch.testing.assert_close(g_ours, g_theirs)


@pytest.mark.parametrize(
    "decomp", [{}, {"num_bases": 2}, {"num_blocks": 2}], ids=["full", "basis", "block"]
)
def test_relation_weight_of_some_rows_equals_rows_of_all(decomp):
    """``relation_weight(rows)`` (built per relation, the fused layer's input) = ``[rows]`` of all."""
    conv = RGCNConv(4, 6, 5, **decomp)
    rows = torch.tensor([3, 0, 4])
    torch.testing.assert_close(conv.relation_weight(rows), conv.relation_weight()[rows])
    grads = []
    for w in (conv.relation_weight(rows), conv.relation_weight()[rows]):
        conv.zero_grad(set_to_none=True)
        (w * torch.arange(w.numel()).view_as(w)).sum().backward()
        grads.append([p.grad.clone() for p in conv.parameters() if p.grad is not None])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
