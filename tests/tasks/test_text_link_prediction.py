"""Text-aware KG completion (task: text_link_prediction): the SimKGC loss, cached-key ranking through the
filtered evaluator, the gated graph tower, the KGE hybrid, unseen entities and the inductive split."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from gnnlm.config import ConfigError, apply_overrides
from gnnlm.data import KnowledgeGraph, Vocabulary
from gnnlm.data.schema import EntityText
from gnnlm.tasks.text_link_prediction.config import TextLinkPredictionConfig
from gnnlm.tasks.text_link_prediction.hybrid import (
    CachedTextRanker,
    EnsembleRanker,
    QueryCache,
    choose_weight,
    standardize,
)
from gnnlm.tasks.text_link_prediction.inductive import inductive_split, seen_entities, unseen_mask
from gnnlm.tasks.text_link_prediction.loss import (
    KnownTriples,
    PreBatchQueue,
    contrastive_logits,
    in_batch_mask,
    info_nce,
    pre_batch_mask,
)
from gnnlm.tasks.text_link_prediction.task import TextLinkPredictionTask

DATA = os.environ.get("GNNLM_DATA_DIR", "")
needs_wn18rr = pytest.mark.skipif(
    not (Path(DATA) / "wn18rr" / "train.txt").is_file(), reason="needs $GNNLM_DATA_DIR with wn18rr"
)

COUNTRIES = ["france", "spain", "italy"]
CITIES = ["paris", "lyon", "nice", "madrid", "seville", "bilbao", "rome", "milan", "naples"]


def geo_kg() -> KnowledgeGraph:
    """Cities located in countries (a city's description names its country) and neighbouring
    countries. ``lyon``, ``bilbao`` and ``naples`` occur only in test (unseen in training); the
    fourth test triple, (spain, borders, france), has two seen entities."""
    names = COUNTRIES + CITIES
    texts = {c: f"a country in europe called {c}" for c in COUNTRIES}
    for i, city in enumerate(CITIES):
        texts[city] = f"a city in {COUNTRIES[i // 3]}"
    ids = {n: i for i, n in enumerate(names)}
    located = [(ids[c], 0, ids[COUNTRIES[i // 3]]) for i, c in enumerate(CITIES)]
    borders = [(ids["france"], 1, ids["spain"]), (ids["france"], 1, ids["italy"])]
    test_cities = {ids["bilbao"], ids["naples"], ids["lyon"]}
    train = [t for t in located if t[0] not in test_cities] + borders
    test = [t for t in located if t[0] in test_cities] + [(ids["spain"], 1, ids["france"])]
    return KnowledgeGraph(
        Vocabulary(f"e{i}" for i in range(len(names))),
        Vocabulary(["located_in", "borders"]),
        {"train": torch.tensor(train), "valid": torch.tensor(test[:1]), "test": torch.tensor(test)},
        name="geo",
        entity_text=EntityText(names=names, descriptions=[texts[n] for n in names]),
        relation_text=["located in", "borders"],
    )


def make_task(**overrides) -> TextLinkPredictionTask:
    values = {
        "dataset": "geo",
        "model.lm": "tiny-bert",
        "model.max_length": 16,
        "model.graph_channels": 8,
        "training.batch_size": 8,
        "evaluation.batch_size": 4,
    }
    values.update(overrides)
    task = TextLinkPredictionTask(
        apply_overrides(TextLinkPredictionConfig(), values), data=geo_kg()
    )
    task.validate()
    task.setup()
    return task


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Node-feature cache of the tests (not the user's)."""
    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("GNNLM_CACHE_DIR")
    os.environ["GNNLM_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("GNNLM_CACHE_DIR")
    else:
        os.environ["GNNLM_CACHE_DIR"] = old


def build(task: TextLinkPredictionTask, seed: int = 0):
    torch.manual_seed(seed)
    return task.build_model().eval()


def open_gates(model, value: float = 0.7) -> None:
    with torch.no_grad():
        model.graph.key_gate.fill_(value)
        model.graph.query_gate.fill_(-value)


def move_adapter(model, seed: int = 7) -> None:
    """Random weights for the adapter's zero-initialised output layer (a fresh adapter is the
    identity on the head's encoding; a trained one is not)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = model.query_adapter.out
        out.weight.copy_(torch.randn(out.weight.shape, generator=g) * 0.3)
        out.bias.copy_(torch.randn(out.bias.shape, generator=g) * 0.3)
        model.key_map.weight.add_(torch.randn(model.key_map.weight.shape, generator=g) * 0.1)


FROZEN = {"model.key_encoder": "frozen", "model.query_encoder": "frozen"}


# -- the loss --------------------------------------------------------------------------------------
def test_the_margin_is_subtracted_from_the_positives_only():
    torch.manual_seed(0)
    q, k = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1), torch.randn(4, 6)
    pre, own = torch.randn(3, 6), torch.randn(4, 6)
    args = dict(pre_keys=pre, pre_weight=0.5, self_keys=own)
    plain = contrastive_logits(q, k, 20.0, margin=0.0, **args)
    margin = contrastive_logits(q, k, 20.0, margin=0.1, **args)
    diff = plain - margin  # [4, 4 + 3 + 1]
    assert torch.allclose(diff[:, :4], 0.1 * 20.0 * torch.eye(4), atol=1e-6)
    assert torch.equal(diff[:, 4:], torch.zeros(4, 4))  # pre-batch and self columns untouched


def test_info_nce_equals_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 1.0], [1.0, 3.0, float("-inf")]])  # B=2, one extra column
    row = -(
        2.0 - math.log(math.exp(2) + 1 + math.exp(1)) + 3.0 - math.log(math.exp(1) + math.exp(3))
    )
    col = -(2.0 - math.log(math.exp(2) + math.exp(1)) + 3.0 - math.log(1 + math.exp(3)))
    assert info_nce(logits).item() == pytest.approx(row / 2 + col / 2, rel=1e-6)


def test_pre_batch_negatives_never_include_the_positive_s_own_key_or_a_known_answer():
    known = KnownTriples(torch.tensor([[0, 0, 5], [0, 0, 6]]), num_entities=8, num_relations=1)
    queue = PreBatchQueue(2)
    keys = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    queue.push(keys, torch.tensor([5, 6, 7]))
    queue.push(keys[:1], torch.tensor([3]))
    queue.push(keys[1:2], torch.tensor([4]))  # the oldest batch leaves
    pre_keys, entities = queue.get()
    assert entities.tolist() == [3, 4] and len(queue) == 2
    queue.push(keys, torch.tensor([5, 6, 7]))
    pre_keys, entities = queue.get()  # [4, 5, 6, 7]
    heads, relations, tails = torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([7, 4])
    valid = pre_batch_mask(heads, relations, tails, entities, known)
    # query 0 = (0, r, 7): 7 is its own entity; 5 and 6 are known answers of (0, r)
    assert valid.tolist() == [[True, False, False, False], [False, True, True, True]]
    # the positive's own key (however old) cannot be a negative: its logit is -inf
    query = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    logits = contrastive_logits(query, keys[:2], 10.0, pre_keys=pre_keys, pre_valid=valid)
    assert torch.isinf(logits[0, 2 + 3]) and torch.isinf(logits[1, 2 + 0])


def test_in_batch_false_negatives_are_masked_and_the_diagonal_kept():
    known = KnownTriples(torch.tensor([[0, 0, 2]]), num_entities=4, num_relations=1)
    heads, relations, tails = (
        torch.tensor([0, 1, 3]),
        torch.tensor([0, 0, 1]),
        torch.tensor([1, 2, 1]),
    )
    valid = in_batch_mask(heads, relations, tails, known)
    # row 0: tail 2 is a known answer of (0, r0); rows 0 and 2 share tail 1; (2, r0^-1, 0) is known
    assert valid.tolist() == [[True, False, False], [True, True, True], [False, True, True]]
    assert known.contains(
        torch.tensor([2]), torch.tensor([1]), torch.tensor([[0, 1]])
    ).tolist() == [[True, False]]


# -- ranking ---------------------------------------------------------------------------------------
def hand_ranks(model, kg, triples):
    """Filtered realistic ranks computed from score_hrt, one triple at a time."""
    n = kg.num_entities
    known = {tuple(t) for t in torch.cat([kg.train, kg.valid, kg.test]).tolist()}
    out = {"head": [], "tail": []}
    for h, r, t in triples.tolist():
        for side in ("head", "tail"):
            # a head is the tail of the inverse query (t, r + R, ?)
            query = [
                (t, r + kg.num_relations, e) if side == "head" else (h, r, e) for e in range(n)
            ]
            scores = model.score_hrt(torch.tensor(query)).tolist()
            cands = [(e, r, t) if side == "head" else (h, r, e) for e in range(n)]
            target = h if side == "head" else t
            true = scores[target]
            others = [s for e, s in enumerate(scores) if e == target or cands[e] not in known]
            better = sum(s > true for s in others)
            equal = sum(s == true for s in others)
            out[side].append(better + (equal + 1) / 2)
    return out


@pytest.mark.parametrize(
    "key_encoder, query_encoder, graph",
    [("separate", "lm", False), ("shared", "lm", True), ("frozen", "lm", True),
     ("frozen", "frozen", False), ("frozen", "frozen", True)],
)  # fmt: skip
def test_cached_key_ranking_equals_scoring_each_triple_one_by_one(
    cache_dir, key_encoder, query_encoder, graph
):
    task = make_task(
        **{"model.key_encoder": key_encoder, "model.query_encoder": query_encoder,
           "model.graph": graph}
    )  # fmt: skip
    model = build(task)
    if graph:
        open_gates(model)
    if query_encoder == "frozen":
        move_adapter(model)
    kg = task.kg
    triples = kg.test[2:]  # (naples, located_in, italy): unseen; (spain, borders, france): seen
    with torch.no_grad():
        ranks = task.evaluator.ranks(task.text_ranker(model, triples), triples)
        direct = task.evaluator.ranks(model, triples)  # model.score_t / score_h, uncached
        hand = hand_ranks(model, kg, triples)
    for side in ("head", "tail"):
        assert ranks[side].tolist() == direct[side].tolist()
        assert ranks[side].tolist() == pytest.approx(hand[side], abs=1e-9)
    # a cached score row equals the uncached one
    with torch.no_grad():
        ranker = task.text_ranker(model, triples)
        assert torch.allclose(
            ranker.score_t(triples[:, :2]), model.score_t(triples[:, :2]), atol=1e-6
        )


def test_the_query_cache_refuses_a_query_it_never_encoded(cache_dir):
    task = make_task(**{"model.key_encoder": "frozen"})
    model = build(task)
    with torch.no_grad():
        keys, states = model.representations()
        cache = QueryCache(model, task.kg.test[:1], states)
    with pytest.raises(KeyError):
        CachedTextRanker(cache, keys).score_t(torch.tensor([[11, 1]]))


def test_a_closed_graph_tower_is_exactly_the_text_model_and_an_open_one_is_not(cache_dir):
    text = build(make_task(**{"model.key_encoder": "shared"}))
    task = make_task(**{"model.key_encoder": "shared", "model.graph": True})
    tower = build(task, seed=5)
    hr, rt = torch.tensor([[3, 0], [0, 1], [10, 3]]), torch.tensor([[0, 0], [1, 2], [1, 10]])
    with torch.no_grad():
        assert torch.equal(tower.score_t(hr), text.score_t(hr))
        assert torch.equal(tower.score_h(rt), text.score_h(rt))
        open_gates(tower, 0.5)
        assert not torch.allclose(tower.score_t(hr), text.score_t(hr), atol=1e-4)


def test_unseen_entities_are_ranked_not_dropped_and_counted(cache_dir):
    task = make_task(**{"model.key_encoder": "shared", "model.graph": True})
    model = build(task)
    open_gates(model)
    seen = seen_entities(task.kg)
    assert sorted((~seen).nonzero().flatten().tolist()) == [4, 8, 11]  # lyon, bilbao, naples
    assert unseen_mask(task.kg.test, seen).tolist() == [True, True, True, False]
    with torch.no_grad():
        metrics = task.evaluate(model, "test")
    assert metrics["num_queries"] == 2 * 4 and metrics["num_triples"] == 4
    assert metrics["unseen"]["num_triples"] == 3 and metrics["seen"]["num_triples"] == 1
    assert metrics["unseen"]["num_queries"] == 6 and math.isfinite(metrics["unseen"]["mrr"])


# -- training --------------------------------------------------------------------------------------
def test_a_training_step_uses_every_kind_of_negative_and_gives_gradients(cache_dir):
    task = make_task(**{"model.key_encoder": "separate", "model.graph": True, "model.pre_batch": 1})
    model = build(task).train()
    n = task.num_train_examples()
    assert n == 2 * len(task.kg.train)
    heads, relations, tails = task.examples(torch.tensor([0, n // 2]))
    assert (heads[1], relations[1] - 2, tails[1]) == (task.kg.train[0, 2], 0, task.kg.train[0, 0])
    out = task.training_step(model, torch.arange(4), torch.Generator())
    assert len(task.queue) == 4  # the batch's keys were queued
    out = task.training_step(model, torch.arange(4, 8), torch.Generator())
    out.loss.backward()
    assert model.query_lm.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.key_lm.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.graph.key_gate.grad.abs() > 0 and model.log_inverse_temperature.grad is not None


def test_an_engine_run_learns_to_rank_unseen_cities_by_their_text(cache_dir, tmp_path):
    from gnnlm.train import Trainer

    config = apply_overrides(
        TextLinkPredictionConfig(),
        {"dataset": "geo", "model.lm": "tiny-bert", "model.max_length": 16,
         "model.key_encoder": "shared", "model.pre_batch": 1, "training.epochs": 30,
         "training.batch_size": 8, "training.lr": 1e-3,
         "training.param_groups": {"lm": {"lr": 3e-3}}, "evaluation.batch_size": 8},
    )  # fmt: skip
    task = TextLinkPredictionTask(config, data=geo_kg())
    Trainer(task, run_dir=tmp_path / "run", quiet=True).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    test = metrics["test"]
    # 12 candidates: a random order gives MRR ~ 0.26; the tail side (a city's country) is in its text
    assert test["per_side"]["tail"]["mrr"] >= 0.6, test["per_side"]
    assert test["unseen"]["num_triples"] == 3
    assert metrics["test_unseen"]["num_triples"] == 3 and metrics["test_unseen"]["num_queries"] == 6


# -- hybrid ----------------------------------------------------------------------------------------
def kge_model(kg):
    from gnnlm.tasks.link_prediction.config import ModelConfig
    from gnnlm.train.pretrained import build_model

    torch.manual_seed(3)
    return build_model(
        ModelConfig(interaction="distmult", embedding_dim=8), kg.num_entities, kg.num_relations
    ).eval()


def test_the_ensemble_at_weight_1_ranks_as_the_text_model_and_at_0_as_the_kge_model(cache_dir):
    task = make_task(**{"model.key_encoder": "frozen"})
    model, kge, triples = build(task), kge_model(task.kg), task.kg.test
    with torch.no_grad():
        text = task.text_ranker(model, triples)
        ranks = {w: task.evaluator.ranks(EnsembleRanker(text, kge, w), triples) for w in (0.0, 1.0)}
        for w, alone in ((1.0, text), (0.0, kge)):
            expected = task.evaluator.ranks(alone, triples)
            assert all(torch.equal(ranks[w][side], expected[side]) for side in expected)
        best, curve = choose_weight(task.evaluator, text, kge, triples, [0.0, 0.5, 1.0])
    assert curve[f"{best:g}"] == max(curve.values()) and set(curve) == {"0", "0.5", "1"}
    z = standardize(torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.allclose(z, torch.tensor([[-1.0, 0.0, 1.0]]))


def save_kge(folder: Path):
    """A (random) DistMult saved as a run folder over geo_kg's ids."""
    from gnnlm.tasks.link_prediction.config import ModelConfig
    from gnnlm.train.pretrained import PretrainedConfig, save_pretrained

    kg = geo_kg()
    kge = kge_model(kg)
    config = PretrainedConfig(
        model=ModelConfig(interaction="distmult", embedding_dim=8),
        num_entities=kg.num_entities, num_relations=kg.num_relations, dataset="geo",
    )  # fmt: skip
    save_pretrained(kge, folder / "model", config, kg=kg)
    return kge


def test_a_kge_run_folder_adds_kge_and_hybrid_metrics(cache_dir, tmp_path):
    kge = save_kge(tmp_path / "kge")
    task = make_task(**{"model.key_encoder": "frozen", "hybrid.kge_run": str(tmp_path / "kge"),
                        "hybrid.weights": [0.0, 1.0]})  # fmt: skip
    model = build(task)
    with torch.no_grad():
        valid = task.evaluate(model, "valid")
        test = task.evaluate(model, "test")
        expected = task.evaluator.evaluate(kge, task.kg.test).mrr
    assert set(valid["hybrid_curve"]) == {"0", "1"} and "hybrid_curve" not in test
    assert test["kge"]["mrr"] == pytest.approx(expected)
    assert test["hybrid"]["weight"] in (0.0, 1.0)
    assert test["hybrid"]["mrr"] == pytest.approx(
        test["kge"]["mrr"] if test["hybrid"]["weight"] == 0 else test["mrr"]
    )


# -- inductive split -------------------------------------------------------------------------------
def test_the_inductive_split_holds_out_entities_from_training_and_is_seeded():
    kg = geo_kg()
    a, b, c = (
        inductive_split(kg, 0.25, seed=1),
        inductive_split(kg, 0.25, seed=1),
        inductive_split(kg, 0.25, seed=2),
    )
    assert torch.equal(a.test, b.test) and torch.equal(a.train, b.train)
    info = a.extra["inductive"]
    assert info["held_out_entities"] == 3
    seen = seen_entities(a)
    for split in ("valid", "test"):
        touching = (~seen[a.splits[split][:, 0]]).int() + (~seen[a.splits[split][:, 2]]).int()
        assert (touching >= 1).all()
    everything = len(torch.unique(torch.cat([kg.train, kg.valid, kg.test]), dim=0))
    left_out = info["triples_between_held_out_entities"] + info["evaluation_triples_left_out"]
    assert len(a.train) + len(a.valid) + len(a.test) + left_out == everything
    assert len(a.train) == len(kg.train) - info["train_triples_removed"]
    assert not (torch.equal(a.train, c.train) and torch.equal(a.test, c.test))
    with pytest.raises(ValueError, match="fraction"):
        inductive_split(kg, 0.0)


# -- predict ---------------------------------------------------------------------------------------
def test_predict_ranks_tails_for_a_kg_entity_and_for_new_text(cache_dir):
    from gnnlm.tasks.text_link_prediction.predict import predict_heads_text, predict_tails_text

    task = make_task(**{"model.key_encoder": "shared", "model.graph": True})
    model = build(task)
    open_gates(model)
    known = predict_tails_text(model, task.kg, "paris", "located_in", 3, exclude=None)
    with torch.no_grad():
        row = model.score_t(torch.tensor([[3, 0]]))[0]
    assert known.ids.tolist() == row.topk(3).indices.tolist()
    new = predict_tails_text(model, task.kg, "toulouse: a city in france", "located_in", 4)
    assert len(new.ids) == 4 and new.query == ("toulouse: a city in france", "located_in", "?")
    heads = predict_heads_text(model, task.kg, "located_in", "e0", 2, exclude="train")
    assert not set(heads.ids.tolist()) & {
        3,
        5,
    }  # paris, nice are known heads of (?, located_in, france)
    records = task.predict(model, [{"head": "a brand new town", "relation": "located_in"}], top_k=2)
    assert len(records[0]["predictions"]) == 2
    with pytest.raises(ConfigError, match="record 1"):
        task.predict(model, [{"relation": "located_in"}])


# -- config ----------------------------------------------------------------------------------------
def test_bad_options_are_refused_before_any_data():
    with pytest.raises(ValueError, match="key_encoder"):
        apply_overrides(TextLinkPredictionConfig(), {"model.key_encoder": "twin"})
    config = apply_overrides(
        TextLinkPredictionConfig(), {"model.lm": "tiny-bert", "model.max_length": 4096}
    )
    with pytest.raises(ConfigError, match="max_length"):
        TextLinkPredictionTask(config, data=geo_kg()).validate()
    config = apply_overrides(
        TextLinkPredictionConfig(), {"model.lm": "tiny-bert", "hybrid.kge_run": "/no/such/run"}
    )
    with pytest.raises(ConfigError, match="kge_run"):
        TextLinkPredictionTask(config, data=geo_kg()).validate()


@needs_wn18rr
def test_wn18rr_has_210_test_triples_with_an_entity_unseen_in_training():
    from gnnlm.data import load_dataset

    kg = load_dataset("wn18rr")
    seen = seen_entities(kg)
    mask = unseen_mask(kg.test, seen)
    assert int(mask.sum()) == 210
    unseen = torch.unique(kg.test[mask][:, [0, 2]].reshape(-1))
    assert int((~seen[unseen]).sum()) == 209


@pytest.mark.parametrize("encoders", [{"model.key_encoder": "shared"}, FROZEN])
def test_gnnlm_predict_on_a_trained_text_run_reads_new_text(cache_dir, tmp_path, capsys, encoders):
    from gnnlm.cli import main
    from gnnlm.train import Trainer

    kg, root = geo_kg(), tmp_path / "geo"
    root.mkdir()
    for split in ("train", "valid", "test"):
        rows = kg.splits[split].tolist()
        (root / f"{split}.txt").write_text(
            "".join(f"e{h}\t{kg.relations.name(r)}\te{t}\n" for h, r, t in rows)
        )
    names = kg.entity_text.names
    (root / "names.tsv").write_text("".join(f"e{i}\t{n}\n" for i, n in enumerate(names)))
    config = apply_overrides(
        TextLinkPredictionConfig(),
        {"dataset": f"tsv:{root}", "model.lm": "tiny-bert", "model.max_length": 16,
         **encoders, "model.graph": True,
         "dataset_kwargs": {"files": {s: f"{s}.txt" for s in ("train", "valid", "test")},
                            "entity_text": "names.tsv", "cache": False},
         "training.batch_size": 8},
    )  # fmt: skip
    Trainer(config, run_dir=tmp_path / "run", quiet=True).fit()
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--head", "toulouse", "--relation",
                 "located_in", "--k", "3", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == ["toulouse", "located_in", "?"] and len(out["predictions"]) == 3
    assert main(["predict", str(tmp_path / "run"), "--tail", "france", "--relation",
                 "located_in", "--k", "2"]) == 0  # fmt: skip
    assert "(?, located_in, france)" in capsys.readouterr().out


def test_samples_are_seeded_and_the_counts_say_what_was_used(cache_dir):
    task = make_task(**{"data.max_train": 4, "data.max_test": 2, "data.sample_seed": 3})
    again = make_task(**{"data.max_train": 4, "data.max_test": 2, "data.sample_seed": 3})
    assert torch.equal(task.train_triples, again.train_triples) and len(task.train_triples) == 4
    assert task.num_train_examples() == 8 and len(task.eval_triples["test"]) == 2
    counts = task.run_metrics(epochs=1, train_seconds=2.0)["counts"]
    assert counts["train_triples"] == 4 and counts["train_triples_in_graph"] == len(task.kg.train)
    assert counts["evaluated_test_triples"] == 2 and counts["entities_unseen_in_training"] == 3
    # the unseen-entity split is every such test triple, not a sample
    assert counts["evaluated_test_unseen_triples"] == 3
    assert task.final_splits() == ("valid", "test", "test_unseen")


# -- KG-BERT-style re-ranking ----------------------------------------------------------------------
def test_reranking_puts_a_shortlisted_answer_first_and_leaves_the_others_at_their_kge_rank():
    from gnnlm.eval import RankBasedEvaluator
    from gnnlm.tasks.text_link_prediction.rerank import RerankRanker

    kg = geo_kg()
    kge, triples, k = kge_model(kg), torch.cat([kg.train, kg.test]), 4
    evaluator = RankBasedEvaluator(kg.filter_index)
    answers: dict[tuple[int, int], set[int]] = {}  # the oracle knows every answer of a query
    r_count = kg.num_relations
    for h, r, t in torch.cat([kg.train, kg.valid, kg.test]).tolist():
        answers.setdefault((h, r), set()).add(t)
        answers.setdefault((t, r + r_count), set()).add(h)

    def oracle(entities, relations, candidates):
        return torch.tensor(
            [[10.0 * (int(c) in answers.get((int(e), int(r)), ())) for c in row]
             for e, r, row in zip(entities, relations, candidates)]
        )  # fmt: skip

    with torch.no_grad():
        kge_ranks = evaluator.ranks(kge, triples)
        unchanged = evaluator.ranks(RerankRanker(kge, oracle, 0, r_count), triples)
        assert all(torch.equal(unchanged[s], kge_ranks[s]) for s in kge_ranks)
        ranks = evaluator.ranks(RerankRanker(kge, oracle, k, r_count), triples)
        # the shortlist is the top-k of the unfiltered scores
        tail_rows = kge.score_t(triples[:, :2])
        head_rows = kge.score_h(triples[:, 1:])
    for side, rows, target in (
        ("tail", tail_rows, triples[:, 2]),
        ("head", head_rows, triples[:, 0]),
    ):
        in_top = (rows.topk(k, dim=1).indices == target[:, None]).any(1)
        assert in_top.any() and (ranks[side][in_top] == 1).all()  # other answers are filtered
        assert (~in_top).any() and torch.equal(ranks[side][~in_top], kge_ranks[side][~in_top])


def test_hard_negatives_come_from_the_kge_shortlist_and_are_never_answers():
    from gnnlm.tasks.text_link_prediction.rerank import hard_negatives

    kg = geo_kg()
    kge, known = kge_model(kg), KnownTriples(kg.train, kg.num_entities, kg.num_relations)
    heads, relations, tails = kg.train[:, 0], kg.train[:, 1], kg.train[:, 2]
    relations = torch.cat([relations[:4], relations[4:] + kg.num_relations])  # some inverse queries
    negatives = hard_negatives(kge, heads, relations, tails, known, k=5, num=3,
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert negatives.shape == (len(heads), 3)
    assert not known.contains(heads, relations, negatives).any()
    assert not (negatives == tails[:, None]).any()


def test_the_rerank_option_trains_a_cross_encoder_and_reports_rerank_metrics(cache_dir, tmp_path):
    save_kge(tmp_path / "kge")
    task = make_task(**{"model.key_encoder": "frozen", "hybrid.kge_run": str(tmp_path / "kge"),
                        "hybrid.rerank_k": 3, "hybrid.weights": [0.5]})  # fmt: skip
    model = build(task).train()
    out = task.training_step(model, torch.arange(6), torch.Generator().manual_seed(0))
    out.loss.backward()
    assert out.logs["cross_entropy"] > 0 and model.cross.linear.weight.grad.abs().sum() > 0
    assert any(p is model.cross.linear.weight for p in task.parameter_groups(model)["head"])
    model.eval()
    with torch.no_grad():
        task.evaluate(model, "valid")
        test = task.evaluate(model, "test")
    assert test["rerank"]["num_queries"] == 8 and math.isfinite(test["rerank"]["mrr"])
    config = apply_overrides(TextLinkPredictionConfig(), {"model.lm": "tiny-bert",
                                                          "hybrid.rerank_k": 3})  # fmt: skip
    with pytest.raises(ConfigError, match="kge_run"):
        TextLinkPredictionTask(config, data=geo_kg()).validate()


@pytest.mark.parametrize("name", ["text_kgc_wn18rr", "text_kgc_fb15k237"])
def test_the_shipped_configs_pass_the_engine_s_checks(name):
    from gnnlm.config import check_values
    from gnnlm.tasks.loading import load_config
    from gnnlm.train.optim import check_training

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs" / "tasks" / f"{name}.yaml")
    assert set(config.variants) == {"text", "text_graph"}
    for arm in config.variants:
        single = config.variant(arm, 0)
        check_values(single)
        check_training(single)
        TextLinkPredictionTask(single, data=geo_kg()).validate()


def test_modules_reset_their_parameters_and_show_their_sizes(cache_dir):
    task = make_task(**{"model.key_encoder": "frozen", "model.graph": True})
    model = build(task)
    open_gates(model)
    with torch.no_grad():
        model.key_map.weight.mul_(2.0)
    model.graph.reset_parameters()
    model.reset_parameters()
    assert model.graph.key_gate.item() == 0.0 and model.graph.query_gate.item() == 0.0
    assert torch.equal(model.key_map.weight, torch.eye(32))
    assert "num_entities=12" in repr(model.graph) and "channels=8" in repr(model.graph)
    assert "key_encoder=frozen" in repr(model) and "num_relations=2" in repr(model)
    assert model.graph().shape == (12, 8)  # [N, channels] states


def test_the_task_evaluates_an_inductive_split_where_every_test_triple_is_unseen(cache_dir):
    task = make_task(**{"model.key_encoder": "frozen", "data.inductive_fraction": 0.25})
    assert task.kg.name == "geo-inductive"
    assert task.run_metrics(epochs=1, train_seconds=1.0)["counts"]["inductive"]["seed"] == 0
    with torch.no_grad():
        test = task.evaluate(build(task), "test")
    assert test["unseen"]["num_triples"] == test["num_triples"] == len(task.kg.test) > 0
    assert test["seen"]["num_triples"] == 0 and math.isfinite(test["mrr"])


# -- the frozen-LM query adapter (the CPU budget) -------------------------------------------------
def test_a_fresh_adapter_queries_with_the_head_s_own_table_row_and_no_lm_trains(cache_dir):
    task = make_task(**FROZEN, **{"model.graph": True, "seed": 3})
    model = build(task).train()
    table = model.key_table
    heads, relations = torch.tensor([0, 4, 11]), torch.tensor([0, 1, 3])
    with torch.no_grad():
        query = model.query_vectors(heads, relations)
    # zero output layer, closed gates: the query is the normalised head text encoding
    assert torch.allclose(query, torch.nn.functional.normalize(table[heads], dim=-1), atol=1e-6)
    groups = task.parameter_groups(model)
    assert groups["lm"] == [] and not any(p.requires_grad for p in model.query_lm.parameters())
    adapter = {id(p) for p in model.query_adapter.parameters()}
    assert adapter <= {id(p) for p in groups["head"]}
    out = task.training_step(model, torch.arange(6), torch.Generator())
    out.loss.backward()
    out_layer, adapter = model.query_adapter.out, model.query_adapter
    assert out_layer.weight.grad.abs().sum() > 0 and model.key_map.weight.grad.abs().sum() > 0
    # the zero output layer blocks the inner gradients until its first update (as LoRA's B = 0)
    assert adapter.relation.grad.abs().sum() == 0
    with torch.no_grad():
        out_layer.weight -= out_layer.weight.grad
    model.zero_grad()
    task.training_step(model, torch.arange(6, 12), torch.Generator()).loss.backward()
    assert adapter.relation.grad.abs().sum() > 0 and adapter.hidden.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.query_lm.parameters())
    assert "query_encoder=frozen" in repr(model) and "relations=4" in repr(model.query_adapter)


def test_new_text_is_encoded_exactly_as_the_frozen_table_s_rows(cache_dir):
    # seed 5: a tiny LM's weights depend on the run's seed; the table must come from the same LM
    task = make_task(**FROZEN, **{"seed": 5})
    model = build(task)
    move_adapter(model)
    texts = [model.entity_texts[i] for i in (3, 10)]  # paris, milan
    with torch.no_grad():
        assert torch.allclose(model.encode_frozen(texts), model.key_table[[3, 10]], atol=1e-5)
        relations = torch.tensor([0, 2])  # located_in; inverse located_in
        as_text = model.score_text(texts, relations)
        as_ids = model.score_t(torch.tensor([[3, 0], [10, 2]]))
        assert torch.allclose(as_text, as_ids, atol=1e-5)
        keys = model.key_vectors_of_texts(texts)
        assert torch.allclose(keys, model.key_vectors(torch.tensor([3, 10])), atol=1e-5)


def test_the_frozen_query_encoder_needs_frozen_keys_and_a_known_name():
    with pytest.raises(ValueError, match="key_encoder: frozen"):
        apply_overrides(TextLinkPredictionConfig(), {"model.query_encoder": "frozen"})
    with pytest.raises(ValueError, match="query_encoder must be one of lm, frozen"):
        apply_overrides(TextLinkPredictionConfig(), {"model.query_encoder": "adapter"})
    with pytest.raises(ValueError, match="key_table"):
        from gnnlm.tasks.text_link_prediction.adapter import QueryAdapter
        from gnnlm.tasks.text_link_prediction.model import TextKGCModel

        task = make_task()
        TextKGCModel(
            task.build_model().query_lm, task.tokenizer, ["a"], ["r", "inverse r"],
            query_adapter=QueryAdapter(torch.zeros(2, 32)),
        )  # fmt: skip


def test_an_engine_run_of_the_adapter_learns_what_the_frozen_text_alone_does_not(
    cache_dir, tmp_path
):
    """No LM trains; the adapter and the key map learn (city -> its country) from 6 training
    cities and rank the 3 unseen test cities' countries from their (frozen) text encodings."""
    from gnnlm.train import Trainer

    def run(epochs: int) -> dict:
        config = apply_overrides(
            TextLinkPredictionConfig(),
            {"dataset": "geo", "model.lm": "tiny-bert", **FROZEN, "model.pre_batch": 1,
             "model.adapter_dropout": 0.0, "training.epochs": epochs, "training.batch_size": 8,
             "training.lr": 1e-2, "evaluation.batch_size": 8},
        )  # fmt: skip
        task = TextLinkPredictionTask(config, data=geo_kg())
        if epochs == 1:  # the untrained model: evaluate before any step
            task.validate()
            task.setup()
            with torch.no_grad():
                return task.evaluate(task.build_model().eval(), "test")
        Trainer(task, run_dir=tmp_path / f"run{epochs}", quiet=True).fit()
        return json.loads((tmp_path / f"run{epochs}" / "metrics.json").read_text())["test"]

    untrained, trained = run(1), run(40)
    tail = trained["per_side"]["tail"]["mrr"]
    # 12 candidates, random ~0.26; measured: untrained 0.15 (the query is the city's own text, so
    # cities rank first), trained 0.79 (3 of the 4 tails first)
    assert tail >= 0.7, trained["per_side"]
    assert tail > untrained["per_side"]["tail"]["mrr"] + 0.4, untrained["per_side"]
    assert trained["unseen"]["num_triples"] == 3


def test_per_triple_reciprocal_ranks_average_to_the_mrr(cache_dir, tmp_path):
    save_kge(tmp_path / "kge")
    task = make_task(**FROZEN, **{"hybrid.kge_run": str(tmp_path / "kge")})
    model = build(task)
    move_adapter(model)
    with torch.no_grad():
        test = task.evaluate(model, "test")
        ranks = task.evaluator.ranks(task.text_ranker(model, task.kg.test), task.kg.test)
    assert len(test["per_triple_rr"]) == len(task.kg.test) == 4
    first = (1 / ranks["head"][0] + 1 / ranks["tail"][0]) / 2
    assert test["per_triple_rr"][0] == pytest.approx(float(first), abs=1e-6)
    for part in (test, test["kge"], test["hybrid"]):
        assert sum(part["per_triple_rr"]) / 4 == pytest.approx(part["mrr"], abs=1e-5)
