"""Node ranking for KG question answering: every node of a question's subgraph is scored as its
answer.

The question is encoded by the fused LM (:class:`~gnnlm.fusion.FusedLM`); the candidates are the
nodes of its subgraph other than the topic. Three arms (``model.arm``) differ only in where a
candidate's vector ``h_v`` comes from; the question vector ``q`` (the LM's pooled output), the
candidates, the budget and the head are the same:

* ``lm``: the LM-only baseline. ``h_v`` is a projection of the LM's encoding of the candidate's
  *name* (a frozen table, computed once and cached): the model sees which entities are candidates
  but no edge.
* ``gnn``: a GNN over the subgraph whose initial node features include the question
  (``x_v = feature(v) + role(v) + W_q q``); no injection into the LM.
* ``fused``: the fused LM's own GNN states (``FusionOutput.node_states``), with graph injection
  exchanging information between tokens and nodes in both directions. With ``freeze_injection``
  (injection held at zero) the GNN never reads the text and the LM never reads the graph: late
  fusion only, the head alone combines them.
* ``inject``: injection only: the fused LM (graph injection) encodes the question, and the candidates
  are the ``lm`` arm's name vectors: the head reads text only, so any gain over ``lm`` comes through
  the question vector that injection changed.
* ``kge``: EmbedKGQA's idea (Saxena et al., 2020) with this head: ``h_v`` is a projection of the
  topic-candidate composition of a frozen KGE trained on the whole KB (:class:`KGEPairTable`), e.g.
  ``h_topic * conj(e_v)`` for ComplEx, whose score ``Re <h, r, conj(t)>`` is linear in it. The head's
  interaction ``h_v * P q`` then plays EmbedKGQA's question-as-relation ``r_q``; the LM is the plain
  LM, as in ``lm``.

Head (:class:`NodeRankingHead`): ``score(v) = w^T GELU(W [h_v ; q ; h_v * P q] + b) + c``, an MLP
over the candidate, the question and their elementwise interaction (``P`` maps the question to node
width). A softmax over each example's candidates (other examples' nodes, the topic and padding
masked) gives ``p(v)``; with several gold answers the loss is ``-log sum_{v gold} p(v)``
(:func:`ranking_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

#: the arms of a comparison
ARMS = ("lm", "gnn", "fused", "inject", "kge")


class NodeRankingHead(nn.Module):
    """``score(v) = MLP([h_v ; q ; h_v * P q])``.

    Args:
        node_channels: width of the candidate vectors ``h_v``.
        hidden_size: width of the question vector ``q``.
        channels: the MLP's hidden width.
        seed: the head's initialisation depends on this seed only (every arm starts from the same
            head).
    """

    def __init__(self, node_channels: int, hidden_size: int, channels: int, seed: int = 0) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, node_channels)
        self.mlp = nn.Sequential(
            nn.Linear(2 * node_channels + hidden_size, channels), nn.GELU(), nn.Linear(channels, 1)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in (self.query, self.mlp[0], self.mlp[2]):
                module.reset_parameters()

    def forward(self, nodes: Tensor, question: Tensor, batch: Tensor) -> Tensor:
        """Scores of nodes.

        Args:
            nodes: ``[num_nodes, node_channels]`` candidate vectors (PyG layout).
            question: ``[batch, hidden_size]`` question vectors.
            batch: ``[num_nodes]`` the example of each node.

        Returns:
            ``[num_nodes]`` scores.
        """
        q = question[batch]  # [num_nodes, hidden]
        interaction = nodes * self.query(q)  # [num_nodes, node_channels]
        return self.mlp(torch.cat([nodes, q, interaction], -1)).squeeze(-1)


def candidate_scores(scores: Tensor, graph) -> tuple[Tensor, Tensor]:
    """Per-node scores in a dense ``[batch, max_nodes]`` layout with the candidate mask.

    Args:
        scores: ``[num_nodes]`` scores in PyG layout.
        graph: the batch's PyG ``Batch`` (``batch``, ``ptr``, ``num_seeds``; seeds come first).

    Returns:
        ``(scores [batch, max_nodes], candidates [batch, max_nodes])``: non-candidates (the topic
        and the other seeds, padding) are ``-inf`` and ``False``.
    """
    size = int(graph.num_seeds.numel())
    dense, real = to_dense_batch(scores, graph.batch, batch_size=size)  # [B, M], [B, M]
    local = torch.arange(dense.size(1), device=dense.device)  # [M]
    candidates = real & (local.unsqueeze(0) >= graph.num_seeds.unsqueeze(1))
    return dense.masked_fill(~candidates, float("-inf")), candidates


def ranking_loss(scores: Tensor, gold: Tensor) -> Tensor:
    """``-log sum_{v gold} p(v)`` per example, ``p`` the softmax over the example's candidates.

    Args:
        scores: ``[batch, max_nodes]`` with ``-inf`` at non-candidates.
        gold: ``[batch, max_nodes]`` gold answers among the candidates (at least one per example, or
            the example's loss is ``inf``).

    Returns:
        ``[batch]`` losses.
    """
    log_p = torch.log_softmax(scores.float(), -1)  # [B, M]
    return -torch.logsumexp(log_p.masked_fill(~gold, float("-inf")), -1)


class NameTable(nn.Module):
    """Candidates as their names: a frozen ``[num_entities, d]`` table of the LM's name encodings
    (not saved with the model: :meth:`~gnnlm.tasks.metaqa.task.MetaQATask.build_model` recomputes it
    from its cache) and a trained projection to ``node_channels``."""

    def __init__(self, table: Tensor, node_channels: int) -> None:
        super().__init__()
        self.register_buffer("table", table.detach().float(), persistent=False)
        self.projection = nn.Linear(table.size(1), node_channels)

    def forward(self, ids: Tensor) -> Tensor:
        """``[n]`` entity ids -> ``[n, node_channels]``."""
        return self.projection(self.table[ids])


class KGEPairTable(nn.Module):
    """Candidates as their KGE composition with the topic, the ``kge`` arm (EmbedKGQA-style).

    For a complex-valued KGE (ComplEx, RotatE; rows laid out ``[real | imag]``) the pair feature of
    topic ``h`` and candidate ``t`` is ``z = h * conj(t)`` as ``[Re z | Im z]``: ComplEx scores
    ``Re <r, z>`` and RotatE's squared distance is ``|h|^2 + |t|^2 - 2 Re <r, z>`` (unit ``r``), both
    read off ``z`` with ``r`` from the question. For a real one (DistMult, TransE, ...) it is ``[h * t |
    t - h]`` (DistMult's ``<r, h * t>``, TransE's ``t - h ~ r``). The table is frozen and not saved
    with the model (the task reloads it from ``model.kge_run``); a trained projection maps ``z`` to
    ``node_channels``.

    Args:
        table: ``[num_entities, d]`` entity embeddings (``d = 2 k`` for complex ones).
        node_channels: width of the candidate vectors.
        complex: the rows are ``k`` complex numbers as ``[real | imag]``.
    """

    def __init__(self, table: Tensor, node_channels: int, *, complex: bool = False) -> None:
        super().__init__()
        if complex and table.size(1) % 2:
            raise ValueError(f"a complex table has an even width, got {table.size(1)}")
        self.complex = complex
        self.register_buffer("table", table.detach().float(), persistent=False)
        self.projection = nn.Linear(
            2 * table.size(1) if not complex else table.size(1), node_channels
        )

    @classmethod
    def from_kge(cls, kge: nn.Module, node_channels: int) -> KGEPairTable:
        """The entity table of a link-prediction model (:func:`gnnlm.fusion.load_kge_run`),
        complex when its interaction is (``entity_dim_factor == 2``: ComplEx, RotatE)."""
        with torch.no_grad():
            table = kge.representations()[0]
        return cls(table, node_channels, complex=kge.interaction.entity_dim_factor == 2)

    def pair_features(self, topic: Tensor, ids: Tensor) -> Tensor:
        """``[n]`` topic ids and ``[n]`` candidate ids -> ``[n, width]`` pair features ``z``
        (``width = d`` for a complex table, ``2 d`` for a real one)."""
        h, t = self.table[topic], self.table[ids]  # [n, d]
        if not self.complex:
            return torch.cat([h * t, t - h], -1)
        (h_re, h_im), (t_re, t_im) = h.chunk(2, -1), t.chunk(2, -1)  # [n, k] each
        return torch.cat([h_re * t_re + h_im * t_im, h_im * t_re - h_re * t_im], -1)

    def forward(self, graph) -> Tensor:
        """``[num_nodes, node_channels]`` for a batch of subgraphs whose first node is the topic."""
        topic = graph.n_id[graph.ptr[:-1]][graph.batch]  # [num_nodes]
        return self.projection(self.pair_features(topic, graph.n_id))


class QuestionGNN(nn.Module):
    """A GNN conditioned on the question: ``x_v = feature(v) + role(v) + W_q q``, then the encoder's
    layers.

    Args:
        encoder: a :class:`~gnnlm.encoders.GraphEncoder` of width ``node_channels``.
        features: ``[num_entities] -> [*, node_channels]`` initial node features (a learned table or
            a projected text / KGE table).
        channels: ``node_channels``.
        hidden_size: width of the question vector.
        num_relations: relation ids of the graph (with inverses), for encoders with relation
            vectors.
    """

    def __init__(
        self,
        encoder: nn.Module,
        features: nn.Module,
        *,
        channels: int,
        hidden_size: int,
        num_relations: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.features = features
        self.role = nn.Embedding(2, channels)  # 1: a seed (the topic), 0: other nodes
        nn.init.normal_(self.role.weight, std=0.02)
        self.question = nn.Linear(hidden_size, channels)
        self.relation: nn.Parameter | None = None
        if encoder.updates_relations or encoder.supports_edge_attr:
            self.relation = nn.Parameter(torch.empty(num_relations, channels))
            nn.init.normal_(self.relation, std=0.02)

    def forward(self, graph, question: Tensor) -> Tensor:
        """``[num_nodes, node_channels]`` node states of the batch's subgraphs, given ``question:
        [batch, hidden]``."""
        local = torch.arange(graph.num_nodes, device=graph.batch.device) - graph.ptr[graph.batch]
        seed = (local < graph.num_seeds[graph.batch]).long()  # [num_nodes]
        x = self.features(graph.n_id) + self.role(seed) + self.question(question)[graph.batch]
        return self.encoder(x, graph.edge_index, graph.edge_type, None, self.relation).x


@dataclass
class RankerOutput:
    """What :class:`MetaQARanker` returns.

    Attributes:
        scores: ``[batch, max_nodes]`` candidate scores, ``-inf`` at non-candidates.
        candidates: ``[batch, max_nodes]`` the candidate mask.
        regularization_loss: the fused LM's auxiliary loss (adaptive gates), or ``None``.
    """

    scores: Tensor
    candidates: Tensor
    regularization_loss: Tensor | None = None


class MetaQARanker(nn.Module):
    """The fused LM, the candidate vectors of one arm and the node-ranking head (module docstring).

    Args:
        fused: the fused LM (with graph injection for ``fused``, the plain LM for the other arms).
        head: the node-ranking head.
        arm: ``lm``, ``gnn``, ``fused``, ``inject`` or ``kge``.
        gnn: the question-conditioned GNN (``gnn`` arm).
        names: the name table (``lm`` and ``inject`` arms).
        pairs: the KGE pair table (``kge`` arm).
    """

    def __init__(
        self,
        fused: nn.Module,
        head: NodeRankingHead,
        arm: str,
        *,
        gnn: QuestionGNN | None = None,
        names: NameTable | None = None,
        pairs: KGEPairTable | None = None,
    ) -> None:
        super().__init__()
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {', '.join(ARMS)}, got {arm!r}")
        if (
            (arm == "gnn") != (gnn is not None)
            or (arm in ("lm", "inject")) != (names is not None)
            or (arm == "kge") != (pairs is not None)
        ):
            raise ValueError(
                f"arm {arm!r}: pass gnn= exactly for 'gnn', names= exactly for 'lm' and 'inject' "
                "and pairs= exactly for 'kge'"
            )
        if arm == "fused" and fused.encoder is None:
            raise ValueError(
                "arm 'fused' needs an injection mode with a GNN (e.g. injection: [graph])"
            )
        if arm == "inject" and not fused.injections:
            raise ValueError("arm 'inject' needs an injection mode (e.g. injection: [graph])")
        self.fused, self.head, self.arm = fused, head, arm
        self.gnn, self.names, self.pairs = gnn, names, pairs

    def forward(self, batch) -> RankerOutput:
        """Scores of every candidate of a :class:`~gnnlm.fusion.TextGraphBatch`."""
        out = self.fused(batch)
        question, graph = out.pooled_output, batch.graph  # [B, hidden]
        if self.arm == "fused":
            nodes = out.node_states  # [N, node_channels]
        elif self.arm == "gnn":
            nodes = self.gnn(graph, question)
        elif self.arm == "kge":
            nodes = self.pairs(graph)
        else:
            nodes = self.names(graph.n_id)
        scores, candidates = candidate_scores(self.head(nodes, question, graph.batch), graph)
        return RankerOutput(scores, candidates, out.regularization_loss)


def gold_mask(graph, answers: list[frozenset[int]], candidates: Tensor) -> Tensor:
    """``[batch, max_nodes]``: which candidates are gold answers.

    Args:
        graph: the batch's PyG ``Batch`` (``n_id`` global entity ids).
        answers: per example, the gold entity ids.
        candidates: ``[batch, max_nodes]`` the candidate mask of :func:`candidate_scores`.
    """
    n_id, _ = to_dense_batch(graph.n_id, graph.batch, fill_value=-1, batch_size=len(answers))
    gold = torch.zeros_like(candidates)
    for i, gold_ids in enumerate(answers):
        if gold_ids:
            wanted = torch.tensor(sorted(gold_ids), dtype=n_id.dtype, device=n_id.device)
            gold[i] = torch.isin(n_id[i], wanted)
    return gold & candidates


__all__ = [
    "ARMS",
    "KGEPairTable",
    "MetaQARanker",
    "NameTable",
    "NodeRankingHead",
    "QuestionGNN",
    "RankerOutput",
    "candidate_scores",
    "gold_mask",
    "ranking_loss",
]
