"""Masked cross-attention equals a per-example loop over the real keys; gates start at their init."""

from __future__ import annotations

import torch

from gnnlm.fusion import MaskedCrossAttention, TanhGate


def test_masked_cross_attention_equals_per_example_reference():
    torch.manual_seed(0)
    attn = MaskedCrossAttention(8, 6, num_heads=2).eval()
    query, key = torch.randn(3, 4, 8), torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    out = attn(query, key, mask)
    for b in range(3):
        real = key[b, mask[b]]
        if len(real) == 0:
            torch.testing.assert_close(out[b], attn.o.bias.expand(4, 8))  # no keys: zero context
            continue
        q = attn.q(attn.norm(query[b])).view(4, 2, 4).transpose(0, 1)  # [heads, 4, 4]
        k = attn.k(real).view(-1, 2, 4).transpose(0, 1)
        v = attn.v(real).view(-1, 2, 4).transpose(0, 1)
        ctx = torch.softmax(q @ k.transpose(1, 2) / 2.0, -1) @ v  # [heads, 4, 4]
        torch.testing.assert_close(out[b], attn.o(ctx.transpose(0, 1).reshape(4, 8)))
    assert repr(attn) == "MaskedCrossAttention(8, 6, heads=2, head_channels=4)"


def test_tanh_gate_starts_closed_and_resets():
    gate = TanhGate(3)
    assert torch.equal(gate(1), torch.tensor(0.0))
    with torch.no_grad():
        gate.weight.fill_(1.0)
    gate.reset_parameters()
    assert torch.all(gate.weight == 0)
    assert repr(gate) == "TanhGate(3)"


def test_an_open_tanh_gate_resets_to_its_init():
    gate = TanhGate(2, init=1.0)
    torch.testing.assert_close(gate(0), torch.tanh(torch.tensor(1.0)))
    with torch.no_grad():
        gate.weight.zero_()
    gate.reset_parameters()
    assert torch.all(gate.weight == 1.0) and repr(gate) == "TanhGate(2, init=1)"
