"""Embedding tables in memory-mapped files, for KGs whose tables do not fit in RAM.

:class:`MemmapRepresentation` is an :class:`~gnnlm.kge.representation.EmbeddingRepresentation` whose
two weights live in files (``numpy.memmap``, ``MAP_SHARED``) instead of anonymous memory: the operating
system pages rows in when they are read and writes them back when they are changed, so a table larger
than RAM trains as long as the rows of a batch fit. With row-sparse updates
(``training.sparse_updates``, :mod:`gnnlm.train.sparse`) a step reads the batch's rows
(:meth:`~EmbeddingRepresentation.gather` with ``sparse=True``) and the optimizer writes only those
rows back (``index_add_``); nothing walks the whole table. Dense training, full 1-N scoring and
evaluation against every entity do read every page: they work, at the speed of the disk.

The parameters are ordinary ``nn.Parameter``\\ s over the mapped memory and carry the same names as
the in-RAM table's (``entity.weight``, ``relation.weight``), so a ``state_dict`` moves between the
two and the usual safetensors checkpoints work (for tables that fit in RAM: safetensors serialises
in memory). :meth:`MemmapRepresentation.save` / :meth:`MemmapRepresentation.open` copy and reopen the
files themselves, streaming, with a JSON header (no pickle).

**Optimizer state.** ``RowAdagrad`` and ``LazyAdam`` keep one (two) full-size state tensors per table
in RAM; ``RowSGD`` keeps none. For a table that does not fit in RAM use ``sgd``, or pre-fill the
optimizer's state with file-backed tensors (``optimizer.state[param] = {...}`` before the first step)
— or use a sharded table (below).

**The representation protocol.** Anything that plugs in where the embedding table sits (this class,
an external sharded table such as TorchRec's ``EmbeddingCollection`` on ``torch.distributed``, a
key-value store) implements :class:`~gnnlm.kge.model.Representation`:

* attributes ``num_entities`` and ``num_relations`` (``2 R`` for a reciprocal model);
* ``forward() -> (entity [num_entities, d_e], relation [num_relations, d_r])``: every row (used by
  dense training, 1-N scoring and the evaluator; a sharded table may gather them, or raise to say it
  supports only the row path);
* ``supports_row_gather: ClassVar[bool]`` and ``gather(entities [n], relations [m], *, sparse) ->
  (entity [n, d_e], relation [m, d_r])``: the rows of a batch; with ``sparse=True`` the gradient that
  reaches the table must be row-sparse (a coalesced sparse COO tensor, as
  :func:`~gnnlm.kge.representation.sparse_gather` gives) or be applied by the table itself (a
  sharded table's fused optimizer: then the table's weights are not in ``model.parameters()``);
* ``post_step()``: called after every optimizer step (constraints on the rows that moved);
* ``state_dict`` / ``load_state_dict`` of plain tensors (checkpoints are safetensors, never pickles).

A representation is passed to :func:`gnnlm.kge.build_kge_model` (``representation=``) and found by
name in :data:`gnnlm.kge.representation.representation_resolver` (``"memmap"`` once this module is
imported; ``"gnnlm.kge.mmap:MemmapRepresentation"`` always).

Example:
    >>> from gnnlm.kge import build_kge_model, resolve_interaction
    >>> inter = resolve_interaction("transe")
    >>> table = MemmapRepresentation.for_interaction(inter, 1000, 4, 16, directory=tmp)  # doctest: +SKIP
    >>> model = build_kge_model(inter, 1000, 4, 16, representation=table)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnnlm.kge.representation import (
    EmbeddingRepresentation,
    Initializer,
    representation_resolver,
)
from gnnlm.utils.atomic import atomic_write, atomic_write_json

__all__ = ["HEADER_NAME", "MemmapRepresentation", "default_directory"]

#: the header of a table folder: sizes and dtype (JSON); written last, so a folder without it is
#: an incomplete table.
HEADER_NAME = "table.json"
_FORMAT = "gnnlm-memmap-table-1"
_FILES = {"entity": "entity.f32", "relation": "relation.f32"}
_ROWS = {"entity": "num_entities", "relation": "num_relations"}


def default_directory() -> Path:
    """A fresh folder for a table under gnnlm's user cache (``<cache>/memmap/<pid>-<random>``).

    Tables are large: pass a folder in the run directory instead when the run should keep it.
    """
    from gnnlm.data.sources import cache_dir

    return cache_dir() / "memmap" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class MemmapRepresentation(EmbeddingRepresentation):
    """An entity and a relation table, each a ``float32`` file mapped into memory.

    Args:
        num_entities, num_relations, embedding_dim, entity_dim_factor, relation_dim_factor,
        entity_dim, relation_dim, entity_initializer, relation_initializer, entity_constrainer:
            as in :class:`~gnnlm.kge.representation.EmbeddingRepresentation` (the initializers run
            on the mapped tables, so the same seed gives the same values as the in-RAM table).
        directory: the folder of the table's files (created; default :func:`default_directory`).
        initialize: create (truncate) the files and initialise them; ``False`` opens existing files,
            whose header must match the sizes (see :meth:`open`).

    Files: ``entity.f32`` (``[num_entities, d_e]`` row-major float32), ``relation.f32``
    (``[num_relations, d_r]``), and ``table.json`` (:data:`HEADER_NAME`).
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int,
        *,
        directory: str | Path | None = None,
        initialize: bool = True,
        entity_dim_factor: int = 1,
        relation_dim_factor: int = 1,
        entity_dim: int | None = None,
        relation_dim: int | None = None,
        entity_initializer: Initializer | None = None,
        relation_initializer: Initializer | None = None,
        entity_constrainer: Initializer | None = None,
    ) -> None:
        # The parent builds its tables on the meta device: no memory and no random draws, so that
        # the initialisation below consumes the generator exactly as the in-RAM table's does.
        with torch.device("meta"):
            super().__init__(
                num_entities, num_relations, embedding_dim,
                entity_dim_factor=entity_dim_factor, relation_dim_factor=relation_dim_factor,
                entity_dim=entity_dim, relation_dim=relation_dim,
                entity_initializer=entity_initializer, relation_initializer=relation_initializer,
                entity_constrainer=entity_constrainer,
            )  # fmt: skip
        self.directory = Path(directory) if directory is not None else default_directory()
        header = {
            "format": _FORMAT,
            "dtype": "float32",
            "num_entities": num_entities,
            "num_relations": num_relations,
            "embedding_dim": embedding_dim,
            "entity_dim": self.entity.embedding_dim,
            "relation_dim": self.relation.embedding_dim,
        }
        if initialize:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / HEADER_NAME).unlink(missing_ok=True)  # incomplete until written
        else:
            _check_header(self.directory, header)
        mode = "w+" if initialize else "r+"
        self._arrays: dict[str, np.memmap] = {}
        for name in _FILES:
            rows, width = header[_ROWS[name]], header[f"{name}_dim"]
            array = np.memmap(self.directory / _FILES[name], np.float32, mode, shape=(rows, width))
            self._arrays[name] = array
            # _weight wraps the mapped memory (torch.from_numpy shares it): no copy, no allocation.
            setattr(self, name, nn.Embedding(rows, width, _weight=torch.from_numpy(array)))
        if initialize:
            # The in-RAM table's nn.Embedding modules draw a normal init that reset_parameters then
            # overwrites; drawing (and dropping) as many numbers here keeps the two tables equal for
            # the same seed, without a table-sized buffer.
            _skip_normal_draws(num_entities * self.entity.embedding_dim)
            _skip_normal_draws(num_relations * self.relation.embedding_dim)
            self.reset_parameters()
            self.flush()
            atomic_write_json(self.directory / HEADER_NAME, header)

    @classmethod
    def for_interaction(
        cls,
        interaction: Any,
        num_entities: int,
        num_relations: int,
        embedding_dim: int,
        **kwargs: Any,
    ) -> MemmapRepresentation:
        """The table :func:`gnnlm.kge.build_kge_model` would build in RAM for ``interaction`` (its
        widths, initialisers and constraint), in files. ``num_relations`` counts every scored relation
        (``2 R`` for a reciprocal model); ``kwargs`` go to the constructor (``directory``)."""
        entity_dim, relation_dim = interaction.representation_dims(embedding_dim)
        return cls(
            num_entities, num_relations, embedding_dim, entity_dim=entity_dim,
            relation_dim=relation_dim, entity_initializer=interaction.reset_entity_,
            relation_initializer=interaction.reset_relation_,
            entity_constrainer=(
                interaction.constrain_entity_ if interaction.constrains_entities else None
            ),
            **kwargs,
        )  # fmt: skip

    @classmethod
    def open(
        cls, directory: str | Path, *, entity_constrainer: Initializer | None = None
    ) -> MemmapRepresentation:
        """Reopen the table in ``directory`` (read-write), with the values last written there.

        Raises:
            FileNotFoundError: no (complete) table in ``directory``.
            ValueError: the header or the file sizes do not describe a table of this format.
        """
        header = _read_header(Path(directory))
        return cls(
            header["num_entities"], header["num_relations"], header["embedding_dim"],
            entity_dim=header["entity_dim"], relation_dim=header["relation_dim"],
            directory=directory, initialize=False, entity_constrainer=entity_constrainer,
        )  # fmt: skip

    def flush(self) -> None:
        """Write changed pages back to the files (``msync``); the OS also does it on its own."""
        for array in self._arrays.values():
            array.flush()

    def save(self, directory: str | Path) -> Path:
        """Copy the table to ``directory`` (streaming, file by file, each atomically; the header last):
        a checkpoint that :meth:`open` reads back, without pickle and without holding the table in
        RAM. Returns ``directory``."""
        directory = Path(directory)
        if directory.resolve() == self.directory.resolve():
            raise ValueError(f"{directory} is this table's own folder; save to another one")
        self.flush()
        for name in _FILES.values():
            atomic_write(
                directory / name, lambda tmp, n=name: shutil.copyfile(self.directory / n, tmp)
            )
        atomic_write_json(directory / HEADER_NAME, _read_header(self.directory))
        return directory

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, directory={str(self.directory)!r}"


def _skip_normal_draws(count: int, chunk: int = 2**16) -> None:
    """Advance the default generator as ``torch.empty(count).normal_()`` does, in bounded memory.

    CPU ``normal_`` fills blocks of 16 (a tensor under 16 elements takes another path), so chunks
    that are multiples of 16, the last one at least 16 long, consume the generator as one call does.
    """
    buffer = torch.empty(chunk + 16)
    start = 0
    while start < count:
        stop = min(start + chunk, count)
        if count - stop < 16:
            stop = count
        buffer[: stop - start].normal_()
        start = stop


def _read_header(directory: Path) -> dict[str, Any]:
    path = directory / HEADER_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no memmap table header (not a table folder, or its creation did not finish)"
        )
    try:
        header = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if header.get("format") != _FORMAT or header.get("dtype") != "float32":
        raise ValueError(
            f"{path}: format {header.get('format')!r} / dtype {header.get('dtype')!r} is not "
            f"{_FORMAT!r} / 'float32'"
        )
    for name, file in _FILES.items():
        rows, width = header[_ROWS[name]], header[f"{name}_dim"]
        size = (directory / file).stat().st_size if (directory / file).is_file() else None
        if size != 4 * rows * width:
            raise ValueError(
                f"{directory / file}: {size} bytes, expected {4 * rows * width} "
                f"({rows} x {width} float32)"
            )
    return header


def _check_header(directory: Path, expected: dict[str, Any]) -> None:
    header = _read_header(directory)
    wrong = {k: header.get(k) for k, v in expected.items() if header.get(k) != v}
    if wrong:
        raise ValueError(
            f"{directory / HEADER_NAME}: the table has "
            + ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            + "; expected "
            + ", ".join(f"{k}={expected[k]!r}" for k in wrong)
        )


representation_resolver.register(MemmapRepresentation, synonyms={"mmap"})
