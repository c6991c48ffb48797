"""The evaluator against a brute-force per-triple reference (ties included, filtered and raw)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from gnnlm.data.filter_index import FilterIndex
from gnnlm.eval import HEADLINE_METRICS, RankBasedEvaluator, RankMetrics
from gnnlm.kge import LinkPredictionModel, build_kge_model

NUM_ENTITIES, NUM_RELATIONS = 13, 3


def integer_model(name: str, *, reciprocal: bool = False, seed: int = 0) -> LinkPredictionModel:
    """A model whose embeddings are small integers: every score is an exact integer in float32 on every
    code path (GEMM, broadcast), and ties are frequent."""
    torch.manual_seed(seed)
    model = build_kge_model(
        name,
        NUM_ENTITIES,
        NUM_RELATIONS,
        3,
        reciprocal=reciprocal,
        interaction_kwargs={"p": 1} if name == "transe" else None,
    )
    with torch.no_grad():
        for weight in (model.representation.entity.weight, model.representation.relation.weight):
            weight.copy_(torch.randint(-1, 2, weight.shape).float())
    return model


def random_triples(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        [
            torch.randint(0, NUM_ENTITIES, (n,), generator=g),
            torch.randint(0, NUM_RELATIONS, (n,), generator=g),
            torch.randint(0, NUM_ENTITIES, (n,), generator=g),
        ],
        dim=1,
    )


def brute_force_ranks(model, test, known):
    """One triple, one side, one candidate at a time, with plain Python comparisons."""
    ranks = {"head": [], "tail": []}
    model.eval()
    for h, r, t in test.tolist():
        for side in ("head", "tail"):
            target = h if side == "head" else t
            if side == "head" and model.reciprocal:
                cands = [(t, r + model.num_relations, e) for e in range(NUM_ENTITIES)]
            elif side == "head":
                cands = [(e, r, t) for e in range(NUM_ENTITIES)]
            else:
                cands = [(h, r, e) for e in range(NUM_ENTITIES)]
            with torch.no_grad():
                scores = model.score_hrt(torch.tensor(cands)).tolist()
            true = scores[target]
            better = equal = 0
            for e in range(NUM_ENTITIES):
                triple = (e, r, t) if side == "head" else (h, r, e)
                if e != target and triple in known:
                    continue  # filtered
                better += scores[e] > true
                equal += scores[e] == true
            optimistic, pessimistic = better + 1, better + equal
            ranks[side].append((optimistic + pessimistic) / 2)
    return ranks


@pytest.mark.parametrize("name", ["distmult", "complex", "transe"])
@pytest.mark.parametrize("filtered", [True, False])
@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_equals_brute_force(name, filtered, batch_size):
    all_triples = random_triples(60, seed=1)
    test = torch.cat([all_triples[:25], all_triples[:5]])  # repeated test triples share query rows
    index = FilterIndex(all_triples, NUM_ENTITIES, NUM_RELATIONS) if filtered else None
    model = integer_model(name)
    known = set(map(tuple, all_triples.tolist())) if filtered else set()
    expected = brute_force_ranks(model, test, known)
    got = RankBasedEvaluator(index, batch_size=batch_size).ranks(model, test)
    assert got["head"].tolist() == expected["head"]
    assert got["tail"].tolist() == expected["tail"]
    ties = [r for r in expected["head"] + expected["tail"] if r != int(r)]
    assert ties, "the fixture should produce ties"


def test_reciprocal_and_partial_filter():
    """Reciprocal head ranking, and a filter that does not contain the test triples themselves."""
    all_triples = random_triples(60, seed=2)
    train, test = all_triples[:40], all_triples[40:]
    model = integer_model("complex", reciprocal=True, seed=3)
    expected = brute_force_ranks(model, test, set(map(tuple, train.tolist())))
    got = RankBasedEvaluator(FilterIndex(train, NUM_ENTITIES, NUM_RELATIONS), batch_size=2).ranks(
        model, test
    )
    assert got["head"].tolist() == expected["head"]
    assert got["tail"].tolist() == expected["tail"]


def test_metrics_and_breakdowns_equal_brute_force():
    all_triples = random_triples(50, seed=4)
    test = all_triples[:30]
    model = integer_model("distmult", seed=5)
    expected = brute_force_ranks(model, test, set(map(tuple, all_triples.tolist())))
    metrics = RankBasedEvaluator(FilterIndex(all_triples, NUM_ENTITIES, NUM_RELATIONS)).evaluate(
        model, test
    )

    def check(m: RankMetrics, ranks: list[float]) -> None:
        assert m.num_queries == len(ranks)
        assert m.mrr == pytest.approx(sum(1 / r for r in ranks) / len(ranks), rel=1e-12)
        assert m.mr == pytest.approx(sum(ranks) / len(ranks), rel=1e-12)
        for k in (1, 3, 10):
            assert m.hits[k] == pytest.approx(sum(r <= k for r in ranks) / len(ranks), rel=1e-12)

    check(metrics, expected["head"] + expected["tail"])
    check(metrics.per_side["head"], expected["head"])
    check(metrics.per_side["tail"], expected["tail"])
    relations = test[:, 1].tolist()
    assert sorted(metrics.per_relation) == sorted(set(relations))
    for rel, m in metrics.per_relation.items():
        mine = [i for i, x in enumerate(relations) if x == rel]
        check(m, [expected["head"][i] for i in mine] + [expected["tail"][i] for i in mine])
    flat = metrics.to_dict()
    assert set(flat) >= {
        "mrr",
        "mr",
        "hits@1",
        "hits@3",
        "hits@10",
        "num_queries",
        "per_side",
        "per_relation",
    }
    assert flat["num_queries"] == 60 and flat["per_side"]["tail"]["num_queries"] == 30
    assert json.loads(json.dumps(flat)) == flat  # JSON-ready (metrics.json)
    assert metrics["hits@10"] == flat["hits@10"]


def test_sides_train_mode_and_errors():
    model = integer_model("distmult")
    model.train()
    test = random_triples(8, seed=6)
    metrics = RankBasedEvaluator(sides=("tail",)).evaluate(model, test)
    assert list(metrics.per_side) == ["tail"] and metrics.num_queries == 8
    assert model.training  # restored
    with pytest.raises(ValueError, match="sides"):
        RankBasedEvaluator(sides=("left",))
    with pytest.raises(ValueError, match=r"triples must be \[n, 3\]"):
        RankBasedEvaluator().evaluate(model, test[:, :2])
    with pytest.raises(
        ValueError, match=r"triple 1 \[2, 0, 13\] has an entity id outside \[0, 13\)"
    ):
        RankBasedEvaluator().evaluate(model, torch.tensor([[0, 0, 1], [2, 0, 13]]))
    with torch.no_grad():
        model.representation.entity.weight[int(test[0, 2])] = float("nan")
    with pytest.raises(ValueError, match="non-finite score"):
        RankBasedEvaluator().evaluate(model, test[:1])


def test_real_data_against_dense_reference():
    """Nations (14 entities), a random ComplEx: the evaluator equals a dense-mask reference."""
    data_dir = os.environ.get(
        "GNNLM_DATA_DIR", str(Path(__file__).parents[3] / "shared" / "datasets")
    )
    if not (Path(data_dir) / "nations").is_dir():
        pytest.skip("nations not found; set GNNLM_DATA_DIR")
    from gnnlm.data import load_dataset

    kg = load_dataset("nations", data_dir=data_dir)
    torch.manual_seed(0)
    model = build_kge_model("complex", kg.num_entities, kg.num_relations, 8).eval()
    known = torch.zeros(kg.num_entities, kg.num_relations, kg.num_entities, dtype=torch.bool)
    for split in (kg.train, kg.valid, kg.test):
        known[split[:, 0], split[:, 1], split[:, 2]] = True
    got = RankBasedEvaluator(kg.filter_index, batch_size=7).ranks(model, kg.test)
    with torch.no_grad():
        h, r, t = kg.test.unbind(1)
        for side, scores, target, mask in (
            ("tail", model.score_t(kg.test[:, [0, 1]]), t, known[h, r]),
            ("head", model.score_h(kg.test[:, [1, 2]]), h, known[:, r, t].t()),
        ):
            true = scores.gather(1, target[:, None])
            mask = mask.clone()
            mask[torch.arange(len(target)), target] = False  # never filter the target itself
            better = ((scores > true) & ~mask).sum(1)
            equal = ((scores == true) & ~mask).sum(1)
            torch.testing.assert_close(got[side], better.double() + (equal.double() + 1) / 2)


def test_representations_computed_once_for_a_custom_representation():
    """A non-table representation (here: a linear map of a table, like a one-layer encoder)."""
    from torch import nn

    from gnnlm.kge import DistMult, Representation

    class Mapped(Representation):
        def __init__(self) -> None:
            super().__init__()
            self.num_entities, self.num_relations = NUM_ENTITIES, NUM_RELATIONS
            self.x = nn.Parameter(torch.randn(NUM_ENTITIES, 4))
            self.rel = nn.Parameter(torch.randn(NUM_RELATIONS, 4))
            self.lin = nn.Linear(4, 4)
            self.calls = 0

        def forward(self):
            self.calls += 1
            return self.lin(self.x), self.rel

    rep = Mapped()
    model = LinkPredictionModel(rep, DistMult())
    test = random_triples(20, seed=7)
    ranks = RankBasedEvaluator(batch_size=3).ranks(model, test)
    assert rep.calls == 1
    with torch.no_grad():
        scores = model.score_t(test[:, [0, 1]])
    true = scores.gather(1, test[:, 2:])
    expected = (scores > true).sum(1) + ((scores == true).sum(1) + 1) / 2
    torch.testing.assert_close(ranks["tail"], expected.double())


def test_num_threads_is_set_during_evaluation_restored_after_and_does_not_change_ranks():
    torch.manual_seed(0)
    model = build_kge_model(
        "complex", 300, 4, 16
    )  # float embeddings: the GEMM path, real ties rare
    g = torch.Generator().manual_seed(1)
    test = torch.stack(
        [torch.randint(0, 300, (200,), generator=g), torch.randint(0, 4, (200,), generator=g),
         torch.randint(0, 300, (200,), generator=g)], dim=1,
    )  # fmt: skip
    index = FilterIndex(test, 300, 4)
    seen = []
    representations = model.representations

    def spy():
        seen.append(torch.get_num_threads())
        return representations()

    model.representations = spy
    torch.set_num_threads(3)  # the caller's count (the suite fixture restores its own afterwards)
    ranks = {}
    for threads in (1, 2, None):
        evaluator = RankBasedEvaluator(index, batch_size=7, num_threads=threads)
        ranks[threads] = evaluator.ranks(model, test)
        assert seen[-1] == (threads or 3)
        assert torch.get_num_threads() == 3
    assert RankBasedEvaluator().num_threads == 1  # the measured default
    for side in ("head", "tail"):
        assert torch.equal(ranks[1][side], ranks[2][side])
        assert torch.equal(ranks[1][side], ranks[None][side])
    with pytest.raises(ValueError, match="num_threads"):
        RankBasedEvaluator(num_threads=0)


def test_headline_metrics_are_the_first_keys_every_result_has():
    flat = RankMetrics.from_ranks(torch.tensor([1.0, 2.5, 11.0])).to_dict()
    assert HEADLINE_METRICS == ("mrr", "mr", "hits@1", "hits@3", "hits@10")
    assert tuple(flat)[: len(HEADLINE_METRICS)] == HEADLINE_METRICS


@pytest.mark.parametrize("name", ["distmult", "complex", "transe", "rotate"])
@pytest.mark.parametrize("reciprocal", [False, True])
@pytest.mark.parametrize(("batch_size", "max_scores"), [(3, 20), (4, 40), (None, 5)])
def test_entity_slices_equal_brute_force_and_the_unsliced_path(
    name, reciprocal, batch_size, max_scores
):
    """Slices of 6, 10 or 1 entities (uneven last slice), filtered targets and ties included."""
    all_triples = random_triples(60, seed=6)
    test = torch.cat([all_triples[:25], all_triples[:5], random_triples(10, seed=7)])
    index = FilterIndex(all_triples, NUM_ENTITIES, NUM_RELATIONS)
    model = integer_model(name, reciprocal=reciprocal, seed=8)
    sliced = RankBasedEvaluator(
        index, batch_size=batch_size, max_scores=max_scores, slice_entities=True
    )
    assert sliced.sliced(model, NUM_ENTITIES)
    got = sliced.ranks(model, test)
    if name != "rotate":  # RotatE's moduli are not integers: compare with the unsliced path only
        expected = brute_force_ranks(model, test, set(map(tuple, all_triples.tolist())))
        assert got["head"].tolist() == expected["head"]
        assert got["tail"].tolist() == expected["tail"]
    whole = RankBasedEvaluator(index, slice_entities=False).ranks(model, test)
    assert torch.equal(got["head"], whole["head"]) and torch.equal(got["tail"], whole["tail"])
    raw = RankBasedEvaluator(None, batch_size=batch_size, max_scores=max_scores).ranks(model, test)
    raw_whole = RankBasedEvaluator(None).ranks(model, test)
    assert torch.equal(raw["tail"], raw_whole["tail"])


def test_slices_are_chosen_when_few_rows_fit_the_budget():
    model = integer_model("distmult")
    assert not RankBasedEvaluator().sliced(model, NUM_ENTITIES)
    assert RankBasedEvaluator(max_scores=15 * NUM_ENTITIES).sliced(model, NUM_ENTITIES)
    assert not RankBasedEvaluator(max_scores=16 * NUM_ENTITIES).sliced(model, NUM_ENTITIES)
    assert RankBasedEvaluator().sliced(model, 2_500_000)  # 3 rows of 2.5M entities in 2**23 floats
    # Without a matrix product, slices only when a single row exceeds the budget.
    transe = integer_model("transe")
    assert not RankBasedEvaluator().sliced(transe, 2_500_000)
    assert RankBasedEvaluator(max_scores=NUM_ENTITIES - 1).sliced(transe, NUM_ENTITIES)
    assert not RankBasedEvaluator(max_scores=NUM_ENTITIES).sliced(transe, NUM_ENTITIES)


def test_entity_slices_report_non_finite_true_scores():
    model = integer_model("distmult")
    with torch.no_grad():
        model.representation.entity.weight[2] = float("nan")
    test = torch.tensor([[2, 0, 1]])
    with pytest.raises(ValueError, match="non-finite score"):
        RankBasedEvaluator(None, max_scores=8, slice_entities=True).ranks(model, test)
