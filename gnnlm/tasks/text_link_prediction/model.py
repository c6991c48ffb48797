r"""The text bi-encoder of KG completion (SimKGC) and the graph tower beside it.

`SimKGC (Wang et al. 2022) <https://arxiv.org/abs/2203.02167>`_ scores a triple by the cosine of two
mean-pooled LM encodings:

.. math::
    s(h, r, t) = \cos\big(\mathrm{LM}_q(\text{text}(h) \,[\mathrm{SEP}]\, \text{text}(r)),\;
    \mathrm{LM}_k(\text{text}(t))\big)

Head prediction ``(?, r, t)`` is tail prediction of ``(t, r^{-1}, ?)`` with the text ``"inverse " +
text(r)``. The graph tower adds, through learned gates :math:`g_k, g_q` (zero at initialisation, so a
fresh model *is* the text model), the state of the entity in a CompGCN over the training graph:

.. math::
    k_e = \frac{\mathrm{LM}_k(e) + \tanh(g_k) W_k z_e}{\lVert\cdot\rVert}, \qquad
    q_{(h, r)} = \frac{\mathrm{LM}_q(h, r) + \tanh(g_q) W_q z_h}{\lVert\cdot\rVert}

where :math:`z = \mathrm{CompGCN}(X W_{in})` and :math:`X` is the pretrained LM's (frozen, cached)
encoding of every entity's text, so an entity that never occurs in training still gets a state from
its text (only its self-loop).

With ``model.query_encoder: frozen`` (the CPU budget) no LM trains: :math:`\mathrm{LM}_q` is replaced
by a small trained adapter over the frozen LM's encodings of the head's and relation's texts
(:mod:`~gnnlm.tasks.text_link_prediction.adapter`) and :math:`\mathrm{LM}_k` by a trained linear map
of the cached entity table.

For ranking, :meth:`TextKGCModel.representations` encodes every entity's key once (``[N, d]``), and
:meth:`~TextKGCModel.score_t` / :meth:`~TextKGCModel.score_h` are one GEMM of a block of query vectors
against that table: the :class:`~gnnlm.eval.RankBasedEvaluator` contract of the KGE models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnlm.lm import TransformerBackbone, pool

#: the prefix of an inverse relation's text (SimKGC's).
INVERSE_PREFIX = "inverse "


def relation_texts(names: Sequence[str], texts: Sequence[str | None] | None) -> list[str]:
    """``2 R`` query texts: relation ``r``'s readable text (else its name), then ``"inverse " + text``
    for relation ``r + R``."""
    forward = [
        (texts[i] if texts is not None and i < len(texts) and texts[i] else name)
        for i, name in enumerate(names)
    ]
    return forward + [INVERSE_PREFIX + text for text in forward]


class GraphTower(nn.Module):
    """CompGCN over the training graph, from fixed text features, with the two gated read-outs.

    Args:
        features: ``[N, F]`` fixed input features (the pretrained LM's encodings of the entities).
        edge_index: ``[2, E]`` training graph with inverse edges (row 0 = source).
        edge_type: ``[E]`` in ``[0, num_relations)``; types ``>= num_relations / 2`` are inverses.
        num_relations: edge types (``2 R``).
        channels: the GNN's width.
        out_channels: the LM's hidden size (the read-outs' width).
        num_layers, dropout, composition: CompGCN's.
    """

    def __init__(
        self,
        features: Tensor,
        edge_index: Tensor,
        edge_type: Tensor,
        *,
        num_relations: int,
        channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.1,
        composition: str = "mult",
    ) -> None:
        super().__init__()
        from gnnlm.encoders.compgcn import CompGCN

        # derived from the KG and the LM's cached encodings, so not part of the checkpoint
        self.register_buffer("features", features.float(), persistent=False)
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_type", edge_type, persistent=False)
        self.channels, self.out_channels = channels, out_channels
        self.input = nn.Linear(features.size(1), channels)
        self.relation = nn.Parameter(torch.empty(num_relations, channels))
        self.encoder = CompGCN(
            channels, channels, num_layers=num_layers, dropout=dropout,
            composition=composition, batch_norm=False,
        )  # fmt: skip
        self.key_projection = nn.Linear(channels, out_channels)
        self.query_projection = nn.Linear(channels, out_channels)
        self.key_gate = nn.Parameter(torch.zeros(()))
        self.query_gate = nn.Parameter(torch.zeros(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.input.reset_parameters()
        nn.init.xavier_uniform_(self.relation)
        self.encoder.reset_parameters()
        self.key_projection.reset_parameters()
        self.query_projection.reset_parameters()
        nn.init.zeros_(self.key_gate)  # zero gates: a fresh tower adds nothing (the text model)
        nn.init.zeros_(self.query_gate)

    def forward(self) -> Tensor:
        """``[N, channels]`` entity states."""
        x = self.input(self.features)  # [N, channels]
        return self.encoder(x, self.edge_index, self.edge_type, None, self.relation).x

    def key_term(self, states: Tensor) -> Tensor:
        """``[B, channels] -> [B, out_channels]``: ``tanh(g_k) W_k z``."""
        return torch.tanh(self.key_gate) * self.key_projection(states)

    def query_term(self, states: Tensor) -> Tensor:
        """``[B, channels] -> [B, out_channels]``: ``tanh(g_q) W_q z``."""
        return torch.tanh(self.query_gate) * self.query_projection(states)

    def extra_repr(self) -> str:
        return (
            f"num_entities={self.features.size(0)}, channels={self.channels}, "
            f"out_channels={self.out_channels}, num_edges={self.edge_index.size(1)}"
        )


class TextKGCModel(nn.Module):
    """The bi-encoder (see the module docstring).

    Args:
        query_lm: encodes queries (head text + relation text).
        tokenizer: the LM's tokenizer.
        entity_texts: ``N`` texts, one per entity id.
        relation_texts: ``2 R`` texts (:func:`relation_texts`).
        key_lm: a second LM for entities (SimKGC's ``separate`` encoders); ``None`` with no
            ``key_table``: ``query_lm`` encodes entities too (``shared``).
        key_table: ``[N, H]`` fixed entity encodings (``frozen``): keys are ``key_table @ W`` with a
            trainable ``W`` initialised to the identity.
        graph: the optional :class:`GraphTower`.
        cross: the optional cross-encoder head of KG-BERT-style re-ranking
            (:class:`~gnnlm.tasks.text_link_prediction.rerank.CrossEncoderHead`; it reads the query
            LM).
        query_adapter: ``model.query_encoder: frozen``: queries are
            :class:`~gnnlm.tasks.text_link_prediction.adapter.QueryAdapter` of the head's row of
            ``key_table`` (the frozen LM's encoding) and the relation; ``query_lm`` is then frozen
            and only encodes new text (:meth:`encode_frozen`). Needs ``key_table``.
        table_max_length: tokens per text of ``key_table``'s encodings (new texts are cut alike).
        max_length: tokens per text.
        temperature: initial ``tau``; ``learn_temperature`` trains ``log(1 / tau)``, clamped to
            ``1 / tau <= max_inverse_temperature``.
        encode_batch_size: entity texts per forward pass when the key table is encoded.
    """

    #: ``gnnlm predict`` may give a head or tail as new text (see :meth:`score_text`).
    supports_text_queries: ClassVar[bool] = True

    def __init__(
        self,
        query_lm: TransformerBackbone,
        tokenizer,
        entity_texts: Sequence[str],
        relation_texts: Sequence[str],
        *,
        key_lm: TransformerBackbone | None = None,
        key_table: Tensor | None = None,
        graph: GraphTower | None = None,
        cross: nn.Module | None = None,
        query_adapter: nn.Module | None = None,
        table_max_length: int = 128,
        max_length: int = 50,
        temperature: float = 0.05,
        learn_temperature: bool = True,
        max_inverse_temperature: float = 100.0,
        encode_batch_size: int = 128,
    ) -> None:
        super().__init__()
        if key_lm is not None and key_table is not None:
            raise ValueError("give key_lm (separate encoders) or key_table (frozen keys), not both")
        if query_adapter is not None and key_table is None:
            raise ValueError("a query adapter reads the frozen entity table: give key_table too")
        if len(relation_texts) % 2:
            raise ValueError("relation_texts needs 2 R texts: the relations, then their inverses")
        self.query_lm = query_lm
        self.key_lm = key_lm
        self.tokenizer = tokenizer
        self.entity_texts = list(entity_texts)
        self.relation_texts = list(relation_texts)
        self.num_relations = len(relation_texts) // 2  # of the KG, without inverses
        self.max_length = max_length
        self.encode_batch_size = encode_batch_size
        self.max_inverse_temperature = max_inverse_temperature
        hidden = query_lm.hidden_size
        if key_table is not None:
            if tuple(key_table.shape) != (len(self.entity_texts), hidden):
                raise ValueError(
                    f"key_table has shape {tuple(key_table.shape)}, expected "
                    f"{(len(self.entity_texts), hidden)}"
                )
            self.register_buffer("key_table", key_table.float(), persistent=False)
            self.key_map = nn.Linear(hidden, hidden, bias=False)
        else:
            self.key_table, self.key_map = None, None
        self.graph = graph
        self.cross = cross
        self.query_adapter = query_adapter
        self.table_max_length = table_max_length
        if query_adapter is not None:  # the LM only encodes new text, exactly as the table's LM
            query_lm.requires_grad_(False)
        self.log_inverse_temperature = nn.Parameter(
            torch.tensor(1.0 / temperature).log(), requires_grad=learn_temperature
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The key map to the identity (the LMs keep their pretrained weights)."""
        if self.key_map is not None:
            nn.init.eye_(self.key_map.weight)

    @property
    def num_entities(self) -> int:
        return len(self.entity_texts)

    @property
    def key_encoder(self) -> str:
        """``separate``, ``shared`` or ``frozen``."""
        if self.key_table is not None:
            return "frozen"
        return "separate" if self.key_lm is not None else "shared"

    @property
    def inverse_temperature(self) -> Tensor:
        """``1 / tau``, clamped to ``[1, max_inverse_temperature]``."""
        return self.log_inverse_temperature.exp().clamp(1.0, self.max_inverse_temperature)

    def _device(self) -> torch.device:
        return self.log_inverse_temperature.device

    # -- text --------------------------------------------------------------------------------------
    def encode(
        self, lm: TransformerBackbone, texts: list[str], pairs: list[str] | None = None
    ) -> Tensor:
        """``[B, H]`` mean-pooled encodings of ``texts`` (with ``pairs`` as second segments)."""
        enc = self.tokenizer(
            texts, pairs, padding=True, truncation=True, max_length=self.max_length,
            return_tensors="pt",
        ).to(self._device())  # fmt: skip
        hidden = lm(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
        return pool(hidden, enc["attention_mask"], "mean")  # [B, H]

    def query_texts(self, heads: Tensor, relations: Tensor) -> tuple[list[str], list[str]]:
        """The texts of queries ``(heads[i], relations[i], ?)``; relation ``r + R`` is the inverse."""
        return (
            [self.entity_texts[h] for h in heads.tolist()],
            [self.relation_texts[r] for r in relations.tolist()],
        )

    # -- vectors -----------------------------------------------------------------------------------
    def graph_states(self) -> Tensor | None:
        """``[N, channels]`` graph-tower states, or ``None`` without a tower."""
        return self.graph() if self.graph is not None else None

    def query_vectors(
        self,
        heads: Tensor,
        relations: Tensor,
        states: Tensor | None = None,
        *,
        head_texts: list[str] | None = None,
    ) -> Tensor:
        """``[B, H]`` normalised queries of ``(heads[i], relations[i], ?)``.

        Args:
            heads: ``[B]`` entity ids (ignored where ``head_texts`` is given, except for the graph
                term; pass ``-1`` for a head outside the KG: it has no graph state).
            relations: ``[B]`` in ``[0, 2 R)``.
            states: ``[N, channels]`` graph states (computed when ``None`` and there is a tower).
            head_texts: the heads' texts instead of the KG's (new entities).
        """
        if self.query_adapter is not None:
            if head_texts is not None:
                base = self.encode_frozen(list(head_texts))  # [B, H]
            else:
                base = self.key_table[heads.to(self.key_table.device)]  # [B, H]
            vector = self.query_adapter(base, relations)
        else:
            texts, pairs = self.query_texts(heads.clamp_min(0), relations)
            if head_texts is not None:
                texts = list(head_texts)
            vector = self.encode(self.query_lm, texts, pairs)  # [B, H]
        if self.graph is not None:
            states = states if states is not None else self.graph()
            known = (heads >= 0).to(vector.dtype)[:, None]  # [B, 1]: new text has no state
            term = self.graph.query_term(states[heads.clamp_min(0).to(states.device)])
            vector = vector + known.to(vector.device) * term
        return F.normalize(vector, dim=-1)

    def text_keys(self, entities: Tensor) -> Tensor:
        """``[B, H]`` key vectors of ``entities`` before the graph term and normalisation."""
        if self.key_table is not None:
            return self.key_map(self.key_table[entities.to(self.key_table.device)])
        lm = self.key_lm if self.key_lm is not None else self.query_lm
        return self.encode(lm, [self.entity_texts[e] for e in entities.tolist()])

    def key_vectors(self, entities: Tensor, states: Tensor | None = None) -> Tensor:
        """``[B, H]`` normalised keys of ``entities`` (``[B]`` ids)."""
        vector = self.text_keys(entities)
        if self.graph is not None:
            states = states if states is not None else self.graph()
            vector = vector + self.graph.key_term(states[entities.to(states.device)])
        return F.normalize(vector, dim=-1)

    @torch.no_grad()
    def encode_frozen(self, texts: list[str]) -> Tensor:
        """``[B, H]`` the pretrained LM's encodings of new texts, computed as the rows of the frozen
        entity table are (mean pooling, ``table_max_length`` tokens, eval mode; with a query adapter
        the query LM is that LM, never trained)."""
        if self.query_adapter is None:
            raise ValueError("only a model with a query adapter keeps the table's LM unchanged")
        was_training = self.query_lm.training
        self.query_lm.eval()
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.table_max_length,
            return_tensors="pt",
        ).to(self._device())  # fmt: skip
        hidden = self.query_lm(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
        self.query_lm.train(was_training)
        return pool(hidden, enc["attention_mask"], "mean").float()  # [B, H]

    def key_vectors_of_texts(self, texts: list[str]) -> Tensor:
        """``[B, H]`` normalised keys of new entity texts (no graph state; frozen keys need the
        query adapter, whose LM is the table's)."""
        if self.key_table is not None:
            if self.query_adapter is None:
                raise ValueError(
                    "frozen keys are a fixed table: encode new texts with the pretrained LM"
                )
            return F.normalize(self.key_map(self.encode_frozen(list(texts))), dim=-1)
        lm = self.key_lm if self.key_lm is not None else self.query_lm
        return F.normalize(self.encode(lm, list(texts)), dim=-1)

    # -- ranking (the evaluator's contract) --------------------------------------------------------
    @torch.no_grad()
    def representations(self) -> tuple[Tensor, Tensor]:
        """``(keys [N, H], states [N, channels] or [N, 0])``: every entity's key, encoded once (in
        batches of similar length), and the graph states the queries read."""
        states = self.graph_states()
        n = self.num_entities
        if self.key_table is not None:
            entities = torch.arange(n, device=self._device())
            keys = self.key_vectors(entities, states)
        else:
            keys = torch.empty(n, self.query_lm.hidden_size, device=self._device())
            order = sorted(range(n), key=lambda i: len(self.entity_texts[i]))
            for start in range(0, n, self.encode_batch_size):
                index = torch.tensor(order[start : start + self.encode_batch_size])
                keys[index.to(keys.device)] = self.key_vectors(index, states)
        if states is None:
            states = keys.new_zeros(n, 0)
        return keys, states

    def _reps(self, reps: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor | None]:
        keys, states = reps if reps is not None else self.representations()
        return keys, (states if self.graph is not None else None)

    def score_t(self, hr: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (h, r) ids (``r`` may be an inverse ``r + R``) -> ``[B, N]`` cosines."""
        keys, states = self._reps(reps)
        return self.query_vectors(hr[:, 0], hr[:, 1], states) @ keys.t()  # [B, N]

    def score_h(self, rt: Tensor, reps: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``[B, 2]`` (r, t) ids -> ``[B, N]`` cosines of every head: the tails of
        ``(t, r + R, ?)``."""
        keys, states = self._reps(reps)
        return self.query_vectors(rt[:, 1], rt[:, 0] + self.num_relations, states) @ keys.t()

    def score_hrt(self, triples: Tensor) -> Tensor:
        """``[B, 3]`` -> ``[B]`` cosines, each triple's query and key encoded on their own (the
        reference the cached-table ranking is tested against)."""
        states = self.graph_states()
        out = []
        for h, r, t in triples.tolist():
            q = self.query_vectors(torch.tensor([h]), torch.tensor([r]), states)  # [1, H]
            k = self.key_vectors(torch.tensor([t]), states)  # [1, H]
            out.append((q * k).sum(-1))
        return torch.cat(out)

    def score_text(
        self,
        texts: list[str],
        relations: Tensor,
        reps: tuple[Tensor, Tensor] | None = None,
        *,
        entities: Tensor | None = None,
    ) -> Tensor:
        """``[B, N]`` cosines of every entity as the answer of ``(texts[i], relations[i], ?)``.

        Args:
            texts: the query entities' texts (any text: entities outside the KG are fine).
            relations: ``[B]`` in ``[0, 2 R)`` (an inverse ``r + R`` asks for heads).
            entities: ``[B]`` the KG's ids of the query entities (``-1``: not in the KG; default: all
                ``-1``), for the graph term.
        """
        keys, states = self._reps(reps)
        heads = entities if entities is not None else torch.full((len(texts),), -1)
        return self.query_vectors(heads, relations, states, head_texts=texts) @ keys.t()

    def post_step(self) -> None:
        """Nothing to constrain (the engine's link-prediction contract)."""

    def extra_repr(self) -> str:
        return (
            f"num_entities={self.num_entities}, num_relations={self.num_relations}, "
            f"key_encoder={self.key_encoder}, "
            f"query_encoder={'frozen' if self.query_adapter is not None else 'lm'}, "
            f"max_length={self.max_length}"
        )
