"""The layer-by-layer view of HF decoders equals the HF causal LM's own forward."""

from __future__ import annotations

import pytest
import torch

from gnnlm.lm.causal import CausalBackbone, load_causal_lm, load_causal_tokenizer

TEXTS = ["a short one", "a noticeably longer sentence with several more tokens in it"]
ARCHS = ["gpt2", "llama", "qwen2"]


@pytest.fixture(scope="module")
def encoded():
    tokenizer = load_causal_tokenizer("tiny-gpt2")
    return tokenizer(TEXTS, padding=True, return_tensors="pt", add_special_tokens=False)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_layerwise_logits_equal_the_hf_logits(arch, attn, encoded):
    lm = load_causal_lm(f"tiny-{arch}", attn_implementation=attn).eval()
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    reference = lm.model(input_ids=ids, attention_mask=mask).logits
    ours = lm(ids, mask)
    real = mask.bool()
    assert ours.shape == (2, ids.size(1), lm.vocab_size)
    if (arch, attn) == ("gpt2", "eager"):
        # GPT-2's eager attention differs from the HF forward in the last float bit (~1e-7) although
        # every layer gets equal inputs and masks (compared with hooks); SDPA and the rotary
        # families are bit-identical.
        torch.testing.assert_close(ours[real], reference[real], rtol=0, atol=1e-6)
    else:
        assert torch.equal(ours[real], reference[real])
    assert lm.num_layers == 2 and lm.hidden_size == 32 and lm.num_heads == 2


@pytest.mark.parametrize("arch", ARCHS)
def test_a_token_never_sees_a_later_token(arch, encoded):
    lm = load_causal_lm(f"tiny-{arch}").eval()
    ids = encoded["input_ids"][1:].clone()
    before = lm(ids)
    ids[0, 5:] = 1000  # change every token from position 5 on
    after = lm(ids)
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_inputs_embeds_and_positions_match_the_hf_model(arch, encoded):
    """Soft prompts enter as embeddings: the same path as the HF model's ``inputs_embeds``."""
    lm = load_causal_lm(f"tiny-{arch}").eval()
    ids = encoded["input_ids"]
    embeds = lm.token_embeddings(ids)
    positions = torch.arange(3, 3 + ids.size(1)).unsqueeze(0)
    reference = lm.model(inputs_embeds=embeds, position_ids=positions).logits
    assert torch.equal(lm(inputs_embeds=embeds, position_ids=positions), reference)


def test_positions_family_and_repr():
    gpt2, llama = load_causal_lm("tiny-gpt2"), load_causal_lm("tiny-llama")
    assert gpt2.positions == "learned" and llama.positions == "rotary"
    assert gpt2.layer_path == "transformer.h" and llama.layer_path == "model.layers"
    assert "positions=rotary" in repr(llama)
    assert isinstance(gpt2, CausalBackbone)
    with pytest.raises(TypeError, match="causal_inputs"):
        gpt2.attention_mask(torch.ones(1, 2), torch.zeros(1, 2, 32))


def test_tiny_sizes_and_seed():
    a = load_causal_lm("tiny-llama", seed=1, tiny_kwargs={"hidden_size": 48, "num_layers": 3})
    b = load_causal_lm("tiny-llama", seed=1, tiny_kwargs={"hidden_size": 48, "num_layers": 3})
    assert a.hidden_size == 48 and a.num_layers == 3
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="tiny decoder"):
        load_causal_lm("tiny-bert-decoder")


def test_tokenizer_has_eos_and_pad():
    tokenizer = load_causal_tokenizer("tiny-gpt2")
    assert tokenizer.eos_token == "[SEP]" and tokenizer.pad_token_id is not None


def test_missing_folder_is_named():
    with pytest.raises(FileNotFoundError, match="no/such/folder"):
        load_causal_lm("./no/such/folder")


def test_a_saved_folder_loads_through_the_pretrained_path(tmp_path):
    """The real-checkpoint code path (``AutoModelForCausalLM.from_pretrained`` of a folder)."""
    lm = load_causal_lm("tiny-llama").eval()
    tokenizer = load_causal_tokenizer("tiny-llama")
    lm.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again = load_causal_lm(str(tmp_path)).eval()
    assert again.name_or_path == str(tmp_path)
    ids = tokenizer(TEXTS[1:], return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert torch.equal(again(ids), lm(ids))
    loaded = load_causal_tokenizer(str(tmp_path))
    assert loaded.eos_token_id == tokenizer.eos_token_id and loaded.pad_token_id is not None
