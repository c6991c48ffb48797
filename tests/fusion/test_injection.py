"""Injection names are class attributes (the registry key), and KGE tables reach a mode through its hook."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import FusedLM, FusionConfig, Injection, TanhGate, injection_resolver
from gnnlm.fusion.modes import GraphInjection
from gnnlm.lm import load_lm
from gnnlm.utils.registry import UntrustedCodeError
from tests.fusion.helpers import EXAMPLES, NAMES, collator, perturb


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
