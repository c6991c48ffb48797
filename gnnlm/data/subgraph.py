"""k-hop subgraphs of a knowledge graph around the entities an example links to.

Each text example links to a few entities (its *seeds*). :class:`SubgraphSampler` grows a ``num_hops``
neighbourhood around them with a node budget and relation-aware pruning, and returns the induced subgraph
with seeds first (local ids ``0..num_seeds-1``), so the collator can point mention tokens at them.

Every seed gets its share of the budget (``allocation="per_seed"``, the default): at each hop the budget
left is split evenly among the seeds that still reach new nodes, and what one seed cannot use goes to the
others (water-filling), so a hub seed cannot crowd out the neighbourhood of a rare one, as one joint
breadth-first search does (``allocation="joint"``, the earlier behaviour).

For question answering, :meth:`SubgraphSampler.sample_paths` extracts QA-GNN's subgraph: the nodes on
paths of at most ``max_length`` edges between the question's entities and an answer candidate, ranked by
their relevance to the text (a score per node the caller computes, e.g. the similarity of the node's name
to the question) within the node budget (Yasunaga et al., 2021, https://arxiv.org/abs/2104.06378).

Relation-aware pruning: when a hop would exceed the budget, candidates are ranked by the most informative
relation that reaches them, with a relation's weight its inverse document frequency
``w_r = log(E / count_r)`` by default (a rare relation such as ``/film/film/directed_by`` says more than
``gender``), then by a fixed random rank (so ties do not favour low ids). A weight of ``-inf`` removes a
relation from the walk entirely.

Question-aware pruning: the weights can also be given per example (``node_set(seeds, relation_weight=...)``,
e.g. the log-relevance of each relation to a question), and with ``path_scores=True`` a candidate is ranked
by the best *path* from a seed, the sum of its edges' weights, rather than by its last edge: after "the
movies written by X", a genre reached from one of X's films through ``has_genre`` outranks a genre of a film
X only starred in. Hops still fill in breadth-first order, so a nearer node always comes before a farther
one. This is GraftNet's retrieval (personalised PageRank with question-relation edge weights, Sun et al.,
2018, https://arxiv.org/abs/1809.00782) reduced to its best path.

The expansion walks a CSR adjacency (``O(degree of the frontier)`` per hop) instead of calling
:func:`torch_geometric.utils.k_hop_subgraph` per example, whose cost is ``O(num_edges)`` per hop; with no
budget the node sets are identical (tested against ``k_hop_subgraph``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data


def _csr_positions(ptr: Tensor, nodes: Tensor) -> Tensor:
    """Positions in CSR order of all edges leaving ``nodes`` (``[k]``) -> ``[sum of degrees]``."""
    start, end = ptr[nodes], ptr[nodes + 1]
    count = end - start  # [k]
    offsets = torch.repeat_interleave(start - torch.cumsum(count, 0) + count, count)  # [sum deg]
    return offsets + torch.arange(int(count.sum()), dtype=torch.long)


class SubgraphSampler:
    """Budgeted, relation-aware k-hop subgraphs over one relational graph.

    Args:
        graph: ``Data`` with ``edge_index: [2, E]`` (row 0 = head), ``edge_type: [E]``, ``num_nodes`` and
            ``num_relations`` — typically ``kg.homogeneous(add_inverse=True)`` so both directions are
            walked and ``edge_type`` distinguishes inverse relations.
        num_hops: neighbourhood radius.
        max_nodes: node budget per example (seeds always kept, even beyond the budget).
        relation_weight: ``[num_relations]`` priority of each relation when pruning (default: IDF);
            ``-inf`` never walks that relation.
        inverse_offset: with an inverse-augmented graph, the id offset of inverse relations
            (``kg.num_relations``), so that :meth:`sample`'s ``exclude`` removes both directions.
        seed: seed of the random tie-break rank.
        allocation: ``"per_seed"`` (each seed its share of the budget at every hop, unused shares
            passed on) or ``"joint"`` (one breadth-first search from all seeds under one budget).
        path_scores: rank a hop's candidates by the best path's summed relation weight from a seed
            instead of by the best last edge (the same with all-zero weights).
    """

    def __init__(
        self,
        graph: Data,
        *,
        num_hops: int = 2,
        max_nodes: int = 50,
        relation_weight: Tensor | None = None,
        inverse_offset: int | None = None,
        seed: int = 0,
        allocation: str = "per_seed",
        path_scores: bool = False,
    ) -> None:
        if num_hops < 0 or max_nodes < 1:
            raise ValueError(
                f"need num_hops >= 0 and max_nodes >= 1, got {num_hops} and {max_nodes}"
            )
        if allocation not in ("per_seed", "joint"):
            raise ValueError(f"allocation must be 'per_seed' or 'joint', got {allocation!r}")
        self.allocation = allocation
        self.path_scores = path_scores
        self.num_nodes = int(graph.num_nodes)
        self.num_relations = int(graph.num_relations)
        self.num_hops = num_hops
        self.max_nodes = max_nodes
        self.inverse_offset = inverse_offset
        src, dst = graph.edge_index
        edge_type = graph.edge_type
        if relation_weight is None:
            count = torch.bincount(edge_type, minlength=self.num_relations).clamp_min(1).double()
            relation_weight = torch.log(len(edge_type) / count).float()  # [num_relations]
        self.relation_weight = self._checked_weight(relation_weight)
        perm = torch.argsort(src, stable=True)
        self.src, self.dst, self.edge_type = src[perm], dst[perm], edge_type[perm]  # CSR order
        counts = torch.bincount(self.src, minlength=self.num_nodes)
        self.ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # [num_nodes + 1]
        generator = torch.Generator().manual_seed(seed)
        self.rank = torch.randperm(self.num_nodes, generator=generator)  # tie-break
        self._member = torch.zeros(self.num_nodes, dtype=torch.bool)  # scratch membership mask

    def _checked_weight(self, weight: Tensor) -> Tensor:
        weight = torch.as_tensor(weight)
        if weight.shape != (self.num_relations,):
            raise ValueError(
                f"relation_weight must have shape [{self.num_relations}], got {tuple(weight.shape)}"
            )
        return weight.float()

    def _in(self, values: Tensor, nodes: Tensor) -> Tensor:
        """``values`` in ``nodes`` via a reusable ``[num_nodes]`` mask (faster than ``isin`` on hubs)."""
        self._member[nodes] = True
        out = self._member[values]
        self._member[nodes] = False
        return out

    def _expand(
        self, frontier: Tensor, score: Tensor, selected: Tensor, weight: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Unseen neighbours of ``frontier`` (``[k]``, its nodes' path scores ``score: [k]``) and the
        best score reaching each: the frontier node's score plus the edge's relation weight."""
        count = self.ptr[frontier + 1] - self.ptr[frontier]  # [k] out-degrees
        pos = _csr_positions(self.ptr, frontier)
        step = weight[self.edge_type[pos]]
        neighbour = self.dst[pos]
        keep = ~self._in(neighbour, selected) & (step > -math.inf)
        reach = torch.repeat_interleave(score, count)[keep] + step[keep]  # [edges kept]
        candidates, inverse = torch.unique(neighbour[keep], return_inverse=True)
        best = torch.full((len(candidates),), -math.inf).scatter_reduce(0, inverse, reach, "amax")
        return candidates, best

    def _prune(self, candidates: Tensor, best: Tensor, budget: int) -> tuple[Tensor, Tensor]:
        """The ``budget`` best candidates and their scores: highest score first, then the fixed
        random rank; the scores carried on are 0 without ``path_scores``."""
        if len(candidates) > budget:
            order = torch.argsort(self.rank[candidates], stable=True)  # lexsort: two stable sorts
            order = order[torch.argsort(-best[order], stable=True)][:budget]
            candidates, best = candidates[order], best[order]
        return candidates, (best if self.path_scores else torch.zeros_like(best))

    def _seeds(self, seeds: Tensor) -> Tensor:
        """``seeds`` checked, deduplicated, in first-occurrence order."""
        seeds = torch.as_tensor(seeds, dtype=torch.long).reshape(-1)
        if seeds.numel() and (seeds.min() < 0 or seeds.max() >= self.num_nodes):
            raise ValueError(f"seed entity id out of range [0, {self.num_nodes}): {seeds.tolist()}")
        unique, first = torch.unique(seeds, return_inverse=True)
        order = torch.full((len(unique),), len(seeds), dtype=torch.long).scatter_reduce(
            0, first, torch.arange(len(seeds)), "amin"
        )
        return unique[torch.argsort(order)]

    def node_set(self, seeds: Tensor, relation_weight: Tensor | None = None) -> Tensor:
        """Global ids of the kept nodes, seeds first (deduplicated, in order), then hop by hop.

        Args:
            seeds: ``[num_seeds]`` global entity ids.
            relation_weight: ``[num_relations]`` weights for this call only (e.g. a question's
                relation relevance), in place of the sampler's.
        """
        selected = self._seeds(seeds)
        weight = (
            self.relation_weight
            if relation_weight is None
            else self._checked_weight(relation_weight)
        )
        if self.allocation == "joint" or len(selected) <= 1:
            return self._joint(selected, weight)
        frontiers = [(selected[i : i + 1], torch.zeros(1)) for i in range(len(selected))]
        for _ in range(self.num_hops):
            budget = self.max_nodes - len(selected)
            if budget <= 0:
                break
            expansions = [
                self._expand(f, score, selected, weight) if len(f) else (f, score)
                for f, score in frontiers
            ]
            shares = water_fill([len(c) for c, _ in expansions], budget)
            frontiers = [self._prune(c, b, n) for (c, b), n in zip(expansions, shares)]
            picked = torch.cat([f for f, _ in frontiers])
            if not len(picked):
                break
            # a node two seeds both picked is kept once (the budget is then not quite used up)
            selected = torch.cat([selected, picked[~self._in_first(picked)]])
        return selected

    def _in_first(self, values: Tensor) -> Tensor:
        """For each of ``values``, whether an equal value occurs earlier (first occurrences are kept)."""
        _, inverse = torch.unique(values, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(values), dtype=torch.long)
        first = first.scatter_reduce(0, inverse, torch.arange(len(values)), "amin")
        return first[inverse] != torch.arange(len(values))

    def _joint(self, selected: Tensor, weight: Tensor) -> Tensor:
        """One breadth-first search from all seeds under one budget."""
        frontier, score = selected, torch.zeros(len(selected))
        for _ in range(self.num_hops):
            budget = self.max_nodes - len(selected)
            if budget <= 0 or len(frontier) == 0:
                break
            candidates, best = self._expand(frontier, score, selected, weight)
            frontier, score = self._prune(candidates, best, budget)
            selected = torch.cat([selected, frontier])
        return selected

    def _reach(self, seeds: Tensor, hops: int) -> tuple[Tensor, Tensor]:
        """``(nodes, distance)``: every node within ``hops`` edges of ``seeds`` and its distance."""
        nodes, frontier = seeds, seeds
        dist = torch.zeros(len(seeds), dtype=torch.long)
        for d in range(1, hops + 1):
            if not len(frontier):
                break
            pos = _csr_positions(self.ptr, frontier)
            pos = pos[self.relation_weight[self.edge_type[pos]] > -math.inf]
            new = torch.unique(self.dst[pos])
            new = new[~self._in(new, nodes)]
            nodes, frontier = torch.cat([nodes, new]), new
            dist = torch.cat([dist, torch.full((len(new),), d, dtype=torch.long)])
        return nodes, dist

    def path_node_set(
        self,
        sources: Tensor,
        targets: Tensor,
        *,
        max_length: int | None = None,
        relevance: Tensor | None = None,
    ) -> tuple[Tensor, int]:
        """QA-GNN's node set: the nodes on paths of at most ``max_length`` edges (default ``num_hops``)
        from any source to any target, sources and targets first, the rest ranked by ``relevance``
        (``[num_nodes]``, higher first), then by path length, then by the fixed random rank, within
        ``max_nodes``.

        Returns:
            ``(global ids, number of seeds)`` (the deduplicated sources and targets).
        """
        length = self.num_hops if max_length is None else max_length
        seeds = self._seeds(torch.cat([torch.as_tensor(sources).reshape(-1),
                                       torch.as_tensor(targets).reshape(-1)]).long())  # fmt: skip
        s_nodes, s_dist = self._reach(self._seeds(sources), length)
        t_nodes, t_dist = self._reach(self._seeds(targets), length)
        # nodes reached from both sides with d_s + d_t <= length lie on such a path
        t_sorted, t_perm = torch.sort(t_nodes)
        where = torch.searchsorted(t_sorted, s_nodes).clamp_max(max(len(t_sorted) - 1, 0))
        both = (
            (t_sorted[where] == s_nodes)
            if len(t_sorted)
            else torch.zeros_like(s_nodes, dtype=torch.bool)
        )
        total = s_dist[both] + t_dist[t_perm[where[both]]]
        on_path, total = s_nodes[both][total <= length], total[total <= length]
        keep = ~self._in(on_path, seeds)
        on_path, total = on_path[keep], total[keep]
        order = torch.argsort(self.rank[on_path], stable=True)
        order = order[torch.argsort(total[order], stable=True)]
        if relevance is not None:
            order = order[torch.argsort(-relevance[on_path[order]].float(), stable=True)]
        budget = max(self.max_nodes - len(seeds), 0)
        return torch.cat([seeds, on_path[order[:budget]]]), len(seeds)

    def sample_paths(
        self,
        sources: Tensor | list[int],
        targets: Tensor | list[int],
        *,
        exclude: Tensor | None = None,
        max_length: int | None = None,
        relevance: Tensor | None = None,
    ) -> Data:
        """The subgraph of :meth:`path_node_set` (see :meth:`sample` for the returned ``Data``; its
        seeds are the sources, then the targets)."""
        nodes, num_seeds = self.path_node_set(
            torch.as_tensor(sources, dtype=torch.long), torch.as_tensor(targets, dtype=torch.long),
            max_length=max_length, relevance=relevance,
        )  # fmt: skip
        return self._induced(nodes, num_seeds, exclude)

    def sample(
        self,
        seeds: Tensor | list[int],
        exclude: Tensor | None = None,
        relation_weight: Tensor | None = None,
    ) -> Data:
        """The subgraph of one example.

        Args:
            seeds: ``[num_seeds]`` global entity ids the example links to.
            exclude: ``[k, 3]`` (head, relation, tail) triples whose edges must not appear (for a triple
                being classified, its own edge); with ``inverse_offset`` the inverse edge
                ``(tail, relation + inverse_offset, head)`` is removed too.
            relation_weight: per-example pruning weights (see :meth:`node_set`).

        Returns:
            ``Data`` with ``n_id: [n]`` global ids (seeds first), ``edge_index: [2, e]`` local ids,
            ``edge_type: [e]``, ``num_nodes = n`` and ``num_seeds``.
        """
        nodes = self.node_set(torch.as_tensor(seeds, dtype=torch.long), relation_weight)
        num_seeds = len(torch.unique(torch.as_tensor(seeds, dtype=torch.long)))
        return self._induced(nodes, num_seeds, exclude)

    def _induced(self, nodes: Tensor, num_seeds: int, exclude: Tensor | None) -> Data:
        """The subgraph induced by ``nodes`` (global ids, seeds first), less the ``exclude`` edges."""
        pos = _csr_positions(self.ptr, nodes)
        src, dst, edge_type = self.src[pos], self.dst[pos], self.edge_type[pos]
        keep = self._in(dst, nodes)
        src, dst, edge_type = src[keep], dst[keep], edge_type[keep]
        if exclude is not None and len(exclude) and len(src):
            exclude = exclude.long().reshape(-1, 3)
            h, r, t = exclude.unbind(1)
            banned = torch.stack([h, r, t], 1)  # [k, 3]
            if self.inverse_offset is not None:
                inverse = torch.stack([t, r + self.inverse_offset, h], 1)
                banned = torch.cat([banned, inverse])  # [2k, 3]
            key = (src * self.num_relations + edge_type) * self.num_nodes + dst  # [e]
            banned_key = (
                banned[:, 0] * self.num_relations + banned[:, 1]
            ) * self.num_nodes + banned[:, 2]
            keep = ~torch.isin(key, banned_key)
            src, dst, edge_type = src[keep], dst[keep], edge_type[keep]
        # Relabel global -> local ids.
        sorted_nodes, perm = torch.sort(nodes)
        local = perm[torch.searchsorted(sorted_nodes, torch.stack([src, dst]))]  # [2, e]
        return Data(
            n_id=nodes,
            edge_index=local,
            edge_type=edge_type,
            num_nodes=len(nodes),
            num_seeds=num_seeds,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_nodes={self.num_nodes}, num_relations={self.num_relations}, "
            f"num_hops={self.num_hops}, max_nodes={self.max_nodes})"
        )


def water_fill(demands: list[int], budget: int) -> list[int]:
    """Split ``budget`` among ``demands`` as evenly as possible, none getting more than it asks for;
    what one cannot use goes to the others (earlier ones get the remainder of an uneven split)."""
    shares = [0] * len(demands)
    open_ = [i for i, d in enumerate(demands) if d > 0]
    while budget > 0 and open_:
        each, extra = divmod(budget, len(open_))
        still = []
        for rank, i in enumerate(open_):
            give = min(demands[i] - shares[i], each + (rank < extra))
            shares[i] += give
            budget -= give
            if shares[i] < demands[i]:
                still.append(i)
        if len(still) == len(open_):  # everyone took a full share: the budget is spent
            break
        open_ = still
    return shares
