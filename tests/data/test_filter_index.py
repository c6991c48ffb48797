from __future__ import annotations

import torch

from gnnlm.data import FilterIndex
from gnnlm.data.filter_index import _CSR


def brute_force(triples, side, a, b):
    if side == "tails":
        return sorted({t for h, r, t in triples if (h, r) == (a, b)})
    return sorted({h for h, r, t in triples if (r, t) == (a, b)})


def test_random_graph_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    num_entities, num_relations = 30, 4
    triples = torch.stack(
        [
            torch.randint(num_entities, (400,), generator=gen),
            torch.randint(num_relations, (400,), generator=gen),
            torch.randint(num_entities, (400,), generator=gen),
        ],
        1,
    )  # [400, 3] with repeats
    index = FilterIndex(triples, num_entities, num_relations)
    rows = [tuple(t) for t in triples.tolist()]
    assert index.num_triples == len(set(rows))
    h = torch.randint(num_entities, (64,), generator=gen)
    r = torch.randint(num_relations, (64,), generator=gen)
    ptr, values = index.tails(h, r)
    for i in range(64):
        assert values[ptr[i] : ptr[i + 1]].tolist() == brute_force(
            rows, "tails", int(h[i]), int(r[i])
        )
    ptr, values = index.heads(r, h)
    for i in range(64):
        assert values[ptr[i] : ptr[i + 1]].tolist() == brute_force(
            rows, "heads", int(r[i]), int(h[i])
        )


def test_huge_keys_take_the_pairwise_path_with_the_same_result():
    keys = torch.tensor([2**61, 5, 2**61, 5, 7])
    values = torch.tensor([3, 9, 1, 9, 0])
    csr = _CSR(keys, values)
    assert csr.keys.tolist() == [5, 7, 2**61]
    assert csr.ptr.tolist() == [0, 1, 2, 4] and csr.values.tolist() == [9, 0, 1, 3]


def test_empty_index():
    index = FilterIndex(torch.empty(0, 3, dtype=torch.long), 3, 2)
    ptr, values = index.tails(torch.tensor([0, 1]), torch.tensor([1, 0]))
    assert ptr.tolist() == [0, 0, 0] and values.numel() == 0
