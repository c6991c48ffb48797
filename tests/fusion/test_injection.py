"""Injection names are class attributes (the registry key), and KGE tables reach a mode through its hook."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import FusedLM, FusionConfig, Injection, TanhGate, injection_resolver
from gnnlm.fusion.modes import GraphInjection
from gnnlm.lm import load_lm
from gnnlm.utils.registry import UntrustedCodeError
from tests.fusion.helpers import EXAMPLES, NAMES, build, collator, perturb


class MeanTable(Injection):
    """A user's mode (never registered): adds a gated projection of a KGE table's mean to every token."""

    @classmethod
    def required_tensors(cls, kwargs):
        return ("entity_embeddings",)

    def __init__(self, context, *, entity_embeddings=None):
        super().__init__(context)
        if entity_embeddings is None:
            raise ValueError("MeanTable needs entity_embeddings")
        self.register_buffer("table", entity_embeddings.detach().clone())
        self.proj = torch.nn.Linear(self.table.size(1), context.hidden_size)
        self.gate = TanhGate(len(context.fused_layers))

    def layer_delta(self, i, hidden, state):
        j = self.context.fused_index(i)
        if j is None:
            return None
        return self.gate(j) * self.proj(self.table.mean(0)).expand_as(hidden)


def test_names_are_class_attributes_and_registry_keys():
    for cls in injection_resolver:
        assert "name" in vars(cls) and isinstance(cls.name, str), cls  # a ClassVar, not a property
        assert injection_resolver.lookup(cls.name) is cls
        assert injection_resolver.normalize_cls(cls) == injection_resolver.normalize(cls.name)
    assert injection_resolver.lookup("dual_tower").name == "dual_tower"

    class MyGraphInjection(GraphInjection):  # a subclass of a mode is another mode: its own name
        pass

    assert MyGraphInjection.name == "mygraph" and GraphInjection.name == "graph"
    assert MeanTable.name == "meantable"


def test_a_dotted_path_mode_gets_kge_tables_through_its_hook_and_round_trips(tmp_path):
    table = torch.randn(len(NAMES), 5)
    path = f"{__name__}:MeanTable"
    config = FusionConfig(
        lm="tiny-bert",
        attn_implementation="eager",
        injection=[path],
        encoder=None,
        num_entities=len(NAMES),
        num_relations=6,
    )
    lm = load_lm("tiny-bert", attn_implementation="eager", seed=0)
    model = FusedLM(config, lm=lm, entity_embeddings=table).eval()
    assert list(model.injections) == ["meantable"]
    assert torch.equal(model.injections["meantable"].table, table)
    perturb(model)
    batch = collator()(EXAMPLES)
    out = model(batch).last_hidden_state
    model.save_pretrained(tmp_path / "m")

    with pytest.raises(UntrustedCodeError, match=f"{path}.*trust_remote_code=True"):
        FusedLM.from_pretrained(tmp_path / "m")
    loaded = FusedLM.from_pretrained(tmp_path / "m", trust_remote_code=True).eval()
    assert torch.equal(loaded.injections["meantable"].table, table)
    assert torch.equal(loaded(batch).last_hidden_state, out)


def test_a_mode_asking_for_an_unknown_table_is_named():
    class Odd(MeanTable):
        @classmethod
        def required_tensors(cls, kwargs):
            return ("type_embeddings",)

    config = FusionConfig(lm="tiny-bert", injection=["odd"], encoder=None, num_entities=3)
    injection_resolver.register(Odd)
    try:
        with pytest.raises(ValueError, match=r"'odd' requires \['type_embeddings'\]"):
            FusedLM(config, lm=load_lm("tiny-bert", seed=0))
    finally:
        injection_resolver.lookup_dict.pop("odd", None)


def test_graph_attention_channels_narrows_both_attentions_and_defaults_to_the_lm_width(tmp_path):
    """``attention_channels`` sets the inner width of both cross-attentions; the default is the LM's
    hidden size, so a model built with it spelled out is the same model (same weights, same outputs)."""
    default = build("bert", ["graph"], seed=3)
    spelled = build(
        "bert", ["graph"], seed=3, injection_kwargs={"graph": {"attention_channels": 32}}
    )
    for (name, a), (_, b) in zip(default.state_dict().items(), spelled.state_dict().items()):
        assert torch.equal(a, b), name
    graph = default.injections["graph"]
    assert graph.attention_channels == default.lm.config.hidden_size == 32

    narrow = build("bert", ["graph"], injection_kwargs={"graph": {"attention_channels": 8}})
    mode = narrow.injections["graph"]
    assert "attention_channels=8" in repr(mode)
    for attn in (*mode.token_to_node, *mode.node_to_token):
        assert attn.q.out_features == attn.k.out_features == attn.v.out_features == 8
        assert attn.o.in_features == 8 and attn.head_channels == 4  # 2 heads
    for attn in mode.token_to_node:
        assert attn.o.out_features == 32  # back to the LM's width
    for attn in mode.node_to_token:
        assert attn.o.out_features == 16  # back to the node width
    n_default = sum(p.numel() for p in graph.parameters())
    assert sum(p.numel() for p in mode.parameters()) < n_default

    # it learns and round-trips like any mode: kwargs are saved with the config
    perturb(narrow)
    batch = collator()(EXAMPLES)
    out = narrow(batch).last_hidden_state
    assert not torch.equal(out, default(batch).last_hidden_state)
    narrow.save_pretrained(tmp_path / "m")
    from tests.fusion.helpers import TinyRGCN

    loaded = FusedLM.from_pretrained(tmp_path / "m", encoder=TinyRGCN(16, 6, 2)).eval()
    assert loaded.injections["graph"].attention_channels == 8
    assert torch.equal(loaded(batch).last_hidden_state, out)


@pytest.mark.parametrize("bad", [0, 3, 7.0, True, "8"])
def test_graph_attention_channels_must_be_a_multiple_of_the_heads(bad):
    with pytest.raises(
        ValueError, match="attention_channels must be a positive multiple of the 2 heads"
    ):
        build("bert", ["graph"], injection_kwargs={"graph": {"attention_channels": bad}})
