"""Node features: learned, from a KGE table, or from the LM's cached encodings of entity texts."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import FusedLM, entity_texts, injection_parameters, text_node_features
from gnnlm.fusion.node_features import cache_key
from gnnlm.lm import load_lm, load_tokenizer, pool
from tests.fusion.helpers import EXAMPLES, NAMES, TinyRGCN, build, collator, perturb

TEXTS = [f"{name}: a place called {name}" for name in NAMES]


def _build(node_features="learned", table=None, *, trainable=False, entity_embeddings=None):
    config = build("bert", "graph").config
    config.node_features = node_features
    config.node_features_trainable = trainable
    torch.manual_seed(0)
    return FusedLM(
        config,
        lm=load_lm("tiny-bert", attn_implementation="eager", seed=0),
        encoder=TinyRGCN(16, 6, 2),
        node_feature_table=table,
        entity_embeddings=entity_embeddings,
    ).eval()


def _round_trip(model, tmp_path):
    perturb(model)
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        out = model(batch)
    model.save_pretrained(tmp_path / "m")
    loaded = FusedLM.from_pretrained(tmp_path / "m", encoder=TinyRGCN(16, 6, 2)).eval()
    with torch.no_grad():
        again = loaded(batch)
    assert torch.equal(out.last_hidden_state, again.last_hidden_state)
    assert torch.equal(out.node_states, again.node_states)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    return loaded


def test_learned_is_the_default_table(tmp_path):
    model = _build()
    assert model.config.node_features == "learned" and model.node_projection is None
    assert model.node_embedding.weight.shape == (len(NAMES), 16)
    assert "node_embedding.weight" in dict(model.named_parameters())
    ids = torch.tensor([3, 0, 3])
    assert torch.equal(model.node_features(ids), model.node_embedding.weight[ids])
    _round_trip(model, tmp_path)
    with pytest.raises(
        ValueError, match="node_feature_table given but config.node_features is 'learned'"
    ):
        _build(table=torch.randn(len(NAMES), 8))


@pytest.mark.parametrize("trainable", [False, True])
def test_kge_table_is_projected_frozen_or_trainable_and_round_trips(tmp_path, trainable):
    table = torch.randn(len(NAMES), 10)
    model = _build("kge", table, trainable=trainable)
    assert torch.equal(model.node_embedding.weight, table)
    assert model.config.node_feature_channels == 10
    params = dict(model.named_parameters())
    assert ("node_embedding.weight" in params) == trainable  # else a saved buffer
    assert params["node_projection.weight"].shape == (16, 10)
    gnn = {id(p) for p in injection_parameters(model)["gnn"]}
    assert id(params["node_projection.weight"]) in gnn
    ids = torch.tensor([1, 4])
    torch.testing.assert_close(model.node_features(ids), model.node_projection(table[ids]))
    loaded = _round_trip(model, tmp_path)
    assert torch.equal(loaded.node_embedding.weight, model.node_embedding.weight)
    # The projection (and a trainable table) learn; a frozen table stays as given.
    model.train()
    model(collator()(EXAMPLES)).graph_pooled_output.square().sum().backward()
    assert model.node_projection.weight.grad.abs().sum() > 0
    if trainable:
        assert model.node_embedding.weight.grad.abs().sum() > 0


def test_kge_defaults_to_the_entity_embeddings_and_missing_tables_are_named():
    entity = torch.randn(len(NAMES), 6)
    model = _build("kge", entity_embeddings=entity)
    assert torch.equal(model.node_embedding.weight, entity)
    own = torch.randn(len(NAMES), 4)
    assert torch.equal(_build("kge", own, entity_embeddings=entity).node_embedding.weight, own)
    with pytest.raises(ValueError, match="node_features 'text' needs a .*text_node_features"):
        _build("text")
    with pytest.raises(ValueError, match="node_features 'kge' needs a .*kge_tables"):
        _build("kge")
    with pytest.raises(ValueError, match=r"must be \[num_entities=12, d\], got \(5, 4\)"):
        _build("kge", torch.randn(5, 4))


def _count_forwards(lm, monkeypatch):
    calls = []
    original = lm.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(lm, "forward", counting)
    return calls


def test_text_features_are_the_pooled_lm_encodings(tmp_path):
    lm = load_lm("tiny-bert", seed=0)
    lm.train()  # encoded in eval mode, and its mode restored
    table = text_node_features(lm, TEXTS, batch_size=5, cache_dir=tmp_path, quiet=True)
    assert table.shape == (len(NAMES), 32) and table.dtype == torch.float32
    assert lm.training and not table.requires_grad
    tokenizer = load_tokenizer("tiny-bert")
    lm.eval()
    with torch.no_grad():
        for i in (0, 7, 11):  # each text alone (no padding) equals its row of the batched encoding
            enc = tokenizer([TEXTS[i]], return_tensors="pt")
            ref = pool(lm(enc["input_ids"], enc["attention_mask"]), enc["attention_mask"])
            torch.testing.assert_close(table[i], ref[0], atol=1e-5, rtol=1e-4)


def test_text_features_are_cached_and_invalidated(tmp_path, monkeypatch):
    lm = load_lm("tiny-bert", seed=0)
    calls = _count_forwards(lm, monkeypatch)
    first = text_node_features(lm, TEXTS, batch_size=4, cache_dir=tmp_path, quiet=True)
    assert len(calls) == 3 and len(list(tmp_path.glob("*.safetensors"))) == 1
    again = text_node_features(lm, TEXTS, batch_size=4, cache_dir=tmp_path, quiet=True)
    assert len(calls) == 3 and torch.equal(first, again)  # read back, the LM did not run
    # The same weights loaded by name hit the same entry.
    assert torch.equal(
        text_node_features("tiny-bert", TEXTS, cache_dir=tmp_path, quiet=True), first
    )
    # Another text, another entry (the LM runs again); other texts keep their rows.
    changed = list(TEXTS)
    changed[2] = "berlin: a different description"
    other = text_node_features(lm, changed, batch_size=4, cache_dir=tmp_path, quiet=True)
    assert len(calls) == 6 and len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not torch.equal(other[2], first[2])
    torch.testing.assert_close(other[5], first[5], atol=1e-5, rtol=1e-4)
    # Other weights (another seed), another entry; a corrupt entry is recomputed with a warning.
    tokenizer = load_tokenizer("tiny-bert")
    assert cache_key(load_lm("tiny-bert", seed=1), tokenizer, TEXTS, 128) != cache_key(
        lm, tokenizer, TEXTS, 128
    )
    path = tmp_path / f"{cache_key(lm, tokenizer, TEXTS, 128)}.safetensors"
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable node-feature cache entry"):
        fixed = text_node_features(lm, TEXTS, batch_size=4, cache_dir=tmp_path, quiet=True)
    assert len(calls) == 9 and torch.equal(fixed, first)


def test_text_features_default_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path))
    text_node_features("tiny-bert", TEXTS[:3], quiet=True)
    assert len(list((tmp_path / "node_features").glob("*.safetensors"))) == 1
    assert not list((tmp_path / "node_features").glob(".*.tmp"))  # written atomically


def test_text_node_features_in_a_fused_model_round_trip(tmp_path):
    table = text_node_features("tiny-bert", TEXTS, cache_dir=tmp_path / "cache", quiet=True)
    model = _build("text", table)
    assert model.config.node_feature_channels == 32
    assert "node_embedding.weight" not in dict(model.named_parameters())
    _round_trip(model, tmp_path)


def test_entity_texts_join_names_and_descriptions():
    from types import SimpleNamespace

    from gnnlm.data.schema import EntityText

    text = EntityText(names=["paris", None, "lyon"], descriptions=["capital of france", "x", None])
    labels = ["paris", "/m/02", "lyon"]
    kg = SimpleNamespace(num_entities=3, entity_text=text, entity_label=lambda i: labels[i])
    assert entity_texts(kg) == ["paris: capital of france", "/m/02: x", "lyon"]
    assert entity_texts(kg, descriptions=False) == labels
