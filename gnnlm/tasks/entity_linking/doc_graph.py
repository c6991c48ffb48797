"""The subgraph of one document's candidates in the KB: the coherence graph the re-ranker reads.

The entities of one text are near each other in the KG (Kore50's ``Steve`` next to ``Apple`` and
``Stanford`` is Steve Jobs). The graph of a document has

* a node per candidate of every mention of the document (the seeds, in mention order), so a candidate
  of one mention sees the candidates of the others;
* up to ``max_bridges`` *bridge* nodes: non-candidate entities adjacent to candidates of at least two
  different mentions, most such mentions first (two candidates two hops apart meet at a bridge).
  Candidates with more than ``hub_degree`` neighbours are not expanded (``United States`` is next to
  everything; its neighbours say nothing about coherence);
* every KB edge between these nodes, typed (relations and their inverses).

Each node carries its role (candidate or bridge) and, for candidates, the element-wise maximum of its
candidate features over the mentions that propose it (how plausible a link it is before any LM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gnnlm.tasks.entity_linking.candidates import NUM_FEATURES, Candidate
from gnnlm.tasks.entity_linking.kb import KnowledgeBase


@dataclass
class DocumentGraph:
    """The subgraph of one document.

    Attributes:
        n_id: ``[N]`` KB entity ids (candidates first, then bridges).
        edge_index: ``[2, E]`` local node indices.
        edge_type: ``[E]`` relation ids (with inverses).
        role: ``[N]`` 0 for candidates, 1 for bridges.
        features: ``[N, NUM_FEATURES]`` the candidates' best features (zero for bridges).
    """

    n_id: Tensor
    edge_index: Tensor
    edge_type: Tensor
    role: Tensor
    features: Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.n_id.numel())


def document_graph(
    kb: KnowledgeBase,
    candidates: list[list[Candidate]],
    *,
    max_bridges: int = 32,
    hub_degree: int = 500,
) -> DocumentGraph:
    """The graph of a document whose mentions have ``candidates`` (module docstring)."""
    best: dict[int, list[float]] = {}
    for cands in candidates:
        for c in cands:
            f = c.features()
            best[c.entity] = [max(a, b) for a, b in zip(best.get(c.entity, f), f)]
    seeds = list(best)
    bridges = _bridges(kb, candidates, seeds, max_bridges, hub_degree)
    n_id = torch.tensor(seeds + bridges, dtype=torch.long)  # [N]
    edge_index, edge_type = _induced_edges(kb, n_id.numpy())
    role = torch.cat([torch.zeros(len(seeds)), torch.ones(len(bridges))]).long()  # [N]
    features = torch.zeros(n_id.numel(), NUM_FEATURES)
    if seeds:
        features[: len(seeds)] = torch.tensor([best[e] for e in seeds])
    return DocumentGraph(n_id, edge_index, edge_type, role, features)


def _bridges(
    kb: KnowledgeBase,
    candidates: list[list[Candidate]],
    seeds: list[int],
    max_bridges: int,
    hub_degree: int,
) -> list[int]:
    """Non-seed entities adjacent to candidates of >= 2 mentions, most mentions first (ties: lower
    id), at most ``max_bridges``: one sparse product ``[mentions, n] @ [n, n]``."""
    if max_bridges == 0 or len(candidates) < 2:
        return []
    import scipy.sparse as sp

    adjacency = _hubless_adjacency(kb, hub_degree)
    rows = [i for i, cands in enumerate(candidates) for _ in cands]
    cols = [c.entity for cands in candidates for c in cands]
    proposed = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(candidates), kb.num_entities),
    )  # [mentions, n]
    near = (proposed @ adjacency) > 0  # [mentions, n] entities next to a mention's candidates
    count = np.asarray(near.sum(0)).ravel()  # [n] mentions each entity is next to
    count[seeds] = 0
    found = np.flatnonzero(count >= 2)
    order = np.lexsort((found, -count[found]))  # most mentions first, then by id
    return found[order][:max_bridges].tolist()


def _induced_edges(kb: KnowledgeBase, nodes: np.ndarray) -> tuple[Tensor, Tensor]:
    """``(edge_index [2, E] local, edge_type [E])``: the KB edges among ``nodes``, read from the
    edges of each node's row of a source-sorted edge list (memoised on the KB), not a scan of all
    edges."""
    memo = kb.__dict__.setdefault("_by_source", {})
    if not memo:
        src = kb.edge_index[0].numpy()
        memo["order"] = np.argsort(src, kind="stable")
        memo["indptr"] = np.concatenate(
            [[0], np.cumsum(np.bincount(src, minlength=kb.num_entities))]
        )
        memo["dst"] = kb.edge_index[1].numpy()
        memo["type"] = kb.edge_type.numpy()
    order, indptr = memo["order"], memo["indptr"]
    lookup = np.full(kb.num_entities, -1, dtype=np.int64)
    lookup[nodes] = np.arange(len(nodes))
    edges = np.concatenate([order[indptr[v] : indptr[v + 1]] for v in nodes] or [np.zeros(0, int)])
    dst = lookup[memo["dst"][edges]]
    keep = dst >= 0
    edges = edges[keep]
    src = lookup[kb.edge_index[0].numpy()[edges]]
    edge_index = torch.as_tensor(np.stack([src, dst[keep]]), dtype=torch.long)  # [2, E]
    return edge_index, torch.as_tensor(memo["type"][edges], dtype=torch.long)


def _hubless_adjacency(kb: KnowledgeBase, hub_degree: int):
    """``[n, n]`` 0/1 adjacency (scipy CSR) without the rows of entities of more than
    ``hub_degree`` neighbours (memoised on the KB)."""
    memo = kb.__dict__.setdefault("_hubless", {})
    if hub_degree not in memo:
        import scipy.sparse as sp

        n = kb.num_entities
        src, dst = kb.edge_index.numpy()
        matrix = sp.csr_matrix((np.ones(len(src), dtype=np.float32), (src, dst)), shape=(n, n))
        matrix.data[:] = 1.0  # parallel edges count once
        keep = np.array([len(x) <= hub_degree for x in kb.neighbours], dtype=np.float32)
        memo[hub_degree] = sp.diags(keep) @ matrix
    return memo[hub_degree]


__all__ = ["DocumentGraph", "document_graph"]
