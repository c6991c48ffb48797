"""The torch-free parts of the graph type: the split names and per-entity text.

They live apart from :mod:`gnnlm.data.knowledge_graph` (which re-exports them) so that the loaders,
the registry and the processed-graph cache import without torch until a graph is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "valid", "test")


@dataclass
class EntityText:
    """Optional text per entity, aligned with entity ids (``None`` / empty where unknown).

    Attributes:
        names: a readable name per entity.
        descriptions: a short description per entity.
        aliases: other names per entity.
        wikidata_ids: the Wikidata id (``"Q42"``) per entity, where the dataset maps to Wikidata
            (FB15k-237 through ``entity2wikidata.json``); empty otherwise.
    """

    names: list[str | None] = field(default_factory=list)
    descriptions: list[str | None] = field(default_factory=list)
    aliases: list[list[str]] = field(default_factory=list)
    wikidata_ids: list[str | None] = field(default_factory=list)

    def name_or_id(self, idx: int, fallback: str) -> str:
        name = self.names[idx] if idx < len(self.names) else None
        return name if name else fallback
