"""LoRA on a graph decoder, merge, and the save_pretrained / from_pretrained round trip."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion.decoder import ADAPTER_WEIGHTS, GRAPH_WEIGHTS, LORA_NAME, GraphDecoder
from gnnlm.strategies.config import LoraSettings
from gnnlm.strategies.partial import has_lora, merge_lora
from tests.fusion.test_decoder import EXAMPLES, build, collator, perturb


def lora_model(arch: str) -> GraphDecoder:
    model = build(arch, ["xattn", "prompt"])
    perturb(model)
    added = model.add_lora(LoraSettings(r=4, alpha=8.0))
    assert added > 0
    with torch.no_grad():  # B starts at zero: give the adapters a value so they matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lora_trains_adapters_gnn_and_projector_only(arch):
    model = lora_model(arch)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable)
    assert not any(n.startswith("lm.") and "lora_" not in n for n in trainable)
    assert any(n.startswith("encoder.") for n in trainable) and any(
        "prompt" in n for n in trainable
    )
    model.train()
    model(collator()(EXAMPLES)).loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_merging_lora_keeps_the_logits(arch):
    model = lora_model(arch)
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        before = model(batch).logits
        plain = build(arch, ["xattn", "prompt"])
        perturb(plain)
        assert merge_lora(model) > 0 and not has_lora(model)
        after = model(batch).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after, plain(batch).logits, atol=1e-4)  # the adapters did matter


@pytest.mark.parametrize("include_lm", [True, False])
def test_save_and_load_round_trip_with_adapters(tmp_path, include_lm):
    model = lora_model("gpt2")
    batch = collator()(EXAMPLES)
    model.save_pretrained(tmp_path, include_lm=include_lm)
    for name in (GRAPH_WEIGHTS, ADAPTER_WEIGHTS, LORA_NAME):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "lm").is_dir() == include_lm
    loaded = GraphDecoder.from_pretrained(tmp_path).eval()
    assert has_lora(loaded)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, model(batch).logits, rtol=0, atol=1e-6)
    adapters = sorted(n for n, _ in loaded.named_parameters() if "lora_" in n)
    assert adapters == sorted(n for n, _ in model.named_parameters() if "lora_" in n)


def test_save_and_load_round_trip_without_lora_and_a_trained_lm(tmp_path):
    model = build("llama", ["xattn"])
    perturb(model)
    with torch.no_grad():  # a fine-tuned LM: its own weights must be saved
        model.lm.model.get_input_embeddings().weight.mul_(1.5)
    model.save_pretrained(tmp_path)
    assert not (tmp_path / ADAPTER_WEIGHTS).exists()
    loaded = GraphDecoder.from_pretrained(tmp_path).eval()
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, model(batch).logits, rtol=0, atol=1e-6)


def test_loading_a_folder_without_a_config_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="decoder_config.json"):
        GraphDecoder.from_pretrained(tmp_path)
