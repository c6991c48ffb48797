"""Fusion inputs are checked where they enter: the collator (spans, ids, lengths) and the config."""

from __future__ import annotations

import re

import pytest
import torch

from gnnlm.config import ConfigError
from gnnlm.fusion import FusionConfig, TextGraphCollator, TextGraphExample, text_positions
from gnnlm.lm import load_lm
from tests.fusion.helpers import EXAMPLES, NAMES, build, collator, tokenizer

TEXT = "paris is the capital of france"  # 30 characters


@pytest.mark.parametrize(
    ("span", "problem"),
    [
        ((24, 99), "span past the end of the text (30 characters)"),
        ((5, 0), "reversed span (end before start)"),
        ((-3, 5), "negative start"),
        ((5, 5), "empty span (end == start; end is exclusive)"),
    ],
)
def test_bad_mention_spans_name_the_example_and_the_span(span, problem):
    bad = TextGraphExample(TEXT, [(0, 5, 0), (*span, 1)], id="q7")
    with pytest.raises(ValueError) as err:
        collator()([EXAMPLES[0], bad])
    assert str(err.value) == (
        f"example 1 (id 'q7'), mention 1 {(*span, 1)!r}: {problem}; text {TEXT!r}"
    )


def test_a_span_up_to_the_last_character_is_fine():
    batch = collator()([TextGraphExample(TEXT, [(24, 30, 1)])])
    linked = batch.input_ids[0][batch.token_node[0] >= 0]
    assert tokenizer().decode(linked) == "france"


def test_entity_ids_and_exclusions_are_checked():
    with pytest.raises(
        ValueError,
        match=rf"example 0, mention 0 \(0, 5, 12\): entity id outside \[0, {len(NAMES)}\)",
    ):
        collator()([TextGraphExample(TEXT, [(0, 5, len(NAMES))])])
    with pytest.raises(TypeError, match=r"example 0, mention 0 \(0.0, 5, 1\): expected an integer"):
        collator()([TextGraphExample(TEXT, [(0.0, 5, 1)])])
    with pytest.raises(ValueError, match=r"example 0: linked entity -1 outside"):
        collator()([TextGraphExample(TEXT, entities=[-1])])
    with pytest.raises(
        ValueError, match=r"exclude must be a \[k, 3\] tensor of triples, got \(3,\)"
    ):
        collator()([TextGraphExample(TEXT, [(0, 5, 0)], exclude=torch.tensor([0, 0, 1]))])


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_max_length_beyond_the_lm_positions_is_refused_up_front(arch):
    lm = load_lm(f"tiny-{arch}")
    positions = text_positions(lm)
    assert positions == {"bert": 130, "roberta": 129}[arch]  # RoBERTa: positions start at pad + 1
    sampler = collator().sampler
    with pytest.raises(
        ValueError,
        match=re.escape(f"max_length={positions + 1} is longer than the {positions} tokens"),
    ):
        TextGraphCollator(tokenizer(), sampler, max_length=positions + 1, max_positions=positions)
    with pytest.raises(ValueError, match="model_max_length"):
        TextGraphCollator(tokenizer(), sampler, max_length=tokenizer().model_max_length + 1)
    # at the limit, the longest text runs through the model
    collate = TextGraphCollator(tokenizer(), sampler, max_length=positions, max_positions=positions)
    batch = collate([TextGraphExample("word " * 400)])
    assert batch.input_ids.shape == (1, positions)
    lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)


def test_text_positions_reads_a_fused_model():
    assert text_positions(build()) == 130 and text_positions(object()) is None


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"node_channels": "64"}, TypeError, "node_channels: expected an integer, got '64' (str)"),
        ({"node_channels": 0}, ValueError, "node_channels: expected an integer >= 1, got 0"),
        ({"num_entities": True}, TypeError, "num_entities: expected an integer, got True (bool)"),
        ({"injection": ["graph", 2]}, TypeError, "injection[1]: expected a mode name (str), got 2"),
        (
            {"injection_kwargs": {"graph": 3}},
            TypeError,
            "injection_kwargs['graph']: expected a mapping",
        ),
        ({"pooling": "max"}, ValueError, "pooling: expected one of mean, cls, got 'max'"),
        ({"gate_init": "half"}, ValueError, "gate_init: expected one of open, closed, got 'half'"),
        (
            {"node_features": "random"},
            ValueError,
            "node_features: expected one of learned, kge, text, got 'random'",
        ),
        (
            {"node_features_trainable": 1},
            TypeError,
            "node_features_trainable: expected bool, got 1 (int)",
        ),
        ({"encoder_kwargs": None}, TypeError, "encoder_kwargs: expected dict, got None"),
        ({"lm": 3}, TypeError, "lm: expected str, got 3 (int)"),
    ],
)
def test_fusion_config_checks_types_and_ranges(values, error, message):
    with pytest.raises(error, match=re.escape(f"FusionConfig.{message}")):
        FusionConfig(**values)
    # from a file, the one typed loader (gnnlm.config) names the file and the key
    key = next(iter(values))
    if values[key] is None:  # a file's `null` for a mapping reads as an empty one
        assert getattr(FusionConfig.from_dict(values), key) == {}
        return
    with pytest.raises(ConfigError, match=rf"^my\.json: .*{re.escape(key)}"):
        FusionConfig.from_dict(values, source="my.json")


def test_fusion_config_accepts_one_mode_by_name_and_the_plain_lm():
    assert FusionConfig(injection="graph").injection == ["graph"]
    assert FusionConfig(injection=[]).injection == []  # the plain LM baseline
