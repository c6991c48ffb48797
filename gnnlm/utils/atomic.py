"""Atomic file writes: a reader sees the old file or the complete new one, never half of either.

The one implementation every stage uses (checkpoints, run logs, the processed-data cache, saved
models, benchmark results). The new content goes to a temporary file next to the target
(``.<name>.<random>.tmp``, the pattern :mod:`gnnlm.train.run_dir` sweeps after a crash), is flushed to
disk (``fsync``), renamed onto the target with :func:`os.replace` (atomic on POSIX and Windows), and the
folder is synced so the rename itself survives a power cut. Only the standard library is imported.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it onto ``path``.

    Either the old file or the complete new file exists at every moment; if ``write`` raises, the
    temporary file is removed and ``path`` is untouched. Missing parent folders are created.

    Args:
        path: the target file.
        write: writes the whole content to the path it is given (e.g.
            ``lambda tmp: save_file(tensors, tmp)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> None:
    """Atomically replace ``path`` with ``obj`` as JSON (``indent=2`` and a final newline by default).

    Args:
        path: the target file.
        obj: a JSON-serialisable value.
        **dumps_kwargs: ``json.dumps`` options (``sort_keys=True``, ``indent=None``, ...).
    """
    atomic_write_text(path, json.dumps(obj, **{"indent": 2, **dumps_kwargs}) + "\n")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
