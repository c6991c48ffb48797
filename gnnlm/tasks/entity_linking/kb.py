"""The knowledge base of entity linking: FB15k-237's entities with their Wikidata labels, aliases and
descriptions, and the graph around them.

An entity of the KB is an entity of the :class:`~gnnlm.data.KnowledgeGraph` (FB15k-237: 14,541, of
which 14,515 have a Wikidata entry in ``entity2wikidata.json``); its surface forms are its KG name
(KG-BERT's), its Wikidata ``label`` and its ``alternatives`` (aliases); its text is ``"name:
description"``. A gold mention whose Wikidata id is none of these entities' is *out of KB*. The graph
(every split's triples, each with its inverse) gives degrees (the popularity prior), neighbour sets
(coherence, and the labels of KG-generated mentions) and the typed edges of the re-ranker's subgraphs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph


@dataclass
class KnowledgeBase:
    """Entities ``0..n-1`` (the KG's ids) with their text and graph.

    Attributes:
        names: ``[n]`` display names (the Wikidata label, else the KG's name, else the id).
        descriptions: ``[n]`` short descriptions (``""`` when unknown).
        surface_forms: ``[n]`` every name of the entity (display name, KG name, aliases), deduplicated.
        qids: ``[n]`` Wikidata ids (``None`` when unknown).
        identifiers: ``[n]`` the KG's own ids (``/m/0dr_4`` for FB15k-237).
        edge_index: ``[2, E]`` every triple of every split and its inverse (row 0 = head).
        edge_type: ``[E]`` relation ids in ``[0, 2 * num_relations)`` (inverses offset by
            ``num_relations``).
        num_relations: the KG's relations (without inverses).
    """

    names: list[str]
    descriptions: list[str]
    surface_forms: list[list[str]]
    qids: list[str | None]
    identifiers: list[str]
    edge_index: Tensor
    edge_type: Tensor
    num_relations: int

    def __post_init__(self) -> None:
        n = len(self.names)
        self.qid_to_entity: dict[str, int] = {}
        for i, q in enumerate(self.qids):
            if q:
                self.qid_to_entity.setdefault(q, i)
        self.degree = torch.bincount(self.edge_index[0], minlength=n)  # [n] in + out degree
        self.neighbours: list[set[int]] = [set() for _ in range(n)]
        for a, b in self.edge_index.t().tolist():
            if a != b:
                self.neighbours[a].add(b)

    @property
    def num_entities(self) -> int:
        return len(self.names)

    def texts(self) -> list[str]:
        """``"name: description"`` per entity (the name alone without a description): the
        entity side of the bi-encoder."""
        return [f"{n}: {d}" if d else n for n, d in zip(self.names, self.descriptions)]

    def entity_of(self, qid: str | None) -> int | None:
        """The entity with Wikidata id ``qid``, ``None`` when it is not in the KB."""
        return None if qid is None else self.qid_to_entity.get(qid)

    @classmethod
    def from_graph(
        cls, kg: KnowledgeGraph, wikidata: str | os.PathLike | None = None
    ) -> KnowledgeBase:
        """The KB of ``kg``: its text (``kg.entity_text``) completed by ``wikidata``, a file in the
        ``entity2wikidata.json`` format keyed by the KG's entity ids (labels, descriptions,
        alternatives, Wikidata ids).

        Raises:
            DataFormatError: a malformed ``wikidata`` file (from
                :func:`~gnnlm.data.text.read_wikidata_json`).
            ValueError: no Wikidata id for any entity (nothing to link to).
        """
        n = kg.num_entities
        ids = list(kg.entities.names)
        text = kg.entity_text
        kg_names = list(text.names) if text is not None else [None] * n
        descriptions = list(text.descriptions) if text is not None else [None] * n
        aliases = [list(a) for a in text.aliases] if text is not None else [[] for _ in range(n)]
        qids = list(text.wikidata_ids or [None] * n) if text is not None else [None] * n
        labels: list[str | None] = [None] * n
        if wikidata is not None:
            from gnnlm.data.text import read_wikidata_json

            wiki = read_wikidata_json(Path(wikidata), kg.entities)
            for i in range(n):
                labels[i] = wiki["label"][i]
                descriptions[i] = wiki["description"][i] or descriptions[i]
                aliases[i] = list(dict.fromkeys(aliases[i] + wiki["alternatives"][i]))
                qids[i] = wiki["wikidata_id"][i] or qids[i]
        if not any(qids):
            raise ValueError(
                f"{kg.name}: no entity has a Wikidata id (give the entity2wikidata.json file)"
            )
        names, forms = [], []
        for i in range(n):
            name = labels[i] or kg_names[i] or ids[i]
            names.append(name)
            forms.append(list(dict.fromkeys(f for f in [name, kg_names[i], *aliases[i]] if f)))
        graph_parts = [kg.splits[s] for s in ("train", "valid", "test") if s in kg.splits]
        triples = torch.cat(graph_parts)  # [T, 3] every split: the KB, not a link-prediction task
        heads, rels, tails = triples.unbind(1)
        edge_index = torch.stack([torch.cat([heads, tails]), torch.cat([tails, heads])])  # [2, 2T]
        edge_type = torch.cat([rels, rels + kg.num_relations])  # [2T]
        return cls(
            names=names, descriptions=[d or "" for d in descriptions], surface_forms=forms,
            qids=qids, identifiers=ids, edge_index=edge_index, edge_type=edge_type,
            num_relations=kg.num_relations,
        )  # fmt: skip


__all__ = ["KnowledgeBase"]
