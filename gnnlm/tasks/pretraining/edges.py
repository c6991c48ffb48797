"""DRAGON's link-prediction inputs: edges held out of a batch's subgraphs, and their corruptions.

The subgraphs come from an inverse-augmented graph (``kg.homogeneous(add_inverse=True)``): a triple
``(h, r, t)`` is there as two edges, ``h -r-> t`` and ``t -(r + R)-> h``. Both are held out together
(else the GNN would read the held-out triple off its inverse), and the triple is scored in its forward
direction.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch_geometric.data import Batch


def canonical_triples(edge_index: Tensor, edge_type: Tensor, num_relations: int) -> Tensor:
    """``[E, 3]`` the forward triple ``(h, r, t)`` (``r < num_relations``) of each edge: an inverse
    edge ``t -(r + R)-> h`` maps to ``(h, r, t)``."""
    src, dst = edge_index
    inverse = edge_type >= num_relations
    head = torch.where(inverse, dst, src)
    tail = torch.where(inverse, src, dst)
    relation = torch.where(inverse, edge_type - num_relations, edge_type)
    return torch.stack([head, relation, tail], 1)


def drop_edges(
    graph: Batch, num_relations: int, rate: float, generator: torch.Generator
) -> tuple[Batch, Tensor]:
    """Hold out a share ``rate`` of the triples of ``graph`` (each with its inverse edge).

    Args:
        graph: the batched subgraphs (``edge_index: [2, E]`` batched node ids, ``edge_type: [E]``).
        num_relations: ``R``, the number of forward relations (inverse ones are ``R..2R-1``).
        rate: the chance of each triple to be held out (one draw per triple, in sorted-key order).
        generator: the source of the draws.

    Returns:
        ``(kept, held_out)``: a shallow copy of ``graph`` without the held-out edges, and ``[k, 3]``
        the held-out forward triples ``(h, r, t)`` in batched node ids.
    """
    triples = canonical_triples(graph.edge_index, graph.edge_type, num_relations)  # [E, 3]
    unique, inverse = torch.unique(triples, dim=0, return_inverse=True)  # [T, 3], [E]
    held = torch.rand(len(unique), generator=generator) < rate  # [T]
    keep = ~held[inverse]  # [E]
    kept = copy.copy(graph)  # PyG stores are shared: set new tensors, never write in place
    kept.edge_index = graph.edge_index[:, keep]
    kept.edge_type = graph.edge_type[keep]
    return kept, unique[held]


def corrupt_in_subgraph(
    triples: Tensor, graph: Batch, num_negatives: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Corruptions of ``triples``: the head or the tail (a fair coin each) replaced by another node of
    the same subgraph (uniformly; the node itself only when the subgraph has one node).

    Args:
        triples: ``[k, 3]`` ``(h, r, t)`` in batched node ids.
        graph: the batch the ids point into (``batch: [N]``, ``ptr: [B + 1]``).
        num_negatives: ``n`` corruptions per triple.
        generator: the source of the draws.

    Returns:
        ``(negatives [k, n, 3], head_corrupted [k, n] bool)``.
    """
    k = len(triples)
    head_side = torch.rand(k, num_negatives, generator=generator) < 0.5  # [k, n]
    u = torch.rand(k, num_negatives, generator=generator)  # [k, n]
    replaced = torch.where(head_side, triples[:, None, 0], triples[:, None, 2])  # [k, n]
    example = graph.batch[triples[:, 0]]  # [k]
    start = graph.ptr[example][:, None]  # [k, 1]
    size = (graph.ptr[example + 1] - graph.ptr[example])[:, None]  # [k, 1]
    # draw among the other size - 1 nodes and skip the replaced one: never the triple itself
    other = (size - 1).clamp_min(1)
    pick = (u * other).long().clamp_max(other - 1)  # [k, n] in [0, size - 1)
    local = replaced - start
    pick = torch.where((size > 1) & (pick >= local), pick + 1, pick)
    pick = torch.where(size > 1, pick, local)
    node = start + pick  # [k, n]
    negatives = triples[:, None, :].repeat(1, num_negatives, 1)
    negatives[..., 0] = torch.where(head_side, node, negatives[..., 0])
    negatives[..., 2] = torch.where(head_side, negatives[..., 2], node)
    return negatives, head_side


__all__ = ["canonical_triples", "corrupt_in_subgraph", "drop_edges"]
