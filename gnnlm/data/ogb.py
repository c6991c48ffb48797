"""OGB knowledge graphs (``ogbl-biokg``, ``ogbl-wikikg2``) through the ``ogb`` package's own readers.

:func:`kg_from_ogb` converts OGB's in-memory format, the graph dict of ``ogb.io.read_graph_raw``
(``edge_index_dict`` / ``num_nodes_dict`` / ``edge_reltype`` for typed graphs, ``edge_index`` /
``num_nodes`` / ``edge_reltype`` otherwise) and the split dict of ``get_edge_split()`` (``head``,
``relation``, ``tail`` and, for ``ogbl-biokg``, ``head_type`` / ``tail_type`` per triple, local ids per
type), into a typed :class:`KnowledgeGraph`: node types in sorted order, each a contiguous block of
global ids, so ``kg.local_id`` / ``kg.global_id`` give back OGB's per-type ids.

Two traps of ogb 1.3.6 that users never meet here:

* ``LinkPropPredDataset`` reloads its processed pickle with ``torch.load``, which fails under torch>=2.6
  (``weights_only=True`` by default). We never build that pickle: the raw CSV files are read with ogb's
  ``read_csv_heterograph_raw`` / ``read_csv_graph_raw`` and cached as safetensors + JSON like every
  dataset; the split files are read with ``weights_only=True`` (plus numpy's array types where needed).
* It asks ``Will you update the dataset now? (y/N)`` on stdin when its folder lacks ``RELEASE_v1.txt``.
  We never construct ``LinkPropPredDataset``: downloads go through ``ogb.utils.url.download_url`` and
  ``extract_zip`` directly, and an existing folder is read as it is.

OGB's 500 sampled negatives per valid/test triple are not kept: gnnlm ranks against all entities.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gnnlm.data.build import POLICIES
from gnnlm.data.dataset import Dataset
from gnnlm.data.errors import DataError, DatasetNotFoundError
from gnnlm.data.schema import SPLITS
from gnnlm.data.sources import Location, cache_dir, searched_locations
from gnnlm.data.vocab import Vocabulary

if TYPE_CHECKING:  # numpy and torch are imported when a graph is built, not with the registry
    from torch import Tensor

    from gnnlm.data.knowledge_graph import KnowledgeGraph


def _as_long(value, what: str) -> Tensor:
    import numpy as np
    import torch

    tensor = torch.as_tensor(np.asarray(value)).reshape(-1)
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise DataError(f"{what}: expected integer ids, got {tensor.dtype}")
    return tensor.long()


def kg_from_ogb(
    graph: Mapping,
    split_edge: Mapping[str, Mapping],
    *,
    name: str,
    relation_names: Sequence[str] | None = None,
    entity_names: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    unseen: str = "keep",
    duplicates: str = "keep",
) -> KnowledgeGraph:
    """Convert OGB's graph dict and split dict into a :class:`KnowledgeGraph`.

    Args:
        graph: OGB's graph dict (``num_nodes_dict`` for typed graphs, ``num_nodes`` otherwise;
            ``edge_reltype`` (per triplet for typed graphs) names relations when given).
        split_edge: ``{"train": {"head", "relation", "tail"[, "head_type", "tail_type"]}, "valid": ...,
            "test": ...}`` with ``[n]`` tensors/arrays and, for typed graphs, ``[n]`` lists of type names.
        name: the dataset name.
        relation_names: names per relation id; default: from ``edge_reltype`` (typed graphs: the
            relation part of the triplet key) else ``"r{id}"``.
        entity_names: per type (typed) or global, names by local id; default ``"{type}/{local id}"``
            (typed) or ``"{id}"``.
        unseen: ``keep`` / ``drop`` / ``error`` for valid/test triples with an entity never in train.
        duplicates: ``keep`` / ``drop`` / ``error`` for repeated triples.

    Raises:
        DataError: a split missing a key, an unknown node type, or an id out of range; the message
            names the split, the position and the value.
    """
    import numpy as np
    import torch

    from gnnlm.data.knowledge_graph import KnowledgeGraph

    typed = "num_nodes_dict" in graph
    if typed:
        num_nodes = {
            k: int(np.asarray(v).reshape(-1)[0]) for k, v in graph["num_nodes_dict"].items()
        }
        node_types = sorted(num_nodes)
    else:
        node_types = ["entity"]
        num_nodes = {"entity": int(graph["num_nodes"])}
    sizes = torch.tensor([num_nodes[t] for t in node_types])
    offset = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])  # [num_types + 1]
    type_index = {t: k for k, t in enumerate(node_types)}
    num_entities = int(offset[-1])

    # relations: names from edge_reltype when OGB gives it
    reltype_names: dict[int, str] = {}
    reltype = graph.get("edge_reltype")
    if typed and isinstance(reltype, Mapping):
        for triplet, ids in reltype.items():
            for rid in np.unique(np.asarray(ids)).tolist():
                reltype_names.setdefault(int(rid), str(triplet[1]))

    splits: dict[str, Tensor] = {}
    for split in SPLITS:
        if split not in split_edge:
            continue
        part = split_edge[split]
        for key in ("head", "relation", "tail") + (("head_type", "tail_type") if typed else ()):
            if key not in part:
                raise DataError(f"{name}: split {split!r} has no {key!r} (keys: {sorted(part)})")
        ids = {}
        for side in ("head", "tail"):
            local = _as_long(part[side], f"{name}/{split}/{side}")
            if typed:
                types = list(part[f"{side}_type"])
                if len(types) != len(local):
                    raise DataError(
                        f"{name}/{split}: {len(types)} {side}_type entries for {len(local)} {side}s"
                    )
                try:
                    type_ids = torch.tensor([type_index[t] for t in types], dtype=torch.long)
                except KeyError as err:
                    raise DataError(
                        f"{name}/{split}/{side}_type: unknown node type {err.args[0]!r} "
                        f"(num_nodes_dict has {node_types})"
                    ) from None
            else:
                type_ids = torch.zeros_like(local)
            bad = (local < 0) | (local >= sizes[type_ids])
            if bool(bad.any()):
                i = int(bad.nonzero()[0])
                t = node_types[int(type_ids[i])]
                raise DataError(
                    f"{name}/{split}/{side}[{i}]: id {int(local[i])} out of range for node type "
                    f"{t!r} with {num_nodes[t]} nodes"
                )
            ids[side] = local + offset[type_ids]  # [n] global ids
        relation = _as_long(part["relation"], f"{name}/{split}/relation")
        if len(relation) != len(ids["head"]) or len(ids["tail"]) != len(ids["head"]):
            raise DataError(f"{name}/{split}: head, relation and tail differ in length")
        splits[split] = torch.stack([ids["head"], relation, ids["tail"]], dim=1)  # [n, 3]

    all_rel = torch.cat([s[:, 1] for s in splits.values()])
    if relation_names is None:
        count = int(all_rel.max()) + 1 if len(all_rel) else 0
        if reltype_names:
            count = max(count, max(reltype_names) + 1)
        elif isinstance(reltype, np.ndarray | torch.Tensor) and len(reltype):
            count = max(count, int(np.asarray(reltype).max()) + 1)
        relation_names = [reltype_names.get(i, f"r{i}") for i in range(count)]
    if len(all_rel) and (int(all_rel.min()) < 0 or int(all_rel.max()) >= len(relation_names)):
        raise DataError(
            f"{name}: relation id {int(all_rel.max())} out of range for "
            f"{len(relation_names)} relations"
        )

    if entity_names is None:
        names = (
            [f"{t}/{i}" for t in node_types for i in range(num_nodes[t])]
            if typed
            else [str(i) for i in range(num_entities)]
        )
    elif isinstance(entity_names, Mapping):
        names = [f"{t}/{n}" for t in node_types for n in entity_names[t]]
    else:
        names = list(entity_names)
    if len(names) != num_entities:
        raise DataError(f"{name}: {len(names)} entity names for {num_entities} entities")

    splits, report = apply_policies(splits, num_entities, unseen=unseen, duplicates=duplicates)
    entity_type = torch.repeat_interleave(torch.arange(len(node_types)), sizes)  # [num_entities]
    return KnowledgeGraph(
        Vocabulary(names),
        Vocabulary(relation_names),
        splits,
        name=name,
        node_types=node_types,
        entity_type=entity_type,
        extra=report,
    )


def apply_policies(
    splits: dict[str, Tensor], num_entities: int, *, unseen: str, duplicates: str
) -> tuple[dict[str, Tensor], dict]:
    """The ``unseen`` / ``duplicates`` policies of :func:`~gnnlm.data.build.build_knowledge_graph`,
    vectorised over id triples; returns the filtered splits and the same report keys."""
    import torch

    for option, value in (("unseen", unseen), ("duplicates", duplicates)):
        if value not in POLICIES:
            raise ValueError(f"{option}={value!r}: expected one of {', '.join(POLICIES)}")
    report: dict = {
        "source_lines": {s: len(t) for s, t in splits.items()},
        "unseen_triples": {},
        "duplicate_triples": {},
        "overlapping_triples": {},
        "dropped_triples": {},
        "unseen_policy": unseen,
        "duplicates_policy": duplicates,
    }
    train = splits["train"]
    in_train = torch.zeros(num_entities, dtype=torch.bool)
    in_train[train[:, [0, 2]].reshape(-1)] = True
    train_rel = set(train[:, 1].unique().tolist())
    num_rel = int(max((int(s[:, 1].max()) + 1 for s in splits.values() if len(s)), default=1))
    seen = torch.empty(0, dtype=torch.long)  # sorted keys of earlier splits
    out = {}
    for split, triples in splits.items():
        keep = torch.ones(len(triples), dtype=torch.bool)
        if split != "train":
            rel_ok = torch.tensor(
                [r in train_rel for r in triples[:, 1].tolist()], dtype=torch.bool
            )
            bad = ~(in_train[triples[:, 0]] & in_train[triples[:, 2]] & rel_ok)
            report["unseen_triples"][split] = int(bad.sum())
            if unseen == "error" and bool(bad.any()):
                i = int(bad.nonzero()[0])
                raise DataError(
                    f"{split}[{i}]: triple {triples[i].tolist()} has an entity or relation never "
                    f"seen in train"
                )
            if unseen == "drop":
                keep &= ~bad
        key = (triples[:, 0] * num_rel + triples[:, 1]) * num_entities + triples[:, 2]  # [n]
        # repeats within the split: every occurrence after the first
        order = torch.argsort(key, stable=True)
        sorted_key = key[order]
        repeat = torch.zeros(len(key), dtype=torch.bool)
        repeat[order[1:]] = sorted_key[1:] == sorted_key[:-1]
        pos = torch.searchsorted(seen, key).clamp(max=max(len(seen) - 1, 0))
        earlier = seen[pos] == key if len(seen) else torch.zeros_like(repeat)
        report["duplicate_triples"][split] = int((repeat & ~earlier).sum())
        if split != "train":
            report["overlapping_triples"][split] = int(earlier.sum())
        dup = repeat | earlier
        if duplicates == "error" and bool(dup.any()):
            i = int(dup.nonzero()[0])
            raise DataError(f"{split}[{i}]: duplicate triple {triples[i].tolist()}")
        if duplicates == "drop":
            keep &= ~dup
        report["dropped_triples"][split] = int((~keep).sum())
        seen = torch.cat([seen, key]).unique()
        out[split] = triples[keep]
    return out, report


# -- files -----------------------------------------------------------------------------------------
def load_split_file(path: Path) -> dict:
    """An OGB split file (``train.pt`` ...) read with ``weights_only=True`` (numpy arrays allowed)."""
    import numpy as np
    import torch

    try:
        return torch.load(path, weights_only=True)
    except Exception as first:  # noqa: BLE001 - retry with numpy's array types allow-listed
        try:
            from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined]
        except ImportError:  # numpy >= 2 keeps it under _core
            from numpy._core.multiarray import _reconstruct  # type: ignore[no-redef]
        allowed = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.int64))]
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001
            raise DataError(f"{path}: cannot read the OGB split file safely: {first}") from first


def _read_mapping(path: Path) -> list[str] | None:
    """Second column of an OGB ``mapping/*.csv.gz`` file, ordered by its first column."""
    if not path.is_file():
        return None
    import pandas as pd

    df = pd.read_csv(path)
    df = df.sort_values(df.columns[0])
    if df.iloc[:, 0].tolist() != list(range(len(df))):
        return None  # not an index -> name file; keep OGB's ids as names
    names = [str(x) for x in df.iloc[:, 1].tolist()]
    if len(set(names)) != len(names):
        return None  # names must identify entities; keep OGB's ids instead
    return names


class OGBLinkDataset(Dataset):
    """Base of the OGB link-property-prediction KGs (``ogbl-biokg``, ``ogbl-wikikg2``)."""

    ogb_name: str = ""

    def _meta(self):
        import pandas as pd
        from ogb import linkproppred

        master = Path(linkproppred.__file__).parent / "master.csv"
        return pd.read_csv(master, index_col=0, keep_default_na=False)[self.ogb_name]

    def folder_name(self) -> str:
        return self.ogb_name.replace("-", "_")

    def split_file(self, split: str) -> str:
        return f"split/{self._meta()['split']}/{split}.pt"

    def split_dir(self, folder: Path) -> Path:
        return folder / "split" / self._meta()["split"]

    def source_files(self, folder: Path) -> dict[str, Path]:
        files = {}
        for sub in ("raw", "split", "mapping"):
            root = folder / sub
            if root.is_dir():
                for path in sorted(root.rglob("*")):
                    if path.is_file():
                        files[str(path.relative_to(folder))] = path
        return files

    def fetch(self, data_dir: str | os.PathLike | None = None) -> Location:
        location = self.locate(data_dir)
        if location is not None:
            return location
        if not self.download:
            searched = "; ".join(searched_locations(self.folder_name(), data_dir))
            raise DatasetNotFoundError(f"{self.name}: not found in {searched} (download=False)")
        return self._download()

    def _download(self) -> Location:
        """OGB's zip via ``ogb.utils.url`` (no stdin prompt), unpacked into the user cache."""
        from ogb.utils.url import download_url, extract_zip

        meta = self._meta()
        final = cache_dir() / "datasets" / self.folder_name()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder_name()}-", dir=final.parent))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                path = download_url(meta["url"], str(tmp))
                extract_zip(path, str(tmp))
            os.unlink(path)
            os.replace(tmp / meta["download_name"], final)
        except Exception as err:
            raise DatasetNotFoundError(
                f"{self.name}: not found locally "
                f"({'; '.join(searched_locations(self.folder_name()))}) and the download of "
                f"{meta['url']} failed: {err}"
            ) from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Location(final, "download")

    def read(self, folder: Path) -> KnowledgeGraph:
        from ogb.io.read_graph_raw import read_csv_graph_raw, read_csv_heterograph_raw

        meta = self._meta()
        extra_edges = (
            []
            if meta["additional edge files"] == "None"
            else meta["additional edge files"].split(",")
        )
        reader = read_csv_heterograph_raw if meta["is hetero"] == "True" else read_csv_graph_raw
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                graph = reader(
                    str(folder / "raw"), add_inverse_edge=False, additional_edge_files=extra_edges
                )[0]
        except (RuntimeError, FileNotFoundError) as err:
            raise DataError(f"{folder / 'raw'}: not a complete OGB raw folder ({err})") from err
        split_dir = self.split_dir(folder)
        if (split_dir / "split_dict.pt").is_file():
            split_edge = load_split_file(split_dir / "split_dict.pt")
        else:
            split_edge = {}
            for s in SPLITS:
                if not (split_dir / f"{s}.pt").is_file():
                    raise DatasetNotFoundError(f"{split_dir / f'{s}.pt'}: file not found")
                split_edge[s] = load_split_file(split_dir / f"{s}.pt")
        return kg_from_ogb(
            graph,
            split_edge,
            name=self.name,
            relation_names=self.relation_names(folder),
            entity_names=self.entity_names(folder, graph),
            unseen=self.unseen,
            duplicates=self.duplicates,
        )

    def relation_names(self, folder: Path) -> list[str] | None:
        return None

    def entity_names(self, folder: Path, graph: Mapping):
        return None


class OGBLBioKGDataset(OGBLinkDataset):
    """``ogbl-biokg`` (Hu et al. 2020): 5 node types, 51 relations, typed per-type ids."""

    name = "ogbl-biokg"
    folder = "ogbl_biokg"
    ogb_name = "ogbl-biokg"
    description = "OGB biomedical KG, 5 node types (through ogb's readers)"
    required = ("raw/num-node-dict.csv.gz", "raw/triplet-type-list.csv.gz")
    published = {
        "num_entities": 93773,
        "num_relations": 51,
        "num_train": 4762678,
        "num_valid": 162886,
        "num_test": 162870,
    }

    def relation_names(self, folder: Path) -> list[str] | None:
        return _read_mapping(folder / "mapping" / "relidx2relname.csv.gz")

    def entity_names(self, folder: Path, graph: Mapping):
        names = {}
        for t in graph["num_nodes_dict"]:
            mapped = _read_mapping(folder / "mapping" / f"{t}_entidx2name.csv.gz")
            if mapped is None:
                return None
            names[t] = mapped
        return names


class OGBLWikiKG2Dataset(OGBLinkDataset):
    """``ogbl-wikikg2`` (Hu et al. 2020): Wikidata, 2.5M entities, 535 relations, time split."""

    name = "ogbl-wikikg2"
    folder = "ogbl_wikikg2"
    ogb_name = "ogbl-wikikg2"
    description = "OGB Wikidata KG, 2.5M entities (through ogb's readers)"
    required = ("raw/edge.csv.gz", "raw/num-node-list.csv.gz")
    published = {
        "num_entities": 2500604,
        "num_relations": 535,
        "num_train": 16109182,
        "num_valid": 429456,
        "num_test": 598543,
    }

    def relation_names(self, folder: Path) -> list[str] | None:
        return _read_mapping(folder / "mapping" / "reltype2relid.csv.gz")

    def entity_names(self, folder: Path, graph: Mapping):
        return _read_mapping(folder / "mapping" / "nodeidx2entityid.csv.gz")
