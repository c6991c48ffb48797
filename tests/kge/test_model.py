"""Embedding tables, build_kge_model, reciprocal routing, constraints and regularisation factors."""

from __future__ import annotations

import math

import pytest
import torch

from gnnlm.kge import (
    EmbeddingRepresentation,
    LinkPredictionModel,
    TransE,
    TuckER,
    build_kge_model,
)

NAMES = ["transe", "distmult", "complex", "rotate", "tucker", "conve"]
DIM = {"conve": 12}  # ConvE needs an image at least as large as its kernel
DIMS = {
    "transe": (8, 8),
    "distmult": (8, 8),
    "complex": (16, 16),
    "rotate": (16, 8),
    "tucker": (8, 8),
    "conve": (13, 12),  # entities carry a bias column
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reciprocal", [False, True])
def test_build_shapes_and_one_to_n(name, reciprocal):
    torch.manual_seed(0)
    model = build_kge_model(name, 6, 3, DIM.get(name, 8), reciprocal=reciprocal).eval()
    ent, rel = model.representations()
    assert ent.shape == (6, DIMS[name][0])
    assert rel.shape == (6 if reciprocal else 3, DIMS[name][1])
    assert model.num_relations == 3 and model.num_entities == 6
    hr = torch.tensor([[0, 1], [5, 2]])
    rt = torch.tensor([[2, 3], [0, 0]])
    with torch.no_grad():
        s_t, s_h = model.score_t(hr), model.score_h(rt)
        every = torch.arange(6)
        ref_t = torch.stack(
            [model.score_hrt(torch.stack([h.expand(6), r.expand(6), every], 1)) for h, r in hr]
        )
        if reciprocal:  # (?, r, t) is answered as (t, r + R, ?)
            rows = [torch.stack([tt.expand(6), (r + 3).expand(6), every], 1) for r, tt in rt]
        else:
            rows = [torch.stack([every, r.expand(6), tt.expand(6)], 1) for r, tt in rt]
        ref_h = torch.stack([model.score_hrt(x) for x in rows])
    torch.testing.assert_close(s_t, ref_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s_h, ref_h, rtol=1e-5, atol=1e-5)


def test_reciprocal_score_h_uses_inverse_relations():
    model = build_kge_model("distmult", 5, 2, 4, reciprocal=True)
    with torch.no_grad():
        model.representation.relation.weight[2:].zero_()  # inverse relations score 0
    rt = torch.tensor([[1, 3]])
    assert torch.equal(model.score_h(rt), torch.zeros(1, 5))
    assert not torch.equal(model.score_t(torch.tensor([[3, 1]])), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="2 \\* num_relations"):
        LinkPredictionModel(EmbeddingRepresentation(5, 3, 4), model.interaction, reciprocal=True)


def test_initialisation_follows_the_papers():
    torch.manual_seed(0)
    rotate = build_kge_model("rotate", 50, 4, 10, interaction_kwargs={"init_margin": 9.0})
    phases = rotate.representation.relation.weight
    assert phases.min() >= -math.pi and phases.max() <= math.pi and phases.abs().max() > 2.5
    assert rotate.representation.entity.weight.abs().max() <= 11.0 / 10
    transe = build_kge_model("transe", 50, 4, 10)
    norms = transe.representation.entity.weight.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(50))  # unit-norm entities after init
    torch.testing.assert_close(transe.representation.relation.weight.norm(dim=1), torch.ones(4))


def test_post_step_reapplies_the_transe_constraint():
    model = build_kge_model("transe", 7, 2, 5)
    with torch.no_grad():
        model.representation.entity.weight.mul_(3.0)
    model.post_step()
    torch.testing.assert_close(model.representation.entity.weight.norm(dim=1), torch.ones(7))
    unconstrained = build_kge_model(
        "transe", 7, 2, 5, interaction_kwargs={"normalize_entities": False}
    )
    with torch.no_grad():
        unconstrained.representation.entity.weight.mul_(3.0)
    unconstrained.post_step()
    assert unconstrained.representation.entity.weight.norm(dim=1).min() > 1.5


def test_regularization_factors():
    model = build_kge_model("complex", 4, 2, 3)
    ent, rel = model.representations()
    factors = model.regularization_factors(
        entities=torch.tensor([0, 0, 3]), relations=torch.tensor([1])
    )
    assert [f.shape for f in factors] == [(3, 3), (1, 3)]
    expected = torch.sqrt(ent[3, :3] ** 2 + ent[3, 3:] ** 2)
    torch.testing.assert_close(factors[0][2], expected)
    # Gradients flow to the embedding table.
    sum(f.pow(3).sum() for f in factors).backward()
    assert model.representation.entity.weight.grad[3].abs().sum() > 0
    rotate = build_kge_model("rotate", 4, 2, 3)
    assert (
        len(rotate.regularization_factors(entities=torch.tensor([1]), relations=torch.tensor([0])))
        == 1
    )


def test_tucker_relation_dim_and_explicit_representation():
    model = build_kge_model("tucker", 9, 2, 6, interaction_kwargs={"relation_dim": 3})
    assert isinstance(model.interaction, TuckER)
    assert model.representation.relation.weight.shape == (2, 3)
    assert model.representation.entity.weight.shape == (9, 6)
    rep = EmbeddingRepresentation(9, 4, 6)
    model = build_kge_model(TransE(p=2), 9, 2, 6, reciprocal=True, representation=rep)
    assert model.representation is rep and model.reciprocal
    with pytest.raises(ValueError, match="expected 9 and 2"):
        build_kge_model("transe", 9, 2, 6, representation=rep)
    with pytest.raises(ValueError, match="interaction_kwargs"):
        build_kge_model(TransE(), 9, 2, 6, interaction_kwargs={"p": 2})


def test_repr():
    text = repr(build_kge_model("complex", 3, 2, 4, reciprocal=True))
    assert "reciprocal=True" in text and "num_relations=4" in text and "entity_dim=8" in text


def test_embedding_representation_reset_parameters():
    rep = EmbeddingRepresentation(
        5, 2, 3, entity_dim_factor=2, entity_constrainer=TransE().constrain_entity_
    )
    assert rep.entity.weight.shape == (5, 6) and rep.relation.weight.shape == (2, 3)
    with torch.no_grad():
        rep.entity.weight.zero_()
        rep.relation.weight.zero_()
    rep.reset_parameters()
    assert rep.relation.weight.abs().sum() > 0
    torch.testing.assert_close(rep.entity.weight.norm(dim=1), torch.ones(5))  # constrained
    assert "entity_dim=6" in repr(rep)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sparse", [False, True])
def test_score_pairs_of_gathered_pairs_equals_score_hrt(name, sparse):
    """The sLCWA scoring path (one [2B] gather, heads and tails as a [2, B, d] block, the
    interaction's ``score_pairs`` where it has one) scores as ``score_hrt`` does, from the tables'
    rows or from precomputed ``reps``; interactions without ``score_pairs`` (TuckER, ConvE) take
    ``forward`` on the unbound block, bit for bit."""
    torch.manual_seed(0)
    model = build_kge_model(name, 11, 3, DIM.get(name, 8))
    model.eval()  # ConvE's dropout
    triples = torch.tensor([[0, 1, 5], [3, 0, 3], [10, 2, 7], [4, 1, 0]])
    expected = model.score_hrt(triples)
    reps = None if sparse else model.representations()
    pairs, rel = model.gather_pairs(triples, reps, sparse=sparse)
    assert pairs.shape == (2, 4, DIMS[name][0]) and rel.shape == (4, DIMS[name][1])
    scores = model.score_pairs(pairs, rel)
    if hasattr(model.interaction, "score_pairs"):
        torch.testing.assert_close(scores, expected)
    else:
        assert torch.equal(scores, expected)
    scores.sum().backward()  # gradients reach the tables (sparse: row-sparse)
    grad = model.representation.entity.weight.grad
    assert grad.is_sparse == sparse
    touched = torch.zeros(11, dtype=torch.bool)
    touched[triples[:, [0, 2]].flatten()] = True
    assert (grad.to_dense()[~touched] == 0).all() and (grad.to_dense()[touched] != 0).any()
