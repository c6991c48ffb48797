"""Graph knowledge in decoders: gated cross-attention and graph prompts (gnnlm.fusion.decoder)."""

from __future__ import annotations

import functools

import pytest
import torch

from gnnlm.fusion import SubgraphSampler
from gnnlm.fusion.decoder import DecoderFusionConfig, GraphDecoder
from gnnlm.fusion.decoder_batch import IGNORE_INDEX, DecoderCollator, DecoderExample
from gnnlm.lm import load_causal_tokenizer
from tests.fusion.helpers import NAMES, tiny_graph

ARCHS = ["gpt2", "llama"]


def example(text: str, target: str | None = None) -> DecoderExample:
    mentions, pos = [], 0
    for word in text.split(" "):
        if word in NAMES:
            mentions.append((pos, pos + len(word), NAMES.index(word)))
        pos += len(word) + 1
    return DecoderExample(text, mentions, target=target)


EXAMPLES = [
    example("question : what is paris the capital of ? answer :", " france"),
    example("question : where does the seine flow ? answer :", " paris"),
    example("nothing linked here", " alps"),
]


@functools.cache
def tokenizer():
    return load_causal_tokenizer("tiny-gpt2")


def collator(padding_side: str = "right") -> DecoderCollator:
    sampler = SubgraphSampler(tiny_graph(), num_hops=2, max_nodes=6, inverse_offset=3)
    return DecoderCollator(tokenizer(), sampler, max_length=32, padding_side=padding_side)


def build(arch: str, knowledge=("xattn",), **kwargs) -> GraphDecoder:
    config = DecoderFusionConfig(
        lm=f"tiny-{arch}", knowledge=list(knowledge), node_channels=16, num_entities=len(NAMES),
        num_relations=6, encoder="rgcn", encoder_kwargs={}, **kwargs,
    )  # fmt: skip
    torch.manual_seed(0)
    return GraphDecoder(config).eval()


def perturb(model: GraphDecoder) -> None:
    """Non-zero cross-attention outputs, so injection changes the logits."""
    with torch.no_grad():
        for attn in model.xattn:
            attn.o.weight.normal_(0, 0.5)


def test_collator_labels_only_the_target_and_eos():
    batch = collator()(EXAMPLES)
    tok = tokenizer()
    for i, ex in enumerate(EXAMPLES):
        target = tok(ex.target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert batch.labels[i][batch.labels[i] != IGNORE_INDEX].tolist() == target
        prompt = tok(ex.text, add_special_tokens=False)["input_ids"]
        assert batch.input_ids[i, : len(prompt)].tolist() == prompt
    # the mention "paris" points at its node; left padding keeps the last token real
    assert (batch.token_node[0] >= 0).sum() == 1
    left = collator("left")(EXAMPLES)
    assert bool(left.attention_mask[:, -1].all())
    assert left.labels[left.attention_mask == 0].eq(IGNORE_INDEX).all()


@pytest.mark.parametrize("arch", [*ARCHS, "qwen2"])
@pytest.mark.parametrize("knowledge", [["xattn"], []])
def test_at_initialisation_the_logits_are_the_plain_hf_logits(arch, knowledge):
    model = build(arch, knowledge)
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        ours = model(batch).logits
        reference = model.lm.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).logits
    real = batch.attention_mask.bool()
    assert torch.equal(ours[real], reference[real])  # bit-identical (SDPA, zero W_o, open gate)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("knowledge", [["xattn"], ["prompt"], ["xattn", "prompt"]])
def test_no_token_sees_a_later_token_through_any_path(arch, knowledge):
    model = build(arch, knowledge)
    if model.xattn is not None:
        perturb(model)
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        before = model(batch).logits
        changed = collator()(EXAMPLES)
        changed.input_ids[:, 6:] = 1000  # every token from position 6 on
        after = model(changed).logits
        plain = model.lm(batch.input_ids, batch.attention_mask)
    assert torch.equal(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])
    assert not torch.allclose(before, plain, atol=1e-4)  # the graph does change the output


def test_left_and_right_padding_give_the_same_logits():
    model = build("llama", ["xattn", "prompt"])
    perturb(model)
    right, left = collator("right")(EXAMPLES), collator("left")(EXAMPLES)
    with torch.no_grad():
        a, b = model(right).logits, model(left).logits
    torch.testing.assert_close(
        a[right.attention_mask.bool()], b[left.attention_mask.bool()], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_the_injection_at_step_zero(arch):
    model = build(arch, ["xattn"]).train()
    out = model(collator()(EXAMPLES))
    out.loss.backward()
    for attn in model.xattn:
        assert attn.o.weight.grad is not None and attn.o.weight.grad.abs().sum() > 0
    assert model.gate.weight.grad is not None  # zero at step 0 (W_o = 0), but connected
    assert torch.allclose(out.gates, torch.tanh(torch.tensor(1.0)).expand_as(out.gates))


@pytest.mark.parametrize("arch", ARCHS)
def test_graph_prompts_change_the_output_and_learn_while_the_frozen_lm_does_not(arch):
    model = build(arch, ["prompt"], num_prompt_tokens=3).train()
    model.lm.requires_grad_(False)
    batch = collator()(EXAMPLES)
    out = model(batch)
    with torch.no_grad():
        plain = model.lm(batch.input_ids, batch.attention_mask)
    assert out.logits.shape == plain.shape  # the soft prompts' positions are dropped
    assert not torch.allclose(out.logits, plain, atol=1e-4)
    out.loss.backward()
    for p in model.prompt.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.lm.parameters())
    assert model.encoder.layers[0].parameters().__next__().grad is not None  # the GNN learns too
    # a different subgraph gives different prompts
    ctx = model.encode_graph(batch)
    assert ctx.prompts.shape == (3, 3, model.lm.hidden_size)
    assert not torch.allclose(ctx.prompts[0], ctx.prompts[2])


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="'graph'"):
        DecoderFusionConfig(knowledge=["graph"])
    with pytest.raises(ValueError, match="outside"):
        build("gpt2", ["xattn"], xattn_layers=[5])
    with pytest.raises(ValueError, match="node_feature_table"):
        build("gpt2", ["prompt"], node_features="text")


def test_repr_names_sizes():
    model = build("gpt2", ["xattn", "prompt"])
    assert "knowledge=['xattn', 'prompt']" in repr(model) and "tokens=4" in repr(model.prompt)


@pytest.mark.parametrize("knowledge", [["xattn"], ["prompt"]])
def test_target_only_and_last_only_logits_equal_the_full_ones(knowledge):
    model = build("llama", knowledge)
    if model.xattn is not None:
        perturb(model)
    batch = collator()(EXAMPLES)
    with torch.no_grad():
        full = model(batch)
        cheap = model(batch, logits="loss")
        last = model(collator("left")(EXAMPLES), logits="last")
        left = model(collator("left")(EXAMPLES))
    torch.testing.assert_close(cheap.loss, full.loss)
    assert cheap.logits.shape == (
        int((batch.labels[:, 1:] != IGNORE_INDEX).sum()),
        full.logits.size(-1),
    )
    torch.testing.assert_close(last.logits[:, 0], left.logits[:, -1])
    with pytest.raises(ValueError, match="'all', 'last' or 'loss'"):
        model(batch, logits="some")
