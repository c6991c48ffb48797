"""The order of ``injection: [...]`` does not change the model (issue 11).

Modes are built (random draws included) and run in a canonical order, and every mode of a fused layer
reads the node states of the GNN layer just run; graph injection's node update is added after all modes.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from gnnlm.fusion import FusionState
from tests.fusion.helpers import EXAMPLES, build, collator, perturb

ORDERS = [
    ["graph", "entity"],
    ["graph", "entity", "memory", "relation", "adaptive"],
    ["dual_tower", "graph", "entity"],
]


def _outputs(model, batch):
    with torch.no_grad():
        out = model(batch, output_hidden_states=True)
    return out


@pytest.mark.parametrize("modes", ORDERS, ids=str)
def test_any_order_of_the_modes_gives_the_same_model(modes):
    batch = collator()(EXAMPLES)
    kwargs = {"entity": {"source": "gnn"}}  # entity reads the node states graph mode updates
    ref_model = build("bert", modes, injection_kwargs=kwargs)
    perturb(ref_model)
    ref = _outputs(ref_model, batch)
    assert not torch.allclose(
        ref.last_hidden_state, ref_model.lm(batch.input_ids, batch.attention_mask), atol=1e-3
    )
    perms = list(itertools.permutations(modes))
    for order in perms[1:] if len(perms) <= 6 else [perms[-1], perms[len(perms) // 2]]:
        model = build("bert", list(order), injection_kwargs=kwargs)
        assert list(model.injections) == list(order)  # shown in the config's order
        fresh, ref_fresh = (
            model.state_dict(),
            build("bert", modes, injection_kwargs=kwargs).state_dict(),
        )
        assert fresh.keys() == ref_fresh.keys()
        for key in fresh:  # same seed, same weights whatever the order
            assert torch.equal(fresh[key], ref_fresh[key]), key
        perturb(model)
        out = _outputs(model, batch)
        for a, b in zip(out.hidden_states, ref.hidden_states):
            assert torch.equal(a, b), order
        assert torch.equal(out.pooled_output, ref.pooled_output)
        assert torch.equal(out.node_states, ref.node_states)


def test_modes_of_a_layer_read_the_gnn_output_not_each_others_node_update():
    model = build("bert", ["entity", "graph"], injection_kwargs={"entity": {"source": "gnn"}})
    perturb(model)
    batch = collator()(EXAMPLES)
    seen = []
    entity = model.injections["entity"]
    original = entity.layer_delta

    def spy(i, hidden, state: FusionState):
        seen.append((state.node_states, list(state.node_updates)))
        return original(i, hidden, state)

    entity.layer_delta = spy
    try:
        with torch.no_grad():
            model(batch)
    finally:
        del entity.layer_delta
    # Graph (after entity in name order... and in any order) hands in its update; entity never sees
    # it pending nor applied within the layer.
    assert len(seen) == 2 and all(updates == [] for _, updates in seen)
    graph = model.injections["graph"]
    state = FusionState(batch)
    state.node_states = torch.randn(batch.graph.num_nodes, 16)
    before = state.node_states
    graph.layer_delta(0, torch.randn(*batch.input_ids.shape, 32), state)
    assert state.node_states is before and len(state.node_updates) == 1
    state.apply_node_updates()
    assert not torch.equal(state.node_states, before) and state.node_updates == []
