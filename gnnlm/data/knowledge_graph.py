"""The knowledge graph type every other stage of gnnlm consumes.

A :class:`KnowledgeGraph` is the triples of a KG split into train/valid/test, the two vocabularies, optional
entity types and text, and two graph views built from the *training* triples:

* :meth:`KnowledgeGraph.to_hetero_data`: a PyG ``HeteroData`` with one node store per entity type (local
  ids per type, ``global_id`` to go back) and one edge store per ``(src_type, relation, dst_type)``;
* :meth:`KnowledgeGraph.homogeneous`: a PyG ``Data`` with global ``edge_index`` / ``edge_type`` for
  encoders that want a single relational graph (R-GCN, CompGCN), optionally with inverse relations.

Entity ids are global and contiguous (``[0, num_entities)``). For typed KGs (``ogbl-biokg``) entities of
one type occupy a contiguous block, and ``entity_type`` / ``local_id`` map a global id to its type and its id
within the type, so OGB's per-type ids survive the round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gnnlm.data.filter_index import FilterIndex
from gnnlm.data.schema import SPLITS, EntityText
from gnnlm.data.vocab import Vocabulary

# PyG is imported where a graph view is built: importing it pulls in transformers and pandas
if TYPE_CHECKING:
    from torch_geometric.data import Data, HeteroData


class KnowledgeGraph:
    """A knowledge graph with its splits, vocabularies, types and text.

    Args:
        entities: entity vocabulary (global id <-> name).
        relations: relation vocabulary (id <-> name), without inverse relations.
        splits: ``{"train": [n_train, 3], "valid": [...], "test": [...]}`` long tensors of
            (head, relation, tail) ids. Missing splits are empty.
        name: dataset name, for messages and caches.
        node_types: names of entity types (default: one type, ``"entity"``).
        entity_type: ``[num_entities]`` long tensor, the type index of each entity (default: all 0).
            Entities of one type must be contiguous in id order.
        entity_text: optional names / descriptions / aliases per entity.
        relation_text: optional readable name per relation.
        extra: free-form metadata the loader wants to keep (e.g. counts of dropped or duplicate lines).
    """

    def __init__(
        self,
        entities: Vocabulary,
        relations: Vocabulary,
        splits: Mapping[str, Tensor],
        *,
        name: str = "kg",
        node_types: Sequence[str] = ("entity",),
        entity_type: Tensor | None = None,
        entity_text: EntityText | None = None,
        relation_text: Sequence[str | None] | None = None,
        extra: dict | None = None,
    ) -> None:
        self.name = name
        self.entities = entities
        self.relations = relations
        empty = torch.empty(0, 3, dtype=torch.long)
        self.splits: dict[str, Tensor] = {
            s: splits.get(s, empty).long().reshape(-1, 3) for s in SPLITS
        }
        for s, extra_split in splits.items():
            if s not in self.splits:
                self.splits[s] = extra_split.long().reshape(-1, 3)
        self.node_types = list(node_types)
        if entity_type is None:
            entity_type = torch.zeros(len(entities), dtype=torch.long)
        if len(entity_type) != len(entities):
            raise ValueError(
                f"entity_type has {len(entity_type)} entries for {len(entities)} entities"
            )
        if len(entity_type) > 1 and bool((entity_type[1:] < entity_type[:-1]).any()):
            raise ValueError(
                "entities of one type must be contiguous and types in order of node_types"
            )
        self.entity_type = entity_type.long()
        self.entity_text = entity_text
        self.relation_text = list(relation_text) if relation_text is not None else None
        self.extra = dict(extra or {})
        for s, triples in self.splits.items():
            self._check_ids(s, triples)

    def _check_ids(self, split: str, triples: Tensor) -> None:
        if triples.numel() == 0:
            return
        if triples.min() < 0 or triples[:, [0, 2]].max() >= self.num_entities:
            raise ValueError(
                f"{self.name}/{split}: entity id out of range [0, {self.num_entities})"
            )
        if triples[:, 1].max() >= self.num_relations:
            raise ValueError(
                f"{self.name}/{split}: relation id out of range [0, {self.num_relations})"
            )

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        """Number of relations, not counting inverse relations."""
        return len(self.relations)

    @property
    def train(self) -> Tensor:
        """``[num_train, 3]`` training triples."""
        return self.splits["train"]

    @property
    def valid(self) -> Tensor:
        return self.splits["valid"]

    @property
    def test(self) -> Tensor:
        return self.splits["test"]

    def statistics(self) -> dict[str, int]:
        """The counts papers report (``num_entities`` counts every entity of every split)."""
        return {
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "num_train": len(self.train),
            "num_valid": len(self.valid),
            "num_test": len(self.test),
        }

    def summary(self) -> dict:
        """One JSON-ready report: the statistics, further splits' sizes, entities per type (typed
        graphs), whether there is entity text, then everything in :attr:`extra`. ``gnnlm datasets``
        prints it; the processed cache keeps it, so a cached graph is described without torch."""
        out: dict = {"name": self.name, **self.statistics()}
        for split, triples in self.splits.items():
            if split not in SPLITS:
                out[f"num_{split}"] = len(triples)
        if len(self.node_types) > 1:
            ptr = self.type_ptr.tolist()
            out["node_types"] = {t: ptr[k + 1] - ptr[k] for k, t in enumerate(self.node_types)}
        out["has_entity_text"] = self.entity_text is not None
        out.update(self.extra)
        return out

    # -- typed ids ---------------------------------------------------------------------------------
    @cached_property
    def type_ptr(self) -> Tensor:
        """``[num_node_types + 1]``: entities of type ``k`` have global ids ``type_ptr[k]:type_ptr[k+1]``."""
        counts = torch.bincount(self.entity_type, minlength=len(self.node_types))
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    def local_id(self, global_ids: Tensor) -> Tensor:
        """Id of each entity within its type."""
        return global_ids - self.type_ptr[self.entity_type[global_ids]]

    def global_id(self, node_type: str, local_ids: Tensor) -> Tensor:
        """Global id of entities given by their type and id within the type."""
        return local_ids + self.type_ptr[self.node_types.index(node_type)]

    # -- graph views -------------------------------------------------------------------------------
    def homogeneous(self, split: str = "train", *, add_inverse: bool = False) -> Data:
        """One relational graph over global entity ids, from the triples of ``split``.

        Returns:
            ``Data`` with ``edge_index: [2, E]`` (row 0 = head), ``edge_type: [E]``, ``num_nodes``.
            With ``add_inverse``, each triple (h, r, t) also gives the edge (t, r + num_relations, h),
            so ``edge_type`` ranges over ``2 * num_relations`` values.
        """
        from torch_geometric.data import Data

        triples = self.splits[split]
        edge_index = triples[:, [0, 2]].t().contiguous()  # [2, E]
        edge_type = triples[:, 1].clone()  # [E]
        if add_inverse:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)  # [2, 2E]
            edge_type = torch.cat([edge_type, edge_type + self.num_relations])  # [2E]
        num_relations = self.num_relations * (2 if add_inverse else 1)
        return Data(
            edge_index=edge_index,
            edge_type=edge_type,
            num_nodes=self.num_entities,
            num_relations=num_relations,
        )

    def to_hetero_data(self, split: str = "train") -> HeteroData:
        """A PyG ``HeteroData`` view: one node store per type, one edge store per relation."""
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for k, node_type in enumerate(self.node_types):
            start, end = int(self.type_ptr[k]), int(self.type_ptr[k + 1])
            data[node_type].num_nodes = end - start
            data[node_type].global_id = torch.arange(start, end)
        triples = self.splits[split]
        h, r, t = triples.unbind(1)
        h_type, t_type = self.entity_type[h], self.entity_type[t]
        # One edge store per observed (src_type, relation, dst_type); local ids within each type.
        key = (r * len(self.node_types) + h_type) * len(self.node_types) + t_type
        for k in torch.unique(key).tolist():
            mask = key == k
            rel, rest = divmod(k, len(self.node_types) ** 2)
            src, dst = divmod(rest, len(self.node_types))
            store = data[self.node_types[src], self.relations.name(rel), self.node_types[dst]]
            store.edge_index = torch.stack([self.local_id(h[mask]), self.local_id(t[mask])])
            store.relation_id = torch.tensor(rel)
        return data

    def with_inverse_triples(self, triples: Tensor) -> Tensor:
        """``[n, 3]`` -> ``[2n, 3]``: each (h, r, t) plus (t, r + num_relations, h)."""
        inverse = torch.stack([triples[:, 2], triples[:, 1] + self.num_relations, triples[:, 0]], 1)
        return torch.cat([triples, inverse])

    # -- filtering ---------------------------------------------------------------------------------
    @cached_property
    def filter_index(self) -> FilterIndex:
        """All known true triples (every split), for filtered ranking. Built once per graph."""
        all_triples = torch.cat([self.splits[s] for s in self.splits])
        return FilterIndex(all_triples, self.num_entities, self.num_relations)

    # -- names -------------------------------------------------------------------------------------
    def entity_label(self, idx: int) -> str:
        """Readable name of an entity (its text name when known, else its identifier)."""
        fallback = self.entities.name(idx)
        return self.entity_text.name_or_id(idx, fallback) if self.entity_text else fallback

    def relation_label(self, idx: int) -> str:
        """Readable name of a relation (its text when known, else its identifier)."""
        text = (
            self.relation_text[idx]
            if self.relation_text and idx < len(self.relation_text)
            else None
        )
        return text or self.relations.name(idx)

    def __repr__(self) -> str:
        s = self.statistics()
        types = f", node_types={self.node_types}" if len(self.node_types) > 1 else ""
        return (
            f"KnowledgeGraph(name={self.name!r}, entities={s['num_entities']}, "
            f"relations={s['num_relations']}, train={s['num_train']}, valid={s['num_valid']}, "
            f"test={s['num_test']}{types})"
        )
