"""Linking FewRel's head and tail entities to a KG through their Wikidata ids.

FewRel's entities carry Wikidata ids (``Q1497``); FB15k-237's entities are Freebase ids (``/m/04ykg``).
``fb15k-237/entity2wikidata.json`` maps Freebase ids to Wikidata records::

    {"/m/010016": {"wikidata_id": "Q128306", "label": "Denton", "description": ..., ...}, ...}

so an entity links when its Wikidata id is the ``wikidata_id`` of a Freebase id that is an entity of the
graph. Nothing else is matched (no names): a link is exact or absent, and the share that links is
reported (:func:`link_counts`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gnnlm.data.errors import DataFormatError
from gnnlm.tasks.fewrel.reader import Instance

#: (head entity id, tail entity id) in the KG, ``None`` where one does not link
Link = tuple[int | None, int | None]


def wikidata_index(path: str | os.PathLike, entities: Sequence[str]) -> tuple[dict[str, int], dict]:
    """``({wikidata id: KG entity id}, counts)`` from a Freebase -> Wikidata mapping file.

    Args:
        path: the JSON mapping (``entity2wikidata.json``).
        entities: the KG's entity names (Freebase ids), in id order.

    Returns:
        The index, and ``{"mapped": Freebase ids in the file, "in_graph": of those, entities of the
        graph, "no_wikidata_id": records without one, "shared_wikidata_id": graph entities whose
        Wikidata id an earlier entity already took (the first keeps it)}``.

    Raises:
        DataFormatError: the file is not a JSON object of objects.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"invalid JSON ({err.msg})", None) from None
    if not isinstance(record, dict):
        raise DataFormatError(
            path, None, "expected an object of Freebase id -> record", type(record).__name__
        )
    ids = {name: i for i, name in enumerate(entities)}
    index: dict[str, int] = {}
    counts = {"mapped": len(record), "in_graph": 0, "no_wikidata_id": 0, "shared_wikidata_id": 0}
    for freebase, value in record.items():
        if not isinstance(value, dict):
            raise DataFormatError(path, None, f"{freebase}: expected an object", value)
        wikidata = value.get("wikidata_id")
        if not wikidata:
            counts["no_wikidata_id"] += 1
            continue
        if freebase not in ids:
            continue
        counts["in_graph"] += 1
        if wikidata in index:
            counts["shared_wikidata_id"] += 1
            continue
        index[str(wikidata)] = ids[freebase]
    return index, counts


def link_instances(instances: Sequence[Instance], index: dict[str, int]) -> list[Link]:
    """The KG entity of each instance's head and tail (``None``: no Wikidata id, or not in ``index``)."""
    return [
        (index.get(x.head.id) if x.head.id else None, index.get(x.tail.id) if x.tail.id else None)
        for x in instances
    ]


def link_counts(instances: Sequence[Instance], links: Sequence[Link]) -> dict[str, Any]:
    """How much of a split links: mentions (two per instance) and distinct entities.

    Returns:
        ``{"instances", "head_linked", "tail_linked", "mention_share" (linked mentions / 2 *
        instances), "both_linked", "either_linked" (instances), "entities" (distinct Wikidata ids or
        names), "entities_linked", "entity_share"}``.
    """
    n = len(instances)
    heads = sum(h is not None for h, _ in links)
    tails = sum(t is not None for _, t in links)
    entities: dict[str, bool] = {}
    for x, (h, t) in zip(instances, links):
        for entity, linked in ((x.head, h), (x.tail, t)):
            key = entity.id or f"name:{entity.name}"
            entities[key] = entities.get(key, False) or linked is not None
    return {
        "instances": n,
        "head_linked": heads,
        "tail_linked": tails,
        "mention_share": (heads + tails) / (2 * n) if n else 0.0,
        "both_linked": sum(h is not None and t is not None for h, t in links),
        "either_linked": sum(h is not None or t is not None for h, t in links),
        "entities": len(entities),
        "entities_linked": sum(entities.values()),
        "entity_share": sum(entities.values()) / len(entities) if entities else 0.0,
    }


__all__ = ["Link", "link_counts", "link_instances", "wikidata_index"]
