"""Verbalised triples within a budget, the name trie and (constrained) generation."""

from __future__ import annotations

import pytest

from gnnlm.fusion import SubgraphSampler
from gnnlm.fusion.verbalize import subgraph_triples, verbalize_triples
from gnnlm.generation import NameTrie, generate, hf_generate
from tests.fusion.helpers import NAMES, TRIPLES, tiny_graph
from tests.fusion.test_decoder import EXAMPLES, build, collator, perturb, tokenizer

RELATIONS = ["capital_of", "flows_through", "is_a"]


def count(text: str) -> int:
    return len(tokenizer()(text, add_special_tokens=False)["input_ids"])


def test_subgraph_triples_are_forward_kg_triples_seeds_first():
    sampler = SubgraphSampler(tiny_graph(), num_hops=2, max_nodes=8, inverse_offset=3)
    graph = sampler.sample([0])  # paris
    triples = subgraph_triples(graph, inverse_offset=3)
    known = {tuple(t) for t in TRIPLES.tolist()}
    assert len(triples) > 0 and all(tuple(t) in known for t in triples.tolist())
    touches = [0 in (h, t) for h, _, t in triples.tolist()]
    assert touches == sorted(touches, reverse=True)  # every triple of paris before the others


@pytest.mark.parametrize("budget", [0, 5, 12, 30, 1000])
def test_verbalised_triples_respect_the_budget_and_stay_whole(budget):
    named = [(NAMES[h], RELATIONS[r], NAMES[t]) for h, r, t in TRIPLES.tolist()]
    text, kept = verbalize_triples(named, count, budget)
    assert count(text) <= budget
    sentences = [s for s in text.split(".") if s.strip()]
    assert len(sentences) == kept
    for sentence, (h, r, t) in zip(sentences, named):  # whole triples, in order
        assert sentence.strip() == f"{h} {r.replace('_', ' ')} {t}"
    if kept < len(named):  # the next triple would not have fit
        longer, _ = verbalize_triples(named[: kept + 1], count, 10**6)
        assert count(longer) > budget
    if budget == 1000:
        assert kept == len(named)


def test_trie_allows_only_name_continuations():
    trie = NameTrie.from_names(["paris", "paris hilton", "berlin"], tokenizer())
    tok = tokenizer()
    paris = tok(" paris", add_special_tokens=False)["input_ids"]
    hilton = tok(" hilton", add_special_tokens=False)["input_ids"]
    assert set(trie.allowed([])) == {
        paris[0],
        tok(" berlin", add_special_tokens=False)["input_ids"][0],
    }
    assert set(trie.allowed(paris)) == {hilton[0], tok.eos_token_id}
    assert trie.allowed([12345]) == []
    assert trie.lookup(paris + [tok.eos_token_id]) == ["paris"]
    assert trie.lookup(paris + hilton) == ["paris hilton"] and trie.lookup([7]) == []


@pytest.mark.parametrize("knowledge", [[], ["xattn"], ["xattn", "prompt"]])
def test_constrained_generation_only_emits_kg_names(knowledge):
    model = build("gpt2", knowledge)
    if model.xattn is not None:
        perturb(model)
    trie = NameTrie.from_names(NAMES, tokenizer())
    batch = collator("left")([type(e)(e.text, e.mentions) for e in EXAMPLES])
    out = generate(model, batch, eos_id=tokenizer().eos_token_id, trie=trie, tokenizer=tokenizer())
    for g in out:
        assert g.finished and len(g.names) == 1 and g.names[0] in NAMES
        assert g.text == g.names[0]
    free = generate(model, batch, eos_id=tokenizer().eos_token_id, max_new_tokens=4)
    assert any(not g.finished for g in free)  # unconstrained, a random LM rambles


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_our_greedy_loop_equals_hf_generate_with_its_kv_cache(arch):
    model = build(arch, [])
    tok = tokenizer()
    trie = NameTrie.from_names(NAMES, tok)
    batch = collator("left")([type(e)(e.text, e.mentions) for e in EXAMPLES])
    for constraint in (None, trie):
        ours = generate(model, batch, eos_id=tok.eos_token_id, max_new_tokens=5, trie=constraint)
        theirs = hf_generate(
            model.lm, batch.input_ids, batch.attention_mask, eos_id=tok.eos_token_id,
            pad_id=tok.pad_token_id, max_new_tokens=5, trie=constraint,
        )  # fmt: skip
        assert [g.token_ids for g in ours] == theirs


def test_generation_refuses_right_padding():
    model = build("gpt2", [])
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, collator("right")(EXAMPLES), eos_id=tokenizer().eos_token_id)
