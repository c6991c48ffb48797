"""Subgraph sampling: equal to PyG's k_hop_subgraph without a budget; budget, pruning and exclusion."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import k_hop_subgraph, subgraph

from gnnlm.data import SubgraphSampler


def random_graph(seed=0, n=300, e=1200, r=4):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, e), generator=g)
    edge_type = torch.randint(0, r, (e,), generator=g)
    both = torch.cat([edge_index, edge_index.flip(0)], 1)
    types = torch.cat([edge_type, edge_type + r])
    return Data(edge_index=both, edge_type=types, num_nodes=n, num_relations=2 * r)


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
def test_unbudgeted_nodes_and_edges_equal_pyg(hops):
    graph = random_graph()
    sampler = SubgraphSampler(graph, num_hops=hops, max_nodes=10**9, inverse_offset=4)
    for seeds in ([5], [7, 99, 7], [1, 2, 3, 250]):
        data = sampler.sample(torch.tensor(seeds))
        subset, _, _, _ = k_hop_subgraph(torch.tensor(seeds), hops, graph.edge_index, num_nodes=300)
        assert sorted(data.n_id.tolist()) == sorted(subset.tolist())
        assert data.n_id[: data.num_seeds].tolist() == list(dict.fromkeys(seeds))  # seeds first
        ref_edges, ref_types = subgraph(data.n_id, graph.edge_index, graph.edge_type, num_nodes=300)
        ours = torch.cat([data.n_id[data.edge_index], data.edge_type[None]])
        ref = torch.cat([ref_edges, ref_types[None]])
        assert sorted(map(tuple, ours.t().tolist())) == sorted(map(tuple, ref.t().tolist()))


def test_budget_keeps_seeds_and_prefers_rare_relations():
    # Node 0 reaches 1..5 by the common relation 0 and node 6 by the rare relation 1.
    edge_index = torch.tensor([[0, 0, 0, 0, 0, 0, 7, 8, 9], [1, 2, 3, 4, 5, 6, 1, 2, 3]])
    edge_type = torch.tensor([0, 0, 0, 0, 0, 1, 0, 0, 0])
    graph = Data(edge_index=edge_index, edge_type=edge_type, num_nodes=10, num_relations=2)
    data = SubgraphSampler(graph, num_hops=2, max_nodes=2).sample([0])
    assert data.n_id.tolist() == [0, 6]
    data = SubgraphSampler(graph, num_hops=2, max_nodes=1).sample([0, 9])  # seeds beat the budget
    assert data.n_id.tolist() == [0, 9]
    never = SubgraphSampler(
        graph, num_hops=1, max_nodes=10, relation_weight=torch.tensor([1.0, float("-inf")])
    )
    assert 6 not in never.sample([0]).n_id.tolist()


def test_exclude_removes_the_triple_in_both_directions():
    edge_index = torch.tensor([[0, 1, 0], [1, 0, 2]])
    edge_type = torch.tensor([0, 1, 0])  # relation 0 and its inverse 1; an extra (0, 0, 2)
    graph = Data(edge_index=edge_index, edge_type=edge_type, num_nodes=3, num_relations=2)
    sampler = SubgraphSampler(graph, num_hops=1, max_nodes=5, inverse_offset=1)
    data = sampler.sample([0, 1], exclude=torch.tensor([[0, 0, 1]]))
    edges = data.n_id[data.edge_index].t().tolist()
    assert edges == [[0, 2]]


def test_bad_seed_is_named():
    sampler = SubgraphSampler(random_graph(), num_hops=1)
    with pytest.raises(ValueError, match=r"seed entity id out of range \[0, 300\): \[3, 300\]"):
        sampler.sample([3, 300])
    with pytest.raises(ValueError, match="relation_weight must have shape"):
        SubgraphSampler(random_graph(), relation_weight=torch.ones(3))


def test_empty_seed_list_gives_an_empty_graph():
    data = SubgraphSampler(random_graph(), num_hops=2).sample([])
    assert data.num_nodes == 0 and data.edge_index.shape == (2, 0)
