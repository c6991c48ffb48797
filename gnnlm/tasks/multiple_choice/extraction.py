"""The subgraph of one (question, choice) pair: QA-GNN's bridge extraction under a node budget.

Nodes: the question's concepts, the choice's concepts, and the nodes on paths of at most ``max_hops``
edges between them (:meth:`~gnnlm.data.subgraph.SubgraphSampler.path_node_set`), the path nodes ranked
by their relevance to the question, then by path length. The whole set is cut to ``max_nodes``: grounded
concepts come first (answer concepts before question concepts, the question concepts by relevance, since
a long question can ground more concepts than the budget), path nodes fill the rest.

Each node carries its *type* (:data:`OTHER`, :data:`QUESTION`, :data:`ANSWER`) and its relevance score, so
the GNN can tell the concepts of the question and of the choice from the bridge between them (QA-GNN's
node-type and relevance features). A concept grounded in both the question and the choice is an answer
concept (as in QA-GNN, the question's copy is dropped).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnlm.data.subgraph import SubgraphSampler

#: node types (the order of FusedLM's role ids: 0 is the context role)
OTHER, QUESTION, ANSWER = 0, 1, 2


class BridgeExtractor:
    """Subgraphs of (question concepts, answer concepts) pairs over one graph.

    Args:
        kg: the :class:`~gnnlm.data.KnowledgeGraph` (its training triples, walked in both directions).
        max_nodes: node budget per pair (grounded concepts included).
        max_hops: longest path between a question and an answer concept, in edges.
        seed: seed of the sampler's tie-break among equally ranked nodes.
    """

    def __init__(self, kg, *, max_nodes: int = 32, max_hops: int = 2, seed: int = 0) -> None:
        if max_nodes < 1 or max_hops < 0:
            raise ValueError(f"need max_nodes >= 1 and max_hops >= 0, got {max_nodes}, {max_hops}")
        self.max_nodes = max_nodes
        self.max_hops = max_hops
        self.sampler = SubgraphSampler(
            kg.homogeneous(add_inverse=True), num_hops=max_hops, max_nodes=max_nodes,
            inverse_offset=kg.num_relations, seed=seed,
        )  # fmt: skip

    @property
    def num_nodes(self) -> int:
        return self.sampler.num_nodes

    def extract(
        self, question: list[int], answer: list[int], relevance: Tensor | None = None
    ) -> Data:
        """The subgraph of one pair.

        Args:
            question: concept ids grounded in the question.
            answer: concept ids grounded in the choice.
            relevance: ``[num_nodes]`` score of every concept for this question (higher first;
                ``None``: path length and the fixed tie-break only).

        Returns:
            ``Data`` with ``n_id: [n]`` (answer concepts, then question concepts, then path nodes),
            ``edge_index: [2, e]`` local ids, ``edge_type: [e]``, ``num_seeds`` (grounded concepts
            kept), ``node_type: [n]`` and ``relevance: [n]`` (zeros without ``relevance``).
        """
        answer = list(dict.fromkeys(answer))[: self.max_nodes]
        taken = set(answer)
        question = [c for c in dict.fromkeys(question) if c not in taken]
        room = self.max_nodes - len(answer)
        if len(question) > room and relevance is not None:  # keep the most relevant concepts
            question = sorted(question, key=lambda c: -float(relevance[c]))
        question = question[:room]
        # targets first in the seed order: answer concepts, then question concepts
        data = self.sampler.sample_paths(
            answer, question, max_length=self.max_hops, relevance=relevance
        )
        n_id = data.n_id
        node_type = torch.full((len(n_id),), OTHER, dtype=torch.long)
        node_type[: len(answer)] = ANSWER
        node_type[len(answer) : data.num_seeds] = QUESTION
        data.node_type = node_type
        data.relevance = (
            relevance[n_id].float() if relevance is not None else torch.zeros(len(n_id))
        )
        return data
