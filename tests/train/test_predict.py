from __future__ import annotations

import pytest
import torch

from gnnlm.kge import build_kge_model
from gnnlm.train.predict import predict_heads, predict_tails


@pytest.fixture(scope="module")
def trained(load_real):
    kg = load_real("nations")
    torch.manual_seed(0)
    return kg, build_kge_model("distmult", kg.num_entities, kg.num_relations, 8).eval()


def test_predict_tails_matches_manual_ranking(trained):
    kg, model = trained
    head, relation = kg.train[0, 0].item(), kg.train[0, 1].item()
    pred = predict_tails(model, kg, kg.entities.name(head), kg.relations.name(relation), k=4)
    with torch.no_grad():
        scores = model.score_t(torch.tensor([[head, relation]]))[0]
    known = {t for h, r, t in kg.train.tolist() if h == head and r == relation}
    assert set(pred.excluded.tolist()) == known and known
    expected = [i for i in scores.argsort(descending=True).tolist() if i not in known][:4]
    assert pred.ids.tolist() == expected
    assert torch.equal(pred.scores, scores[expected])
    assert pred.names == [kg.entities.name(i) for i in expected]
    assert pred.exclude == "train"


def test_predict_heads_and_no_exclusion(trained):
    kg, model = trained
    relation, tail = kg.train[5, 1].item(), kg.train[5, 2].item()
    pred = predict_heads(
        model,
        kg,
        kg.relations.name(relation),
        kg.entities.name(tail),
        k=kg.num_entities,
        exclude=None,
    )
    with torch.no_grad():
        scores = model.score_h(torch.tensor([[relation, tail]]))[0]
    assert pred.ids.tolist() == scores.argsort(descending=True).tolist()
    assert len(pred.excluded) == 0
    every_split = predict_heads(
        model, kg, kg.relations.name(relation), kg.entities.name(tail), exclude="all"
    )
    known = {
        h
        for h, r, t in torch.cat([kg.train, kg.valid, kg.test]).tolist()
        if r == relation and t == tail
    }
    assert set(every_split.excluded.tolist()) == known
    assert not known & set(every_split.ids.tolist())


def test_unknown_names_are_clear_errors(trained):
    kg, model = trained
    name = kg.entities.name(0)
    with pytest.raises(
        KeyError, match=rf"unknown entity '{name}x' in nations \(did you mean '{name}'"
    ):
        predict_tails(model, kg, name + "x", kg.relations.name(0))
    with pytest.raises(KeyError, match="unknown relation 'nope'"):
        predict_tails(model, kg, name, "nope")
