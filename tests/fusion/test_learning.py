"""Injection learns from the first step while a fresh model is still exactly the LM (issue 11).

``gate_init: open`` (default): each mode's output projection starts at zero with its gate open, so

(a) a fresh model's outputs equal the plain LM's (and its node states the plain GNN's);
(b) at step 0 every output projection (and the relation bias table) has a non-zero gradient;
(c) after one optimizer step, every trainable fusion and GNN parameter has a non-zero gradient.

Exceptions, by the chain rule (whatever is upstream of an exactly zero factor gets a zero gradient):
at step 0 the gates (``delta = tanh(g) * W_o f`` with ``W_o f = 0``), ``f``'s own weights, the GNN
through the text path and the adaptive gate (it scales the zero sum of the other modes' deltas) have a
zero gradient; all of them have a non-zero one at step 1. ``gate_init: closed`` (the old behaviour) is
tested for contrast: at step 0 only the gates learn.
"""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import TanhGate, injection_parameters
from tests.fusion.helpers import ALL_MODES, EXAMPLES, NAMES, build, collator

#: every mode that injects into the LM (dual tower: into the pooled output), alone or with adaptive
MODES = ALL_MODES + [["graph", "adaptive"], ["graph", "entity", "relation", "memory"]]


def _loss(out):
    """Reads the text (pooled and token states), the graph (pooled linked nodes) and the towers."""
    loss = out.pooled_output.square().sum() + out.last_hidden_state.sin().sum()
    if out.graph_pooled_output is not None:
        loss = loss + out.graph_pooled_output.square().sum()
    if out.contrastive_loss is not None:
        loss = loss + out.contrastive_loss
    return loss


def _model(modes, **kwargs):
    kwargs.setdefault("injection_kwargs", {"entity": {"source": "gnn"}})
    model = build("bert", modes, **kwargs).train()
    for module in model.modules():  # deterministic: no dropout
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def _grads(model, batch, loss_fn=_loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss_fn(model(batch)).backward()
    return {
        name: (p.grad if p.grad is not None else torch.zeros_like(p))
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def _nonzero(grads: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, g in grads.items() if bool(g.abs().sum() > 0)}


def _output_names(model) -> set[str]:
    params = {
        id(p)
        for inj in model.injections.values()
        for m in inj.output_modules()
        for p in m.parameters()
    }
    return {name for name, p in model.named_parameters() if id(p) in params}


def _gate_names(model) -> set[str]:
    return {
        f"{name}.weight" for name, module in model.named_modules() if isinstance(module, TanhGate)
    }


@pytest.mark.parametrize("modes", MODES, ids=str)
def test_a_fresh_model_is_the_plain_lm_and_the_plain_gnn(modes):
    model = _model(modes)
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        out = model(batch)
        plain = model.lm(batch.input_ids, batch.attention_mask)
    real = batch.attention_mask.bool()
    assert torch.equal(out.last_hidden_state[real], plain[real])
    if model.encoder is None:
        return
    with torch.no_grad():  # the node side starts as the identity too
        x = model.node_features(batch.graph.n_id) + model.role_embedding(model.node_roles(batch))
        for j in range(model.encoder.num_layers):
            x, _ = model.encoder.layer_forward(j, x, batch.graph.edge_index, batch.graph.edge_type)
    assert torch.equal(out.node_states, x)


@pytest.mark.parametrize("modes", MODES, ids=str)
def test_at_step_0_every_output_projection_has_a_gradient(modes):
    model = _model(modes)
    nonzero = _nonzero(_grads(model, collator()(EXAMPLES)))
    outputs = _output_names(model)
    if "relation" in modes:
        outputs.add("injections.relation.weight")  # the bias table is its own zero output
    assert outputs and outputs <= nonzero, sorted(outputs - nonzero)
    # ... and, necessarily, the gates do not yet: they multiply an exactly zero output.
    assert not _gate_names(model) & nonzero


def test_graph_mode_step_0_gradients_open_against_closed():
    """The measurement of the issue, with a loss on the text only: closed, 1 tensor (the gate) of the
    42 fusion tensors learns at step 0; open, the two token-side output projections (4 tensors, 2112
    numbers); neither gives the GNN a gradient through the text path at step 0."""
    batch = collator()(EXAMPLES)

    def text_loss(out):
        return out.pooled_output.square().sum()

    closed = _model("graph", gate_init="closed")
    nonzero = _nonzero(_grads(closed, batch, text_loss))
    assert nonzero - {n for n in nonzero if n.startswith("lm.")} == {"injections.graph.gate.weight"}

    model = _model("graph")
    grads = _grads(model, batch, text_loss)
    fusion = {n for n in _nonzero(grads) if not n.startswith("lm.")}
    expected = {
        f"injections.graph.token_to_node.{j}.o.{p}" for j in range(2) for p in ("weight", "bias")
    }
    assert fusion == expected
    assert sum(grads[n].numel() for n in fusion) == 2 * (32 * 32 + 32)
    assert len([n for n in grads if n.startswith("injections.")]) == 42


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("gate_init", ["open", "closed"])
@pytest.mark.parametrize("modes", MODES, ids=str)
def test_after_one_step_every_fusion_and_gnn_parameter_has_a_gradient(modes, gate_init, optimizer):
    model = _model(modes, gate_init=gate_init)
    batch = collator()(EXAMPLES)
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = make([p for p in model.parameters() if p.requires_grad], lr=0.05)
    _grads(model, batch)
    opt.step()
    grads = _grads(model, batch)
    groups = injection_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    checked = [names[id(p)] for p in groups["fusion"] + groups["gnn"] if p.requires_grad]
    assert checked
    missing = sorted(set(checked) - _nonzero(grads))
    assert not missing, missing


def test_gate_values_are_reported_open_and_follow_training():
    model = _model(["graph", "memory"])
    gates = model(collator()(EXAMPLES)).injection_gates
    open_ = float(torch.tanh(torch.tensor(1.0)))
    assert gates["graph"].tolist() == pytest.approx([open_, open_])
    assert gates["memory"].tolist() == pytest.approx([0.0, open_])  # memory on the last layer only
    with torch.no_grad():
        model.injections["graph"].gate.weight.fill_(0.5)
    assert model.injections["graph"].gate_values().tolist() == pytest.approx([0.4621] * 2, abs=1e-4)


@pytest.mark.parametrize("modes", ["graph", "memory", "entity", "dual_tower", "relation"])
def test_gate_values_live_on_the_parameters_device_and_dtype(modes):
    inj = build("bert", modes).injections[modes if isinstance(modes, str) else modes[0]]
    inj = inj.to(device="meta", dtype=torch.float64)
    values = inj.gate_values()
    assert values.device.type == "meta" and values.dtype == torch.float64


@pytest.mark.parametrize("node_features", ["kge", "text"])
def test_projected_node_features_learn_after_one_step(node_features):
    from gnnlm.fusion import FusedLM

    base = _model("graph")
    config = base.config
    config.node_features, config.node_features_trainable = node_features, True
    table = torch.randn(len(NAMES), 10)
    model = FusedLM(config, lm=base.lm, encoder=base.encoder, node_feature_table=table).train()
    batch = collator()(EXAMPLES)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _grads(model, batch)
    opt.step()
    grads = _grads(model, batch)
    gnn = [
        n
        for n, p in model.named_parameters()
        if id(p) in {id(q) for q in injection_parameters(model)["gnn"]}
    ]
    assert "node_projection.weight" in gnn and "node_embedding.weight" in gnn
    assert not set(gnn) - _nonzero(grads)
