"""The OGB protocol wrapper against a direct computation with hand-made negatives."""

from __future__ import annotations

import pytest
import torch

from gnnlm.eval import OGBEvaluator, ogb_split_to_global
from gnnlm.kge import build_kge_model


def direct_ranks(model, triples, negatives, side):
    ranks = []
    with torch.no_grad():
        for (h, r, t), neg in zip(triples.tolist(), negatives.tolist()):
            if side == "tail":
                cands = [(h, r, x) for x in [t, *neg]]
            elif model.reciprocal:
                cands = [(t, r + model.num_relations, x) for x in [h, *neg]]
            else:
                cands = [(x, r, t) for x in [h, *neg]]
            scores = model.score_hrt(torch.tensor(cands)).tolist()
            better = sum(s > scores[0] for s in scores[1:])
            at_least = sum(s >= scores[0] for s in scores[1:])
            ranks.append(1 + (better + at_least) / 2)
    return ranks


@pytest.mark.parametrize("reciprocal", [False, True])
def test_ogb_evaluator_matches_direct_computation(reciprocal):
    torch.manual_seed(0)
    model = build_kge_model("distmult", 9, 2, 3, reciprocal=reciprocal)
    with torch.no_grad():  # integer embeddings: exact scores, many ties
        for w in (model.representation.entity.weight, model.representation.relation.weight):
            w.copy_(torch.randint(-1, 2, w.shape).float())
    triples = torch.tensor([[0, 0, 1], [2, 1, 3], [4, 0, 5], [6, 1, 7], [8, 0, 0]])
    head_neg = torch.tensor([[1, 2, 3, 4], [0, 1, 5, 6], [0, 1, 2, 3], [5, 4, 3, 2], [1, 3, 5, 7]])
    tail_neg = torch.tensor([[0, 2, 3, 8], [4, 5, 6, 7], [1, 2, 3, 4], [0, 8, 2, 4], [2, 4, 6, 8]])
    metrics = OGBEvaluator("ogbl-wikikg2", batch_size=2).evaluate(
        model, triples, head_neg=head_neg, tail_neg=tail_neg
    )
    head = direct_ranks(model, triples, head_neg, "head")
    tail = direct_ranks(model, triples, tail_neg, "tail")
    assert metrics.ranks["head"].tolist() == head
    assert metrics.ranks["tail"].tolist() == tail
    ranks = head + tail
    assert any(r != int(r) for r in ranks), "the fixture should produce ties"
    assert metrics.mrr == pytest.approx(sum(1 / r for r in ranks) / len(ranks), rel=1e-6)
    assert metrics.hits[1] == pytest.approx(sum(r <= 1 for r in ranks) / len(ranks))
    assert metrics.num_queries == 10


def test_typed_split_and_errors():
    class TypedKG:  # the two attributes ogb_split_to_global uses
        node_types = ["disease", "drug"]
        type_ptr = torch.tensor([0, 3, 7])

    split = {
        "head": [0, 2],
        "relation": [1, 0],
        "tail": [3, 0],
        "head_type": ["disease", "drug"],
        "tail_type": ["drug", "disease"],
        "head_neg": [[1, 2], [0, 1]],
        "tail_neg": [[0, 1], [2, 1]],
    }
    triples, head_neg, tail_neg = ogb_split_to_global(split, TypedKG())
    assert triples.tolist() == [[0, 1, 6], [5, 0, 0]]
    assert head_neg.tolist() == [[1, 2], [3, 4]]
    assert tail_neg.tolist() == [[3, 4], [2, 1]]
    with pytest.raises(ValueError, match="needs kg"):
        ogb_split_to_global(split)
    with pytest.raises(ValueError, match="not MRR"):
        OGBEvaluator("ogbl-collab")
    model = build_kge_model("distmult", 9, 2, 3)
    with pytest.raises(ValueError, match=r"tail_neg must be \[2, K\]"):
        OGBEvaluator().evaluate(model, triples, tail_neg=tail_neg[:1])
