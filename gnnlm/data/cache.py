"""The processed-graph cache: a loaded :class:`KnowledgeGraph` saved as safetensors + JSON.

Tensors (splits, entity types) go to ``<key>.safetensors``, everything else (vocabularies, text,
``extra``) to ``<key>.json``; nothing is pickled. Both files are written atomically
(:func:`gnnlm.utils.atomic.atomic_write`: a temporary name, ``fsync``, :func:`os.replace`), the JSON
last, so a reader never sees half a cache entry, even after a crash. The JSON records the size of the
tensor file; an entry that does not read back (empty, truncated or corrupt) is reported with its file
name and rebuilt from the source files. The key hashes the dataset name, its options, the size and
modification time of every source file and :data:`CACHE_VERSION`, so editing a source file or changing
an option gives a new entry. Entries live in the user cache (never next to the data, which may be
read-only).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from gnnlm.data.schema import EntityText
from gnnlm.data.sources import cache_dir
from gnnlm.data.vocab import Vocabulary
from gnnlm.utils.atomic import atomic_write

if TYPE_CHECKING:  # torch is imported when an entry is written or read, not with the registry
    from gnnlm.data.knowledge_graph import KnowledgeGraph

#: bump when the processed format or any loader's output changes
CACHE_VERSION = 2


def cache_key(dataset: str, options: dict, sources: dict) -> str:
    """A short hex digest of everything the processed graph depends on."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "dataset": dataset, "options": options, "sources": sources},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _entry(dataset: str, key: str) -> tuple[Path, Path]:
    folder = cache_dir() / "processed" / dataset.replace("/", "_").replace(":", "_")
    return folder / f"{key}.safetensors", folder / f"{key}.json"


def save(kg: KnowledgeGraph, dataset: str, key: str) -> Path:
    """Write ``kg`` to the cache entry ``key``; returns the JSON path."""
    from safetensors.torch import save_file

    tensors_path, meta_path = _entry(dataset, key)
    tensors = {f"split.{s}": t.contiguous() for s, t in kg.splits.items()}
    tensors["entity_type"] = kg.entity_type.contiguous()
    text = kg.entity_text
    meta = {
        "key": key,
        "name": kg.name,
        "splits": list(kg.splits),
        "entities": list(kg.entities.names),
        "relations": list(kg.relations.names),
        "node_types": kg.node_types,
        "entity_text": None
        if text is None
        else {
            "names": text.names,
            "descriptions": text.descriptions,
            "aliases": text.aliases,
            "wikidata_ids": text.wikidata_ids,
        },
        "relation_text": kg.relation_text,
        "extra": kg.extra,
        "summary": {k: v for k, v in kg.summary().items() if k not in kg.extra},
    }
    atomic_write(tensors_path, lambda tmp: save_file(tensors, tmp))
    meta["tensors_bytes"] = tensors_path.stat().st_size

    def write_json(tmp: Path) -> None:  # streamed: the names of a large KG make a large document
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False)

    atomic_write(meta_path, write_json)
    return meta_path


def _read_meta(dataset: str, key: str) -> tuple[Path, Path, dict] | None:
    """The entry's paths and JSON, checked against ``key`` and the tensor file's recorded size."""
    tensors_path, meta_path = _entry(dataset, key)
    if not (meta_path.is_file() and tensors_path.is_file()):
        return None
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise ValueError("not the entry of this key")
    size, expected = tensors_path.stat().st_size, meta.get("tensors_bytes")
    if expected is not None and size != expected:
        raise _TensorFileError(f"{size} bytes where {expected} were written")
    return tensors_path, meta_path, meta


class _TensorFileError(ValueError):
    """The tensor file of an entry does not match its JSON."""


def load_summary(dataset: str, key: str) -> dict | None:
    """The :meth:`~gnnlm.data.KnowledgeGraph.summary` of the entry ``key`` from its JSON alone (no
    torch); ``None`` when there is no readable entry (:func:`load` then reports and rebuilds it)."""
    try:
        found = _read_meta(dataset, key)
        if found is None or not isinstance(found[2].get("summary"), dict):
            return None
        meta = found[2]
        return {**meta["summary"], **meta["extra"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(dataset: str, key: str) -> KnowledgeGraph | None:
    """The cached graph for ``key``, or ``None`` when there is none.

    An entry that does not read back (an empty, truncated or corrupt file) gives a warning naming the
    file and ``None``, so the caller rebuilds the graph from the source files and rewrites the entry.
    """
    from safetensors.torch import load_file

    from gnnlm.data.knowledge_graph import KnowledgeGraph

    tensors_path, meta_path = _entry(dataset, key)
    bad = meta_path
    try:
        try:
            found = _read_meta(dataset, key)
        except _TensorFileError:
            bad = tensors_path
            raise
        if found is None:
            return None
        meta = found[2]
        bad = tensors_path
        tensors = load_file(str(tensors_path))
        bad = meta_path
        text = meta["entity_text"]
        kg = KnowledgeGraph(
            Vocabulary(meta["entities"]),
            Vocabulary(meta["relations"]),
            {s: tensors[f"split.{s}"] for s in meta["splits"]},
            name=meta["name"],
            node_types=meta["node_types"],
            entity_type=tensors["entity_type"],
            entity_text=None if text is None else EntityText(**text),
            relation_text=meta["relation_text"],
            extra=meta["extra"],
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        warnings.warn(
            f"ignoring unreadable cache entry {bad}: {type(err).__name__}: {err}; rebuilding it "
            f"from the source files",
            stacklevel=2,
        )
        return None
    return kg


def clear(dataset: str | None = None) -> int:
    """Delete cached processed graphs (of one dataset, or all); returns the number of files removed."""
    root = cache_dir() / "processed"
    if dataset is not None:
        root = _entry(dataset, "x")[0].parent
    removed = 0
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".json", ".safetensors"):
                path.unlink()
                removed += 1
    return removed
