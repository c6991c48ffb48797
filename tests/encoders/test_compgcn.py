"""CompGCNConv against a per-edge dense reference of the paper's formula."""

from __future__ import annotations

import pytest
import torch

from gnnlm.encoders import CompGCN, CompGCNConv, ccorr, compose
from gnnlm.encoders.compgcn import irfft_basis


def tiny_graph(seed: int = 0):
    """6 nodes, 2 relations + their inverses (types 2, 3), a multi-edge and a shared (dst, r) pair."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.tensor([0, 1, 2, 3, 4, 0, 1, 1, 5])
    dst = torch.tensor([1, 2, 3, 4, 5, 2, 0, 0, 0])
    rel = torch.tensor([0, 1, 0, 1, 0, 1, 1, 1, 1])
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)  # [2, 18]
    edge_type = torch.cat([rel, rel + 2])  # [18]
    x = torch.randn(6, 4, generator=gen)
    relation = torch.randn(4, 4, generator=gen)
    return x, edge_index, edge_type, relation


def dense_reference(conv: CompGCNConv, x, edge_index, edge_type, relation):
    """h_v = 1/3 (sum_in a_uv W_in phi(x_u, z_r) + sum_out a_uv W_out phi(...) + W_self phi(x_v, z_loop))."""
    num_forward = relation.size(0) // 2
    forward_edge = edge_type < num_forward
    n = x.size(0)
    in_res, out_res = torch.zeros(n, conv.out_channels), torch.zeros(n, conv.out_channels)
    for e in range(edge_index.size(1)):
        u, v, r = int(edge_index[0, e]), int(edge_index[1, e]), int(edge_type[e])
        same = forward_edge == forward_edge[e]  # the edges of this direction
        out_deg = int(((edge_index[0] == u) & same).sum())
        in_deg = int(((edge_index[1] == v) & same).sum())
        alpha = (out_deg * in_deg) ** -0.5
        msg = compose(x[u], relation[r], conv.composition)
        if forward_edge[e]:
            in_res[v] += alpha * msg @ conv.w_in
        else:
            out_res[v] += alpha * msg @ conv.w_out
    loop = compose(x, conv.loop_rel.expand_as(x), conv.composition) @ conv.w_loop
    out = (in_res + out_res + loop) / 3 + conv.bias
    return out, relation @ conv.w_rel


def test_ccorr_definition():
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    # (a * b)_k = sum_i a_i b_{(i + k) mod d}
    expected = torch.stack(
        [sum(a[:, i] * b[:, (i + k) % 5] for i in range(5)) for k in range(5)], dim=-1
    )
    torch.testing.assert_close(ccorr(a, b), expected)


@pytest.mark.parametrize("composition", ["sub", "mult", "corr"])
def test_compgcn_conv_matches_dense_reference(composition):
    x, edge_index, edge_type, relation = tiny_graph()
    conv = CompGCNConv(4, 5, composition=composition, batch_norm=False)
    torch.nn.init.normal_(conv.bias)
    out, rel = conv(x, edge_index, edge_type, relation)
    ref_out, ref_rel = dense_reference(conv, x, edge_index, edge_type, relation)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(rel, ref_rel)


@pytest.mark.parametrize("composition", ["sub", "mult", "corr"])
def test_fused_equals_per_edge_message_passing(composition):
    x, edge_index, edge_type, relation = tiny_graph(1)
    fused = CompGCNConv(4, 4, composition=composition)
    plain = CompGCNConv(4, 4, composition=composition, fused=False)
    plain.load_state_dict(fused.state_dict())
    fused.eval(), plain.eval()
    for a, b in zip(
        fused(x, edge_index, edge_type, relation), plain(x, edge_index, edge_type, relation)
    ):
        torch.testing.assert_close(a, b)


def test_directions_use_their_own_weights():
    """Zeroing W_out leaves exactly the forward-edge and self-loop terms."""
    x, edge_index, edge_type, relation = tiny_graph()
    conv = CompGCNConv(4, 4, batch_norm=False)
    with torch.no_grad():
        conv.w_out.zero_()
    keep = edge_type < 2
    only_forward, _ = conv(x, edge_index[:, keep], edge_type[keep], relation)
    both, _ = conv(x, edge_index, edge_type, relation)
    torch.testing.assert_close(both, only_forward)


def test_batch_norm_and_dropout_modes():
    x, edge_index, edge_type, relation = tiny_graph()
    conv = CompGCNConv(4, 4, dropout=0.5)
    conv.train()
    a, _ = conv(x, edge_index, edge_type, relation)
    torch.testing.assert_close(a.mean(0), torch.zeros(4), atol=1e-5, rtol=0)  # batch statistics
    conv.eval()
    b1, _ = conv(x, edge_index, edge_type, relation)
    b2, _ = conv(x, edge_index, edge_type, relation)
    torch.testing.assert_close(b1, b2)


def test_gradients_reach_every_parameter():
    x, edge_index, edge_type, relation = tiny_graph()
    x.requires_grad_(True)
    relation.requires_grad_(True)
    for composition in ("sub", "mult", "corr"):
        enc = CompGCN(4, 4, num_layers=2, composition=composition, dropout=0.0)
        out = enc(x, edge_index, edge_type, None, relation)
        (out.x.square().sum() + out.relation.square().sum()).backward()
        for name, p in enc.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (composition, name)
    assert x.grad.abs().sum() > 0 and relation.grad.abs().sum() > 0


def test_odd_relation_count_is_rejected():
    x, edge_index, edge_type, relation = tiny_graph()
    with pytest.raises(ValueError, match=r"even number\), got relation of shape \[3, 4\]"):
        CompGCNConv(4, 4)(x, edge_index, edge_type.clamp(max=2), relation[:3])


def test_reset_parameters_and_repr():
    conv = CompGCNConv(4, 6, composition="corr")
    before = conv.w_in.detach().clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.w_in)
    assert repr(conv) == "CompGCNConv(4, 6, composition='corr')"
    with pytest.raises(ValueError, match="unknown composition 'rotate'"):
        CompGCNConv(4, 4, composition="rotate")


@pytest.mark.parametrize("composition", ["sub", "mult", "corr"])
def test_many_relations_and_buckets_fused_equals_per_edge(composition):
    gen = torch.Generator().manual_seed(2)
    num_nodes, num_relations = 80, 30
    sizes = (torch.rand(num_relations, generator=gen) ** 3 * 200).long() + 1
    rel = torch.repeat_interleave(torch.arange(num_relations), sizes)
    edges = torch.randint(num_nodes, (2, len(rel)), generator=gen)
    edge_index = torch.cat([edges, edges.flip(0)], dim=1)
    edge_type = torch.cat([rel, rel + num_relations])
    x = torch.randn(num_nodes, 6, generator=gen)
    relation = torch.randn(2 * num_relations, 6, generator=gen)
    fused = CompGCNConv(6, 6, composition=composition).eval()
    plain = CompGCNConv(6, 6, composition=composition, fused=False).eval()
    plain.load_state_dict(fused.state_dict())
    a, _ = fused(x, edge_index, edge_type, relation)
    b, _ = plain(x, edge_index, edge_type, relation)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("composition", ["sub", "mult", "corr"])
def test_fused_gradients_equal_per_edge_message_passing(composition):
    """Entity, relation and parameter gradients of the one-pass layer equal the per-edge path's."""
    x, edge_index, edge_type, relation = tiny_graph(3)
    x, relation = x.double(), relation.double()
    fused = CompGCNConv(4, 5, composition=composition).double()
    plain = CompGCNConv(4, 5, composition=composition, fused=False).double()
    plain.load_state_dict(fused.state_dict())
    grads = []
    for conv in (fused, plain):
        xr, rr = x.clone().requires_grad_(), relation.clone().requires_grad_()
        out, rel = conv(xr, edge_index, edge_type, rr)
        (out.sin().sum() + rel.square().sum()).backward()
        grads.append([xr.grad, rr.grad] + [p.grad for p in conv.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_dropout_is_one_mask_over_both_directions_and_unbiased():
    """Dropout hits the in + out neighbour sum once per node and channel (not each direction).

    With the self-loop term and bias zeroed, every output entry is either 0 or the clean entry scaled
    by 1 / (1 - p); independent masks per direction would also give entries with one direction only.
    """
    x, edge_index, edge_type, relation = tiny_graph()
    conv = CompGCNConv(4, 4, dropout=0.5, batch_norm=False)
    with torch.no_grad():
        conv.w_loop.zero_()
    conv.eval()
    clean, _ = conv(x, edge_index, edge_type, relation)
    conv.train()
    torch.manual_seed(0)
    runs = torch.stack([conv(x, edge_index, edge_type, relation)[0] for _ in range(2000)])
    dropped = runs.abs() < 1e-7
    assert dropped.any() and not dropped.all()
    torch.testing.assert_close(runs[~dropped], (2 * clean.expand_as(runs))[~dropped])
    torch.testing.assert_close(runs.mean(0), clean, atol=0.1 * clean.abs().max().item(), rtol=0)
    conv.dropout = 0.0  # without dropout, training mode is the reference output exactly
    torch.testing.assert_close(conv(x, edge_index, edge_type, relation)[0], clean)


@pytest.mark.parametrize("d", [7, 8])
def test_irfft_basis_is_the_inverse_real_fft(d):
    """``u @ irfft_basis(d)`` equals ``irfft`` of the interleaved rows, odd and even widths."""
    f = d // 2 + 1
    u = torch.randn(5, 2 * f, dtype=torch.float64)
    want = torch.fft.irfft(torch.view_as_complex(u.view(5, f, 2)), n=d)
    torch.testing.assert_close(u @ irfft_basis(d, torch.float64), want)
    conj = torch.fft.irfft(torch.view_as_complex(u.view(5, f, 2)).conj(), n=d)
    torch.testing.assert_close(u @ irfft_basis(d, torch.float64, conjugate=True), conj)
    assert not torch.allclose(conj, want)


@pytest.mark.parametrize("composition", ["sub", "mult", "corr"])
def test_folded_self_loop_weight_equals_compose_then_multiply(composition):
    """``x @ W~ + c`` (the fused layer's self-loop term) = ``phi(x, z_loop) @ W_loop``."""
    conv = CompGCNConv(6, 4, composition=composition).double()
    x = torch.randn(9, 6, dtype=torch.float64)
    w, offset = conv._loop_weight()
    got = x @ w + (0 if offset is None else offset)
    torch.testing.assert_close(got, compose(x, conv.loop_rel, composition) @ conv.w_loop)
