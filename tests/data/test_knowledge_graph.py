from __future__ import annotations

import torch

from gnnlm.data import FilterIndex, KnowledgeGraph, Vocabulary


def typed_kg() -> KnowledgeGraph:
    # 2 drugs (global 0, 1), 3 proteins (global 2, 3, 4)
    entities = Vocabulary(["drug/0", "drug/1", "protein/0", "protein/1", "protein/2"])
    relations = Vocabulary(["targets", "interacts"])
    train = torch.tensor([[0, 0, 2], [1, 0, 4], [2, 1, 3], [3, 1, 4], [0, 0, 3]])
    test = torch.tensor([[1, 0, 3]])
    return KnowledgeGraph(
        entities,
        relations,
        {"train": train, "test": test},
        name="typed",
        node_types=["drug", "protein"],
        entity_type=torch.tensor([0, 0, 1, 1, 1]),
    )


def test_homogeneous_view_matches_triples():
    kg = typed_kg()
    data = kg.homogeneous()
    assert data.num_nodes == 5 and data.num_relations == 2
    rebuilt = torch.stack([data.edge_index[0], data.edge_type, data.edge_index[1]], 1)
    assert torch.equal(rebuilt, kg.train)


def test_homogeneous_view_with_inverse_edges():
    kg = typed_kg()
    data = kg.homogeneous(add_inverse=True)
    assert data.num_relations == 4
    expected = {tuple(t) for t in kg.train.tolist()}
    expected |= {(t, r + 2, h) for h, r, t in kg.train.tolist()}
    got = set(
        zip(data.edge_index[0].tolist(), data.edge_type.tolist(), data.edge_index[1].tolist())
    )
    assert got == expected and data.edge_index.shape[1] == 2 * len(kg.train)


def test_hetero_view_keeps_per_type_ids():
    kg = typed_kg()
    data = kg.to_hetero_data()
    assert data["drug"].num_nodes == 2 and data["protein"].num_nodes == 3
    assert torch.equal(data["protein"].global_id, torch.tensor([2, 3, 4]))
    targets = data["drug", "targets", "protein"].edge_index
    # local ids per type: (drug 0 -> protein 0), (drug 1 -> protein 2), (drug 0 -> protein 1)
    assert targets.tolist() == [[0, 1, 0], [0, 2, 1]]
    assert data["protein", "interacts", "protein"].edge_index.tolist() == [[0, 1], [1, 2]]
    # every edge maps back to the original global triple
    back = set()
    for (src, rel, dst), store in data.edge_items():
        h = kg.global_id(src, store.edge_index[0])
        t = kg.global_id(dst, store.edge_index[1])
        back |= {(a, kg.relations.id(rel), b) for a, b in zip(h.tolist(), t.tolist())}
    assert back == {tuple(t) for t in kg.train.tolist()}
    assert torch.equal(kg.local_id(torch.tensor([0, 1, 2, 4])), torch.tensor([0, 1, 0, 2]))


def test_filter_index_matches_brute_force_and_is_built_once():
    kg = typed_kg()
    index = kg.filter_index
    assert kg.filter_index is index
    all_triples = torch.cat([kg.train, kg.test]).tolist()
    heads = torch.tensor([0, 1, 3, 2])
    rels = torch.tensor([0, 0, 1, 0])
    ptr, values = index.tails(heads, rels)
    for i, (h, r) in enumerate(zip(heads.tolist(), rels.tolist())):
        expected = sorted({t for hh, rr, t in all_triples if (hh, rr) == (h, r)})
        assert values[ptr[i] : ptr[i + 1]].tolist() == expected
    ptr, values = index.heads(torch.tensor([0, 1]), torch.tensor([3, 4]))
    assert values[ptr[0] : ptr[1]].tolist() == [0, 1] and values[ptr[1] : ptr[2]].tolist() == [3]
    assert isinstance(index, FilterIndex)


def test_statistics_and_repr():
    kg = typed_kg()
    assert kg.statistics() == {
        "num_entities": 5,
        "num_relations": 2,
        "num_train": 5,
        "num_valid": 0,
        "num_test": 1,
    }
    assert "node_types=['drug', 'protein']" in repr(kg)


def test_relation_label_is_the_text_when_known_else_the_identifier():
    kg = typed_kg()
    assert [kg.relation_label(r) for r in range(2)] == ["targets", "interacts"]
    named = KnowledgeGraph(
        kg.entities, kg.relations, kg.splits, name="named", relation_text=["binds to", None]
    )
    assert [named.relation_label(r) for r in range(2)] == ["binds to", "interacts"]
