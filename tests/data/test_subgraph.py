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


def hub_graph():
    # seed 0 is a hub (100 neighbours 10..109, relation 0); seed 1 has 5 neighbours 200..204 (relation 1)
    hub = torch.stack([torch.zeros(100, dtype=torch.long), torch.arange(10, 110)])
    rare = torch.stack([torch.ones(5, dtype=torch.long), torch.arange(200, 205)])
    edge_index = torch.cat([hub, rare], 1)
    edge_type = torch.cat([torch.zeros(100), torch.ones(5)]).long()
    # relation 1 is the common one here by weight: give the hub's relation the higher IDF weight
    return Data(edge_index=edge_index, edge_type=edge_type, num_nodes=300, num_relations=2)


def test_each_seed_gets_its_share_of_the_budget():
    graph = hub_graph()
    weight = torch.tensor(
        [2.0, 1.0]
    )  # the hub's relation ranks first: a joint search takes only it
    joint = SubgraphSampler(
        graph, num_hops=1, max_nodes=12, relation_weight=weight, allocation="joint"
    )
    fair = SubgraphSampler(graph, num_hops=1, max_nodes=12, relation_weight=weight)
    starved = joint.node_set(torch.tensor([0, 1])).tolist()
    assert len(starved) == 12 and not set(starved) & set(range(200, 205))
    nodes = fair.node_set(torch.tensor([0, 1])).tolist()
    assert nodes[:2] == [0, 1] and len(nodes) == 12
    assert set(range(200, 205)) <= set(nodes)  # the rare seed's five neighbours, all of them
    assert len(set(nodes) & set(range(10, 110))) == 5  # the hub its share, and the unused one
    # a budget left over by a small neighbourhood goes to the others
    nodes = fair.node_set(torch.tensor([0, 1])).tolist()
    big = SubgraphSampler(graph, num_hops=1, max_nodes=30, relation_weight=weight).node_set(
        torch.tensor([0, 1])
    )
    assert len(big) == 30 and len(set(big.tolist()) & set(range(10, 110))) == 23


@pytest.mark.parametrize(
    ("demands", "budget", "expected"),
    [([100, 5], 10, [5, 5]), ([100, 2], 10, [8, 2]), ([3, 3, 3], 10, [3, 3, 3]),
     ([10, 10, 10], 10, [4, 3, 3]), ([0, 7], 4, [0, 4]), ([], 5, [])],
)  # fmt: skip
def test_water_fill(demands, budget, expected):
    from gnnlm.data.subgraph import water_fill

    assert water_fill(demands, budget) == expected


def distances(graph, seeds, hops):
    """Brute force: hop distance of every node within ``hops`` (PyG's k_hop_subgraph per radius)."""
    out = {}
    for k in range(hops, -1, -1):
        subset, _, _, _ = k_hop_subgraph(
            torch.tensor(seeds),
            k,
            graph.edge_index,
            num_nodes=graph.num_nodes,
            flow="target_to_source",
        )
        out.update({int(v): k for v in subset})
    return out


@pytest.mark.parametrize("length", [1, 2, 3])
def test_path_nodes_are_exactly_the_nodes_on_short_paths(length):
    graph = random_graph(seed=3, n=400, e=700)
    sampler = SubgraphSampler(graph, num_hops=length, max_nodes=10**9, inverse_offset=4)
    for sources, targets in (([5], [17]), ([1, 2], [300]), ([7], [7, 8])):
        nodes, num_seeds = sampler.path_node_set(torch.tensor(sources), torch.tensor(targets))
        ds, dt = distances(graph, sources, length), distances(graph, targets, length)
        expected = {v for v in ds if v in dt and ds[v] + dt[v] <= length}
        seeds = list(dict.fromkeys(sources + targets))
        assert nodes[:num_seeds].tolist() == seeds and num_seeds == len(seeds)
        assert set(nodes.tolist()) == expected | set(seeds)
        assert len(set(nodes.tolist())) == len(nodes)


def test_path_nodes_are_ranked_by_relevance_within_the_budget():
    graph = random_graph(seed=3, e=4000)
    full = SubgraphSampler(graph, num_hops=3, max_nodes=10**9)
    every, k = full.path_node_set(torch.tensor([1, 2]), torch.tensor([250]))
    assert len(every) > k + 20
    relevance = torch.rand(300, generator=torch.Generator().manual_seed(0))
    small = SubgraphSampler(graph, num_hops=3, max_nodes=k + 4)
    data = small.sample_paths([1, 2], [250], relevance=relevance)
    kept = data.n_id[k:]
    best = every[k:][torch.argsort(-relevance[every[k:]])][:4]
    assert sorted(kept.tolist()) == sorted(best.tolist())
    assert data.num_seeds == k == 3 and data.num_nodes == k + 4
    assert data.edge_index.max() < data.num_nodes


def reference_path_scored(graph, seed, weight, hops, max_nodes, rank):
    """Brute force: every node's hop distance from ``seed`` and its best path score (the summed
    weights of the edges of the best path of that length) over all paths, then hop by hop, best
    score first, the sampler's random rank on ties, until the budget is spent."""
    adjacency = {}
    for (a, b), t in zip(graph.edge_index.t().tolist(), graph.edge_type.tolist()):
        adjacency.setdefault(a, []).append((b, float(weight[t])))
    kept, score, frontier = [seed], {seed: 0.0}, [seed]
    for _ in range(hops):
        best = {}
        for u in frontier:
            for v, w in adjacency.get(u, []):
                if v not in score and w > float("-inf"):
                    best[v] = max(best.get(v, float("-inf")), score[u] + w)
        order = sorted(best, key=lambda v: (-best[v], int(rank[v])))[: max_nodes - len(kept)]
        for v in order:
            score[v] = best[v]
        kept += order
        frontier = order
    return kept


@pytest.mark.parametrize("max_nodes", [6, 20, 60])
def test_path_scores_equal_a_brute_force_reference(max_nodes):
    graph = random_graph(seed=3, n=120, e=300, r=4)
    g = torch.Generator().manual_seed(1)
    sampler = SubgraphSampler(graph, num_hops=3, max_nodes=max_nodes, path_scores=True)
    for seed in (0, 17, 64):
        weight = torch.log_softmax(torch.randn(8, generator=g) * 3, 0)
        ours = sampler.node_set(torch.tensor([seed]), relation_weight=weight).tolist()
        ref = reference_path_scored(graph, seed, weight, 3, max_nodes, sampler.rank)
        assert ours[0] == seed and len(ours) == len(ref)
        assert set(ours) == set(ref)  # (a hop under its budget keeps its nodes in id order)


def test_path_scores_follow_the_question_and_per_call_weights_leave_the_sampler_alone():
    # 0 -written-> 1, 0 -starred-> 2; film 1 -genre-> 3, film 2 -genre-> 4, film 2 -year-> 5
    edge_index = torch.tensor([[0, 0, 1, 2, 2], [1, 2, 3, 4, 5]])
    edge_type = torch.tensor([0, 1, 2, 2, 3])  # written, starred, genre, year
    graph = Data(edge_index=edge_index, edge_type=edge_type, num_nodes=6, num_relations=4)
    question = torch.log(torch.tensor([0.45, 0.05, 0.45, 0.05]))  # "genres of films written by 0"
    path = SubgraphSampler(graph, num_hops=2, max_nodes=4, path_scores=True)
    # hop 1 keeps both films (the budget allows); hop 2 keeps film 1's genre over film 2's
    assert path.node_set(torch.tensor([0]), question).tolist() == [0, 1, 2, 3]
    last_edge = SubgraphSampler(graph, num_hops=2, max_nodes=4)
    # ranked by the last edge alone, both genres tie and the random rank decides
    tied = last_edge.node_set(torch.tensor([0]), question).tolist()
    assert tied[:3] == [0, 1, 2] and tied[3] in (3, 4)
    # all-zero weights: path scores change nothing
    zeros = torch.zeros(4)
    for budget in (2, 3, 4, 6):
        a = SubgraphSampler(graph, num_hops=2, max_nodes=budget, path_scores=True)
        b = SubgraphSampler(graph, num_hops=2, max_nodes=budget)
        assert (
            a.node_set(torch.tensor([0]), zeros).tolist()
            == b.node_set(torch.tensor([0]), zeros).tolist()
        )
    # the call's weights are not kept
    assert torch.equal(path.relation_weight, SubgraphSampler(graph).relation_weight)
    with pytest.raises(ValueError, match=r"relation_weight must have shape \[4\]"):
        path.node_set(torch.tensor([0]), torch.zeros(3))
