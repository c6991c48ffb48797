"""Baselines with no parameters for MetaQA: a uniformly random node at the question's hop distance.

For a ``k``-hop question, the hop rule picks uniformly among the nodes of the question's budgeted
subgraph whose shortest distance from the topic (within that subgraph) is exactly ``k``; its expected
hits@1 is ``|gold ∩ C| / |C|``. It reads the hop count from the question's file, which no model sees, so
it is a generous floor: what knowing "the answer is k edges away", and nothing about the relations, buys.

With question-aware pruning (``data.pruning: question``) the path rule narrows ``C`` to the nodes at
distance ``k`` whose best shortest path has the highest summed relation relevance: the retrieval step
answering on its own, with the hop count given. A model has to beat it to show it reads more than the
relation names.
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


def path_scores(
    edge_index: Tensor, edge_weight: Tensor, distance: list[int | None]
) -> list[float | None]:
    """The best summed ``edge_weight`` (``[E]``) of a shortest path from the source to each node
    (edges walked either way; ``distance`` from :func:`distances`); ``None`` where unreached."""
    best: list[float | None] = [0.0 if d == 0 else None for d in distance]
    layers = max((d for d in distance if d is not None), default=0)
    edges = list(zip(edge_index.t().tolist(), edge_weight.tolist()))
    for layer in range(1, layers + 1):
        for (a, b), w in edges:
            for u, v in ((a, b), (b, a)):
                if distance[v] == layer and distance[u] == layer - 1 and best[u] is not None:
                    if best[v] is None or best[u] + w > best[v]:
                        best[v] = best[u] + w
    return best


def hop_rule(task: Any, split: str, *, scored: bool = False) -> dict[str, Any]:
    """The rule's expected hits@1 on ``split`` of a set-up :class:`~gnnlm.tasks.metaqa.MetaQATask`
    (the same budgeted subgraphs as the models); ``scored`` for the path rule (questions without
    their own relation weights fall back to the hop rule).

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
        sub = sampler.sample([q.topic], relation_weight=q.relation_weight)  # topic: local node 0
        distance = distances(sub.edge_index, sub.num_nodes)
        ring_nodes = [v for v, d in enumerate(distance) if d == q.question.hops]
        if scored and q.relation_weight is not None and ring_nodes:
            best = path_scores(sub.edge_index, q.relation_weight[sub.edge_type], distance)
            top = max(best[v] for v in ring_nodes)
            ring_nodes = [v for v in ring_nodes if best[v] >= top - 1e-6]
        ring = {int(sub.n_id[v]) for v in ring_nodes}
        expected.append(len(q.answers & ring) / len(ring) if ring else 0.0)
    out: dict[str, Any] = {"hits@1": sum(expected) / max(len(expected), 1)}
    for k in task.config.data.hops:
        mine = [e for e, q in zip(expected, task.questions[split]) if q.question.hops == k]
        out[f"hits@1_{k}hop"] = sum(mine) / len(mine) if mine else None
    out["expected"] = expected
    return out


__all__ = ["distances", "hop_rule", "path_scores"]
