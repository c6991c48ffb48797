"""A baseline with no parameters for MetaQA: a uniformly random node at the question's hop distance.

For a ``k``-hop question, the rule picks uniformly among the nodes of the question's budgeted subgraph
whose shortest distance from the topic (within that subgraph) is exactly ``k``; its expected hits@1 is
``|gold ∩ C| / |C|``. It reads the hop count from the question's file, which no model sees, so it is a
generous floor: what knowing "the answer is k edges away", and nothing about the relations, buys.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


def distances(edge_index: Tensor, num_nodes: int, source: int = 0) -> list[int | None]:
    """Shortest distances (in edges, either direction) from local node ``source`` to every node of a
    graph with ``edge_index: [2, E]`` (local ids); ``None`` for a node it does not reach."""
    adjacency: list[list[int]] = [[] for _ in range(num_nodes)]
    for a, b in edge_index.t().tolist():
        adjacency[a].append(b)
        adjacency[b].append(a)
    distance: list[int | None] = [None] * num_nodes
    distance[source], frontier = 0, [source]
    while frontier:
        reached = []
        for v in frontier:
            for n in adjacency[v]:
                if distance[n] is None:
                    distance[n] = distance[v] + 1
                    reached.append(n)
        frontier = reached
    return distance


def hop_rule(task: Any, split: str) -> dict[str, Any]:
    """The rule's expected hits@1 on ``split`` of a set-up :class:`~gnnlm.tasks.metaqa.MetaQATask`
    (the same budgeted subgraphs as the models).

    Returns:
        ``{"hits@1", "hits@1_<k>hop", "expected": [per question, file order]}``; a question without
        its topic in the KB scores 0, as it does for every model.
    """
    sampler = task.collate.sampler
    expected = []
    for q in task.questions[split]:
        if q.topic is None:
            expected.append(0.0)
            continue
        sub = sampler.sample([q.topic])  # the topic is local node 0
        distance = distances(sub.edge_index, sub.num_nodes)
        ring = {int(sub.n_id[v]) for v, d in enumerate(distance) if d == q.question.hops}
        expected.append(len(q.answers & ring) / len(ring) if ring else 0.0)
    out: dict[str, Any] = {"hits@1": sum(expected) / max(len(expected), 1)}
    for k in task.config.data.hops:
        mine = [e for e, q in zip(expected, task.questions[split]) if q.question.hops == k]
        out[f"hits@1_{k}hop"] = sum(mine) / len(mine) if mine else None
    out["expected"] = expected
    return out


__all__ = ["distances", "hop_rule"]
