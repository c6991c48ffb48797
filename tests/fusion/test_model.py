"""FusedLM behaviour: identity at init, learning, batch isolation, padding invariance, GNN calls, I/O."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import FusedLM, FusionConfig, injection_parameters
from tests.fusion.helpers import ALL_MODES, EXAMPLES, NAMES, build, collator, example, perturb

ARCHS = ["bert", "roberta"]


def _real(batch):
    return batch.attention_mask.bool()


@pytest.mark.parametrize("gate_init", ["open", "closed"])
@pytest.mark.parametrize("arch", ARCHS + ["distilbert"])
@pytest.mark.parametrize("modes", ALL_MODES, ids=str)
def test_fresh_model_reproduces_the_lm(arch, modes, gate_init):
    model = build(arch, modes, gate_init=gate_init)
    batch = collator()(EXAMPLES)
    out = model(batch, output_hidden_states=True)
    reference = model.lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    real = _real(batch)
    assert torch.equal(out.last_hidden_state[real], reference.last_hidden_state[real])
    assert len(out.hidden_states) == model.lm.num_layers + 1
    # Gates really are there: open (tanh(1)) with zero output projections, or closed (zero); the
    # relation bias table starts at zero, adaptive at sigmoid(2).
    expected = torch.tanh(torch.tensor(1.0)) if gate_init == "open" else 0.0
    for name, gates in out.injection_gates.items():
        if name == "relation":
            assert torch.all(gates == 0), name
        elif name == "memory":  # one memory layer (the last fused one), 0 elsewhere
            assert gates.tolist() == [0.0, float(expected)], name
        elif name != "adaptive":
            assert torch.all(gates == expected), name
        outputs = model.injections[name].output_modules()
        if outputs:  # relation and adaptive have none
            zero = all(bool((p == 0).all()) for m in outputs for p in m.parameters())
            assert zero == (gate_init == "open"), name


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("modes", ALL_MODES, ids=str)
def test_one_step_changes_outputs_and_then_every_part_gets_gradients(arch, modes):
    model = build(arch, modes).train()
    for module in model.modules():  # deterministic comparison: no dropout
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = collator()(EXAMPLES)
    before = model(batch)

    def loss_fn(out):
        loss = out.pooled_output.pow(2).sum() + out.last_hidden_state.sum()
        if out.contrastive_loss is not None:
            loss = loss + out.contrastive_loss
        return loss

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn(before).backward()
    optimizer.step()
    optimizer.zero_grad()
    after = model(batch)
    if "dual_tower" in modes:  # the towers only meet after the LM: pooled output changes
        assert not torch.allclose(after.pooled_output, before.pooled_output)
    else:
        assert not torch.allclose(after.last_hidden_state, before.last_hidden_state)
    loss_fn(after).backward()
    groups = injection_parameters(model)
    for group in ("lm", "fusion") + (("gnn",) if model.encoder is not None else ()):
        norms = [p.grad.abs().sum() for p in groups[group] if p.grad is not None]
        assert norms and sum(norms) > 0, group


def _example_outputs(model, batch):
    with torch.no_grad():
        out = model(batch)
    return out


@pytest.mark.parametrize("modes", ALL_MODES, ids=str)
def test_no_leakage_across_the_batch(modes):
    model = build("bert", modes)
    perturb(model)
    base = collator()(EXAMPLES)
    changed_text = list(EXAMPLES)
    changed_text[1] = example("europe holds the alps and the rhine near bonn city")
    changed_graph = list(EXAMPLES)
    changed_graph[1] = example(EXAMPLES[1].text, extra=[10])  # same text, other subgraph
    ref = _example_outputs(model, base)
    for variant in (changed_text, changed_graph):
        batch = collator()(variant)
        out = _example_outputs(model, batch)
        assert not torch.equal(batch.graph.n_id, base.graph.n_id) or variant is changed_text
        for i in (0, 2, 3):
            s = int(base.attention_mask[i].sum())
            s2 = int(batch.attention_mask[i].sum())
            assert s == s2
            torch.testing.assert_close(
                out.last_hidden_state[i, :s], ref.last_hidden_state[i, :s], atol=1e-5, rtol=1e-5
            )
            torch.testing.assert_close(
                out.pooled_output[i], ref.pooled_output[i], atol=1e-5, rtol=1e-5
            )
    # ... while example 1 itself did change (the test can fail).
    out = _example_outputs(model, collator()(changed_text))
    assert not torch.allclose(out.pooled_output[1], ref.pooled_output[1], atol=1e-4)
    if modes in ("graph", "dual_tower"):
        out = _example_outputs(model, collator()(changed_graph))
        assert not torch.allclose(out.pooled_output[1], ref.pooled_output[1], atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("modes", ALL_MODES, ids=str)
def test_alone_equals_inside_a_padded_batch(arch, modes):
    model = build(arch, modes)
    perturb(model)
    batch = collator()(EXAMPLES)
    full = _example_outputs(model, batch)
    for i in range(len(EXAMPLES)):
        alone = _example_outputs(model, collator()([EXAMPLES[i]]))
        s = int(batch.attention_mask[i].sum())
        assert alone.last_hidden_state.shape[1] == s  # no padding alone
        torch.testing.assert_close(
            alone.last_hidden_state[0], full.last_hidden_state[i, :s], atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(
            alone.pooled_output[0], full.pooled_output[i], atol=1e-5, rtol=1e-4
        )
        if full.node_states is not None:
            nodes = batch.graph.batch == i
            torch.testing.assert_close(
                alone.node_states, full.node_states[nodes], atol=1e-5, rtol=1e-4
            )


def test_one_gnn_call_per_layer_for_the_whole_batch(monkeypatch):
    model = build("bert", ["graph", "entity"], injection_kwargs={"entity": {"source": "gnn"}})
    calls = []
    original = model.encoder.layer_forward

    def counting(i, x, *args):
        calls.append((i, x.size(0)))
        return original(i, x, *args)

    monkeypatch.setattr(model.encoder, "layer_forward", counting)
    batch = collator()(EXAMPLES)
    model(batch)
    assert calls == [(0, batch.graph.num_nodes), (1, batch.graph.num_nodes)]


@pytest.mark.parametrize(
    "modes", ALL_MODES + [["graph", "entity", "relation", "memory", "adaptive"]], ids=str
)
def test_save_and_load_round_trip_exactly(tmp_path, modes):
    model = build("roberta", modes)
    perturb(model)
    batch = collator()(EXAMPLES)
    out = _example_outputs(model, batch)
    model.save_pretrained(tmp_path / "m")
    from tests.fusion.helpers import TinyRGCN

    # The tiny GNN is an instance (not a config string), so it is handed back; its weights are loaded.
    loaded = FusedLM.from_pretrained(tmp_path / "m", encoder=TinyRGCN(16, 6, 2)).eval()
    again = _example_outputs(loaded, batch)
    assert torch.equal(out.last_hidden_state, again.last_hidden_state)
    assert torch.equal(out.pooled_output, again.pooled_output)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_entity_and_memory_from_a_kge_table_round_trip(tmp_path):
    table = torch.randn(len(NAMES), 10)
    relations = torch.randn(6, 10)
    config = build("bert", "entity").config
    config.injection = ["entity", "memory"]
    config.injection_kwargs = {
        "entity": {"source": "kge"},
        "memory": {"source": "kge", "include_relations": True, "top_k": 3},
    }
    model = FusedLM(
        config,
        lm=build("bert", "entity").lm,
        entity_embeddings=table,
        relation_embeddings=relations,
    )
    assert torch.equal(model.injections["entity"].table.weight, table)
    assert "table.weight" not in dict(model.injections["entity"].named_parameters())  # frozen
    assert model.injections["memory"].memory.weight.shape == (len(NAMES) + 6, 10)
    assert "memory.weight" not in dict(model.injections["memory"].named_parameters())  # frozen
    perturb(model)
    batch = collator()(EXAMPLES)
    out = _example_outputs(model.eval(), batch)
    model.save_pretrained(tmp_path / "kge")
    loaded = FusedLM.from_pretrained(tmp_path / "kge").eval()
    assert torch.equal(loaded.injections["entity"].table.weight, table)
    assert torch.equal(out.last_hidden_state, _example_outputs(loaded, batch).last_hidden_state)


def test_adaptive_gates_are_exposed_and_adaptive_alone_is_refused():
    model = build("bert", ["graph", "adaptive"])
    batch = collator()(EXAMPLES)
    out = model(batch)
    assert out.knowledge_gates.shape == (2, *batch.input_ids.shape)
    assert torch.all((out.knowledge_gates > 0) & (out.knowledge_gates < 1))
    layer = build(
        "bert", ["entity", "adaptive"], injection_kwargs={"adaptive": {"granularity": "layer"}}
    )
    gates = layer(batch).knowledge_gates
    assert torch.allclose(gates, torch.sigmoid(torch.tensor(2.0)).expand_as(gates))
    with pytest.raises(ValueError, match="only reweights other modes"):
        build("bert", ["adaptive"])


def test_dual_tower_outputs_and_duplicate_entities_are_not_negatives():
    model = build("bert", "dual_tower")
    examples = [EXAMPLES[0], EXAMPLES[0], EXAMPLES[1], EXAMPLES[3]]
    out = model(collator()(examples))
    assert out.text_embedding.shape == out.graph_embedding.shape == (4, model.lm.hidden_size)
    torch.testing.assert_close(out.text_embedding.norm(dim=-1), torch.ones(4))
    tower = model.injections["dual_tower"]
    text, graph = out.text_embedding[:3], out.graph_embedding[:3]
    entity = torch.tensor([0, 0, 2])
    logits = tower.score(text, graph)
    # Brute force: the duplicate (rows 0 and 1 share an anchor) is dropped from each other's negatives.
    keep = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    ce = []
    for i in range(3):
        row = logits[i][keep[i]]
        col = logits[:, i][keep[:, i]]
        ce.append(0.5 * (-(row.log_softmax(0)[keep[i][: i + 1].sum() - 1])))
        ce.append(0.5 * (-(col.log_softmax(0)[keep[:, i][: i + 1].sum() - 1])))
    torch.testing.assert_close(
        tower.contrastive_loss(text, graph, entity), torch.stack(ce).sum() / 3
    )
    assert torch.isfinite(out.contrastive_loss)


def test_relation_bias_equals_a_loop_over_edges():
    model = build("bert", "relation")
    relation = model.injections["relation"]
    with torch.no_grad():
        relation.weight.normal_()
    batch = collator()(EXAMPLES)
    from gnnlm.fusion import FusionState

    state = FusionState(batch)
    relation.prepare(state)
    bias = relation.attention_bias(1, state)  # [batch, heads, seq, seq]
    expected = torch.zeros_like(bias)
    graph = batch.graph
    for (u, v), r in zip(graph.edge_index.t().tolist(), graph.edge_type.tolist()):
        b = int(graph.batch[u])
        for i in (batch.token_node[b] == u).nonzero().flatten().tolist():
            for j in (batch.token_node[b] == v).nonzero().flatten().tolist():
                expected[b, :, i, j] += relation.weight[1, r]
    assert expected.abs().sum() > 0
    torch.testing.assert_close(bias, expected)


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("modes", ["relation", ["graph", "relation", "entity"]], ids=str)
def test_relation_injection_is_the_same_with_eager_sdpa_and_the_default(arch, modes):
    """SDPA adds a float mask to the logits like eager attention: no need to force eager."""
    batch = collator()(EXAMPLES)
    outs = {}
    for attn in ("eager", "sdpa", None):
        model = build(arch, modes, attn_implementation=attn)
        assert model.lm.attn_implementation == (attn or "sdpa")
        perturb(model)
        outs[attn] = _example_outputs(model, batch)
    real = _real(batch)
    plain = model.lm(batch.input_ids, batch.attention_mask)
    assert not torch.allclose(outs["eager"].last_hidden_state[real], plain[real], atol=1e-3)
    for attn in ("sdpa", None):
        torch.testing.assert_close(
            outs[attn].last_hidden_state[real],
            outs["eager"].last_hidden_state[real],
            atol=1e-5,
            rtol=1e-4,
        )
        torch.testing.assert_close(
            outs[attn].pooled_output, outs["eager"].pooled_output, atol=1e-5, rtol=1e-4
        )


def test_bias_needs_an_additive_attention_implementation():
    model = build("bert", "relation", attn_implementation="sdpa")  # sdpa adds float masks too
    model(collator()(EXAMPLES))
    config = FusionConfig(
        injection=["graph"], encoder=None, num_entities=3, num_relations=2, lm="tiny-bert"
    )
    with pytest.raises(ValueError, match="need a GNN"):
        FusedLM(config)


def test_unknown_config_keys_are_named():
    with pytest.raises(
        ValueError, match=r"my.json: unknown config key 'injections' \(did you mean 'injection'\?\)"
    ):
        FusionConfig.from_dict({"injections": ["graph"]}, source="my.json")


def test_repr_names_modes_and_layers():
    model = build("bert", ["graph", "entity"])
    text = repr(model)
    assert "injection=['graph', 'entity'], fused_layers=[0, 1]" in text
    assert "MaskedCrossAttention(32, 16, heads=2, head_channels=16)" in text


@pytest.mark.parametrize("encoder", ["compgcn", "rgcn"])
def test_registered_encoders_by_config_string(tmp_path, encoder):
    """The encoder stage's GNNs plug in by name; a config string is enough to reload the model."""
    kwargs = {"batch_norm": False} if encoder == "compgcn" else {}
    config = FusionConfig(
        lm="tiny-bert",
        attn_implementation="eager",
        injection=["graph", "entity"],
        injection_kwargs={"entity": {"source": "gnn"}},
        encoder=encoder,
        encoder_kwargs=kwargs,
        node_channels=16,
        num_entities=len(NAMES),
        num_relations=6,
    )
    model = FusedLM(config).eval()
    assert (model.relation_embedding is not None) == (
        encoder == "compgcn"
    )  # CompGCN updates relations
    batch = collator()(EXAMPLES)
    out = model(batch)
    reference = model.lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    real = _real(batch)
    assert torch.equal(out.last_hidden_state[real], reference.last_hidden_state[real])
    assert out.node_states.shape == (batch.graph.num_nodes, 16)
    perturb(model)
    out = _example_outputs(model, batch)
    model.save_pretrained(tmp_path / encoder)
    loaded = FusedLM.from_pretrained(tmp_path / encoder).eval()
    assert torch.equal(_example_outputs(loaded, batch).last_hidden_state, out.last_hidden_state)


def test_linked_entity_pooling_and_roles_equal_a_loop():
    model = build("bert", "graph")
    perturb(model)
    batch = collator()(EXAMPLES)
    out = _example_outputs(model, batch)
    graph = batch.graph
    roles = model.node_roles(batch)
    for i in range(batch.batch_size):
        start, k = int(graph.ptr[i]), int(graph.num_seeds[i])
        nodes = graph.ptr[i + 1] - graph.ptr[i]
        expected_roles = [min(j, model.config.num_roles - 1) + 1 for j in range(k)] + [0] * (
            int(nodes) - k
        )
        assert roles[graph.batch == i].tolist() == expected_roles
        expected = out.node_states[start : start + k].mean(0) if k else torch.zeros(16)
        torch.testing.assert_close(out.graph_pooled_output[i], expected)


def test_kge_model_tables_feed_entity_and_memory_injection(tmp_path):
    from gnnlm.fusion import kge_tables
    from gnnlm.kge import build_kge_model

    kge = build_kge_model(
        "distmult", len(NAMES), 3, 12, reciprocal=True
    )  # 6 relations with inverses
    entity, relation = kge_tables(kge)
    ref_entity, ref_relation = kge.representations()
    assert torch.equal(entity, ref_entity) and torch.equal(relation, ref_relation)
    assert not entity.requires_grad
    config = build("bert", "entity").config
    config.injection = ["entity", "memory"]
    config.injection_kwargs = {
        "entity": {"source": "kge", "trainable": True},
        "memory": {"source": "kge", "include_relations": True},
    }
    model = FusedLM(
        config,
        lm=build("bert", "entity").lm,
        entity_embeddings=entity,
        relation_embeddings=relation,
    )
    assert "table.weight" in dict(model.injections["entity"].named_parameters())  # trainable copy
    model.save_pretrained(tmp_path / "m")
    loaded = FusedLM.from_pretrained(tmp_path / "m")
    assert torch.equal(
        loaded.injections["memory"].memory.weight, model.injections["memory"].memory.weight
    )
    rotate = build_kge_model("rotate", len(NAMES), 3, 4, reciprocal=True)
    entity, relation = kge_tables(rotate)
    with pytest.raises(
        ValueError, match="memory rows must share one width: entities 8, relations 4"
    ):
        FusedLM(
            config,
            lm=build("bert", "entity").lm,
            entity_embeddings=entity,
            relation_embeddings=relation,
        )


def test_a_user_mode_plugs_in_by_name_after_registering():
    from gnnlm.fusion import Injection, TanhGate, injection_resolver

    class BagOfEntities(Injection):
        """Adds a gated projection of the mean linked-entity state to every token."""

        uses_graph_encoder = True

        def __init__(self, context):
            super().__init__(context)
            self.proj = torch.nn.Linear(context.node_channels, context.hidden_size)
            self.gate = TanhGate(len(context.fused_layers))

        def layer_delta(self, i, hidden, state):
            j = self.context.fused_index(i)
            if j is None:
                return None
            pooled = FusedLM.pool_linked(state.node_states, state.batch)  # [batch, nodes]
            return self.gate(j) * self.proj(pooled).unsqueeze(1).expand_as(hidden)

    with pytest.raises(KeyError):
        injection_resolver.lookup("bagofentities")
    injection_resolver.register(BagOfEntities)
    try:
        model = build("bert", ["bag_of_entities", "adaptive"])
        batch = collator()(EXAMPLES)
        reference = model.lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        assert torch.equal(
            model(batch).last_hidden_state[_real(batch)], reference.last_hidden_state[_real(batch)]
        )
        perturb(model)
        assert not torch.allclose(model(batch).last_hidden_state, reference.last_hidden_state)
    finally:
        injection_resolver.lookup_dict.pop("bagofentities", None)


def test_from_pretrained_refuses_a_saved_dotted_path_encoder_unless_trusted(tmp_path, monkeypatch):
    import json
    import sys

    from gnnlm.utils.registry import UntrustedCodeError

    model = FusedLM(
        FusionConfig(lm="tiny-bert", node_channels=16, num_entities=len(NAMES), num_relations=6)
    )
    model.save_pretrained(tmp_path / "m")
    marker = tmp_path / "imported"
    (tmp_path / "planted_encoder_mod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Enc:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config_path = tmp_path / "m" / "config.json"
    saved = json.loads(config_path.read_text())
    saved["encoder"] = "planted_encoder_mod:Enc"
    config_path.write_text(json.dumps(saved))

    with pytest.raises(UntrustedCodeError, match="planted_encoder_mod:Enc.*trust_remote_code=True"):
        FusedLM.from_pretrained(tmp_path / "m")
    assert not marker.exists() and "planted_encoder_mod" not in sys.modules
    from gnnlm.encoders.resolver import EncoderProtocolError

    with pytest.raises(EncoderProtocolError, match="planted_encoder_mod.Enc"):  # trusted: it ran
        FusedLM.from_pretrained(tmp_path / "m", trust_remote_code=True)
    assert marker.exists()
    sys.modules.pop("planted_encoder_mod", None)


def test_one_way_graph_injection_keeps_the_other_side_plain():
    """``directions: [graph]``: nodes read tokens, the LM stays the plain LM whatever the weights;
    ``[text]``: tokens read nodes, the node states stay the plain GNN's."""
    import copy

    batch = collator()(EXAMPLES)
    with torch.no_grad():
        lm_only = build(injection=())(batch).last_hidden_state
    for directions in (["graph"], ["text"]):
        model = build(injection=("graph",), injection_kwargs={"graph": {"directions": directions}})
        perturb(model)
        injection = model.injections["graph"]
        silent = copy.deepcopy(model)  # the same weights, the one direction's gates closed
        for gate in (silent.injections["graph"].gate, silent.injections["graph"].node_gate):
            if gate is not None:
                torch.nn.init.zeros_(gate.weight)
        with torch.no_grad():
            out, plain = model(batch), silent(batch)
        if directions == ["graph"]:
            assert injection.gate is None and len(injection.token_to_node) == 0
            assert torch.allclose(out.last_hidden_state, lm_only, atol=1e-6)
            assert not torch.allclose(out.node_states, plain.node_states, atol=1e-4)
        else:
            assert injection.node_gate is None and len(injection.node_to_token) == 0
            assert torch.equal(out.node_states, plain.node_states)
            assert not torch.allclose(out.last_hidden_state, lm_only, atol=1e-4)
            assert torch.allclose(plain.last_hidden_state, lm_only, atol=1e-6)
        assert f"directions={directions}" in repr(model)
    with pytest.raises(ValueError, match="directions must be a non-empty subset"):
        build(injection=("graph",), injection_kwargs={"graph": {"directions": ["nodes"]}})
