"""The optimised fusion path equals the reference implementation (tests/fusion/reference.py).

Outputs (every layer's hidden states, pooled output, node states) and the gradients of every parameter
of one model, run once with the current code and once with the reference swapped in.
"""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import to_dense_batch

from gnnlm.fusion import FusionState, MaskedCrossAttention
from tests.fusion import reference
from tests.fusion.helpers import EXAMPLES, build, collator, example, perturb

CASES = [
    ("graph", "gnn"),
    ("relation", "gnn"),
    (["graph", "entity", "relation"], "gnn"),
    (["graph", "entity", "relation"], "learned"),
    (["graph", "adaptive"], "gnn"),
    (["entity", "relation", "memory", "dual_tower"], "gnn"),
]


def _run(model, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(batch, output_hidden_states=True)
    loss = out.pooled_output.square().sum() + out.last_hidden_state.sin().sum()
    if out.node_states is not None:
        loss = loss + out.node_states.square().sum()
    if out.contrastive_loss is not None:
        loss = loss + out.contrastive_loss
    loss.backward()
    values = {f"hidden_{i}": h for i, h in enumerate(out.hidden_states)}
    values["pooled"] = out.pooled_output
    if out.node_states is not None:
        values["nodes"] = out.node_states
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in values.items()}, grads


@pytest.mark.parametrize(("modes", "source"), CASES, ids=str)
def test_outputs_and_gradients_equal_the_reference(modes, source):
    model = build("bert", modes, injection_kwargs={"entity": {"source": source}}).train()
    for module in model.modules():  # deterministic: no dropout
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    perturb(model)  # open every gate, so each fusion block changes the outputs
    batch = collator()(EXAMPLES)
    fast, fast_grads = _run(model, batch)
    with reference.use_reference(model):
        ref, ref_grads = _run(model, batch)
    lm_only = model.lm(batch.input_ids, batch.attention_mask)
    assert not torch.allclose(fast["hidden_2"], lm_only, atol=1e-3)  # fusion is really active
    assert fast.keys() == ref.keys() and fast_grads.keys() == ref_grads.keys()
    for key in fast:
        torch.testing.assert_close(fast[key], ref[key], atol=1e-5, rtol=1e-4, msg=key)
    for name in fast_grads:
        torch.testing.assert_close(
            fast_grads[name], ref_grads[name], atol=1e-5, rtol=1e-4, msg=name
        )
    # Outside the block the optimised code is back.
    again, _ = _run(model, batch)
    assert torch.equal(again["pooled"], fast["pooled"])


def test_reference_swap_is_really_different_code():
    """The swap takes effect: a broken reference would be caught by the test above."""
    model = build("bert", ["graph", "relation"]).eval()
    perturb(model)
    batch = collator()(EXAMPLES)
    calls = []
    original = reference.relation_bias

    def counting(*args):
        calls.append(1)
        return original(*args)

    reference.relation_bias = counting
    try:
        with reference.use_reference(model), torch.no_grad():
            model(batch)
    finally:
        reference.relation_bias = original
    assert len(calls) == model.lm.num_layers


def test_cross_attention_equals_reference_with_empty_examples_and_no_keys():
    torch.manual_seed(0)
    attn = MaskedCrossAttention(8, 6, num_heads=2)
    query, key = torch.randn(3, 4, 8, requires_grad=True), torch.randn(3, 5, 6, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    for k, m in (
        (key, mask),
        (key[:, :0], mask[:, :0]),
    ):  # some examples without keys; no keys at all
        outs = []
        for forward in (attn.forward, lambda *a: reference.cross_attention(attn, *a)):
            attn.zero_grad(set_to_none=True)
            query.grad = key.grad = None
            out = forward(query, k, m)
            (out * torch.arange(out.numel()).view_as(out).cos()).sum().backward()
            grads = [query.grad] + [p.grad for p in attn.parameters()]
            grads += [key.grad] if k.size(1) else []
            outs.append((out.detach(), grads))
        (fast, fast_grads), (ref, ref_grads) = outs
        torch.testing.assert_close(fast, ref)
        assert torch.isfinite(fast).all()
        for a, b in zip(fast_grads, ref_grads):
            torch.testing.assert_close(
                a if a is not None else torch.zeros_like(b),
                b if b is not None else torch.zeros_like(a),
            )


def test_dense_node_layout_equals_to_dense_batch():
    # An example without nodes in the middle of the batch, and a batch without any node.
    for examples in ([EXAMPLES[0], EXAMPLES[3], EXAMPLES[2]], [EXAMPLES[3], example("no entity")]):
        batch = collator()(examples)
        state = FusionState(batch)
        state.node_states = torch.randn(batch.graph.num_nodes, 5)
        dense, mask = state.dense_nodes()
        ref_dense, ref_mask = to_dense_batch(
            state.node_states, batch.graph.batch, batch_size=batch.batch_size
        )
        assert torch.equal(dense, ref_dense) and torch.equal(mask, ref_mask)
        before = state.node_states
        state.set_dense_nodes(dense * 2, mask)
        assert torch.equal(state.node_states, before * 2)
