"""The base class of every registered dataset: locate files, read them once, cache the result."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import time
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from gnnlm.data import cache
from gnnlm.data.build import POLICIES, Policy, RawTriples
from gnnlm.data.errors import DataError, DataFormatError, DatasetNotFoundError
from gnnlm.data.sources import (
    Download,
    Location,
    download,
    file_signature,
    find_local,
    searched_locations,
)

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph


class Dataset(ABC):
    """A named knowledge graph: where its files live, how they parse, what it should contain.

    Subclasses set the class attributes and implement :meth:`read`. ``load_dataset(name)`` finds the
    class through :data:`gnnlm.data.dataset_resolver`; a user's subclass is found by name only after
    ``dataset_resolver.register(MyDataset)``.

    Args:
        unseen: valid/test triples whose entity or relation never occurs in train: ``"keep"``
            (default; the published statistics count every entity of every split), ``"drop"``, or
            ``"error"``. The count is always in ``kg.extra["unseen_triples"]``.
        duplicates: triples repeating one of their own or an earlier split: ``"keep"`` (default),
            ``"drop"`` or ``"error"``; counts in ``kg.extra["duplicate_triples"]`` and
            ``kg.extra["overlapping_triples"]``.
        verify: check the files against the dataset's published statistics and identifier shape, so
            a folder holding another dataset is an error rather than a silently wrong graph.
        download: allow downloading from the canonical URL when no local copy exists.
        cache: reuse (and write) the processed graph in the user cache.
    """

    #: registry name, as ``load_dataset`` and the CLI spell it
    name: ClassVar[str]
    #: folder name under a data root
    folder: ClassVar[str]
    #: one line for ``gnnlm datasets``
    description: ClassVar[str] = ""
    #: files that must be present, relative to the dataset folder
    required: ClassVar[tuple[str, ...]] = ("train.txt", "valid.txt", "test.txt")
    #: files read when present (text)
    optional: ClassVar[tuple[str, ...]] = ()
    #: published statistics (``num_entities``, ``num_relations``, ``num_train``, ...), checked
    #: when ``verify`` is on
    published: ClassVar[dict[str, int] | None] = None
    #: regular expression every entity identifier of the training file must match (``verify``)
    entity_pattern: ClassVar[str | None] = None
    #: alternative registry names
    synonyms: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        unseen: Policy = "keep",
        duplicates: Policy = "keep",
        verify: bool = True,
        download: bool = True,
        cache: bool = True,
    ) -> None:
        for option, value in (("unseen", unseen), ("duplicates", duplicates)):
            if value not in POLICIES:
                raise ValueError(f"{option}={value!r}: expected one of {', '.join(POLICIES)}")
        self.unseen = unseen
        self.duplicates = duplicates
        self.verify = verify
        self.download = download
        self.cache = cache

    # -- what subclasses provide -----------------------------------------------------------------
    @abstractmethod
    def read(self, folder: Path) -> KnowledgeGraph:
        """Parse the files in ``folder`` into a graph (strictly; errors name file and line)."""

    def downloads(self) -> list[Download]:
        """The canonical public files, for a download into the user cache."""
        return []

    def options(self) -> dict:
        """Every option that changes the processed graph (part of the cache key)."""
        return {"unseen": self.unseen, "duplicates": self.duplicates, "verify": self.verify}

    def folder_name(self) -> str:
        """The folder that holds this dataset's files (some options pick a sub-folder)."""
        return self.folder

    def required_files(self) -> tuple[str, ...]:
        return self.required

    def optional_files(self) -> tuple[str, ...]:
        return self.optional

    # -- resolution, caching ---------------------------------------------------------------------
    def locate(self, data_dir: str | os.PathLike | None = None) -> Location | None:
        """Where the files are, without downloading; ``None`` when no local copy exists."""
        return find_local(self.folder_name(), self.required_files(), data_dir)

    def fetch(self, data_dir: str | os.PathLike | None = None) -> Location:
        """Where the files are, downloading them into the user cache when needed and allowed."""
        location = self.locate(data_dir)
        if location is not None:
            return location
        searched = "; ".join(searched_locations(self.folder_name(), data_dir))
        files = self.downloads()
        if not self.download or not files:
            why = "download=False" if files else "no public download is known"
            raise DatasetNotFoundError(
                f"{self.name}: not found in {searched} ({why}). Set $GNNLM_DATA_DIR to a folder "
                f"holding {self.folder_name()}/ or pass data_dir=."
            )
        return download(self.folder_name(), files, name=self.name)

    def source_files(self, folder: Path) -> dict[str, Path]:
        """The files the graph is built from (present ones), for the cache key."""
        names = list(self.required_files()) + list(self.optional_files())
        return {n: folder / n for n in names if (folder / n).is_file()}

    def cache_key(self, location: Location) -> str:
        """The processed-cache key of the files at ``location`` with these options."""
        return cache.cache_key(
            self.name,
            {**self.options(), "path": str(location.path.resolve())},
            file_signature(self.source_files(location.path)),
        )

    def summary(self, data_dir: str | os.PathLike | None = None) -> dict | None:
        """:meth:`KnowledgeGraph.summary` of the cached graph, read without building the graph (or
        importing torch); ``None`` when the processed cache has no entry for the current files and
        options (then :meth:`load` is the way). Never downloads."""
        if not self.cache:
            return None
        start = time.perf_counter()
        location = self.locate(data_dir)
        if location is None:
            return None
        info = cache.load_summary(self.name, self.cache_key(location))
        if info is not None:
            info.update(
                path=str(location.path),
                source=location.source,
                from_cache=True,
                load_seconds=round(time.perf_counter() - start, 4),
            )
        return info

    def load(self, data_dir: str | os.PathLike | None = None) -> KnowledgeGraph:
        """Resolve, read (or reuse the processed cache), verify and return the graph."""
        location = self.fetch(data_dir)
        start = time.perf_counter()
        key = self.cache_key(location)
        with _gc_paused():  # parsing allocates millions of small objects that all survive
            kg = cache.load(self.name, key) if self.cache else None
            from_cache = kg is not None
            if kg is None:
                kg = self.read(location.path)
                if self.verify:
                    self.check_published(kg, location.path)
                if self.cache:
                    try:
                        cache.save(kg, self.name, key)
                    except OSError as err:  # a read-only home must not stop loading
                        warnings.warn(f"not caching the processed {self.name}: {err}", stacklevel=2)
        kg.extra.update(
            path=str(location.path),
            source=location.source,
            from_cache=from_cache,
            load_seconds=round(time.perf_counter() - start, 4),
        )
        return kg

    # -- verification ----------------------------------------------------------------------------
    def check_identifiers(self, raw: RawTriples) -> None:
        """Raise if the first training triple's entities do not look like this dataset's ids."""
        if not (self.verify and self.entity_pattern and raw.triples):
            return
        pattern = re.compile(self.entity_pattern)
        for value in (raw.triples[0][0], raw.triples[0][2]):
            if not pattern.fullmatch(value):
                raise DataFormatError(
                    raw.path,
                    raw.lines[0],
                    f"not a {self.name} entity identifier (expected {self.entity_pattern}); this "
                    f"folder holds another dataset (verify=False loads it anyway)",
                    value,
                )

    def check_published(self, kg: KnowledgeGraph, folder: Path) -> None:
        """Raise if the files do not have the published number of lines / entities / relations."""
        if not self.published:
            return
        lines = kg.extra.get("source_lines", {})
        for split in ("train", "valid", "test"):
            expected = self.published.get(f"num_{split}")
            found = lines.get(split)
            if expected is not None and found is not None and found != expected:
                raise DataFormatError(
                    folder / self.split_file(split),
                    None,
                    f"{found} triples where {self.name} has {expected} in its published {split} "
                    f"split; this folder holds another dataset or a modified copy (verify=False "
                    f"loads it anyway)",
                )
        if self.unseen == "keep" and self.duplicates == "keep":
            for key in ("num_entities", "num_relations"):
                expected, found = self.published.get(key), kg.statistics()[key]
                if expected is not None and expected != found:
                    raise DataError(
                        f"{folder}: {found} {key[4:]} where {self.name} has {expected} "
                        f"(verify=False loads it anyway)"
                    )

    def split_file(self, split: str) -> str:
        return f"{split}.txt"

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: its full passes over the growing heap of parsed strings
    and tuples cost more than the parsing itself (the objects are all kept anyway)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
