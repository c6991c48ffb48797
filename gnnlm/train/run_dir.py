"""The run directory of one training: an exclusive lock, the refuse / resume / overwrite rule, and cleanup.

A run directory belongs to one training at a time. :func:`open_run_dir` (used by
:meth:`~gnnlm.train.Trainer.fit`) takes an ``fcntl.flock`` on ``RUN_DIR/.gnnlm.lock`` for the whole run. The
kernel drops the lock when the process exits, however it exits (``kill -9`` included), so a lock is never
stale; the file only records who holds it (pid, host, command, start time) for the error a second writer
gets.

While holding the lock it

* refuses a directory that already holds files unless ``resume`` (continue it) or ``overwrite`` (delete
  the previous run's files, :data:`RUN_FILES`, first; other files are left alone) is given;
* removes temporary files that an interrupted atomic write left behind
  (``.checkpoint.safetensors.*.tmp`` and the like, see :func:`~gnnlm.train.checkpoint.atomic_write`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gnnlm.train.checkpoint import CheckpointError

LOCK_NAME = ".gnnlm.lock"
#: what a training writes into its run directory (``--overwrite`` deletes exactly these).
RUN_FILES = (
    "config.yaml",
    "metrics.csv",
    "log.jsonl",
    "checkpoint.safetensors",
    "metrics.json",
    "init_from.json",
    "model",
    "tensorboard",
    "comparison.json",
    "comparison.md",
    "runs",
    "pretraining",
)
#: files written atomically in a run directory or its ``model/``.
_ATOMIC_FILES = (*RUN_FILES, "config.json", "model.safetensors", "vocab.json")
#: ``atomic_write``'s temporary names: ``.<target name>.<random>.tmp`` (only for our own files).
_TMP_PATTERN = re.compile(
    r"^\.(?:" + "|".join(re.escape(name) for name in _ATOMIC_FILES) + r")\.[A-Za-z0-9_]+\.tmp$"
)


class RunDirError(CheckpointError):
    """A run directory that cannot be used: in use by another process, or holding an earlier run."""


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (no holder recorded)"
    return (
        f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')} "
        f"({info.get('command')})"
    )


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created if missing) for the ``with`` block.

    Raises:
        RunDirError: another process (or another open trainer in this one) holds the lock; the message
            names its pid, host and command.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # no flock on this platform (Windows): run without a lock
        yield lock_path
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(
                f"{run_dir} is in use by {_holder(lock_path)}; wait for it to finish or choose "
                "another --out"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv)[:200],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        try:
            yield lock_path
        finally:
            os.ftruncate(fd, 0)  # the holder record goes with the lock
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def remove_stale_tmp_files(run_dir: str | Path) -> list[Path]:
    """Delete temporary files of interrupted atomic writes in ``run_dir`` and ``run_dir/model``.

    Only call this while holding :func:`run_dir_lock` (a running writer's temporary file is not stale).

    Returns:
        the removed paths.
    """
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "model"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and _TMP_PATTERN.match(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def run_dir_contents(run_dir: str | Path) -> list[str]:
    """Names in ``run_dir`` other than the lock file and stale temporary files, sorted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(
        p.name for p in run_dir.iterdir() if p.name != LOCK_NAME and not _TMP_PATTERN.match(p.name)
    )


def prepare_run_dir(run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
    """Apply the refuse / resume / overwrite rule to a locked ``run_dir`` and remove stale temp files.

    Raises:
        RunDirError: ``run_dir`` holds files and neither ``resume`` nor ``overwrite`` is set, or both are.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise RunDirError("resume and overwrite exclude each other: continue the run or replace it")
    remove_stale_tmp_files(run_dir)
    contents = run_dir_contents(run_dir)
    if contents and not (resume or overwrite):
        shown = ", ".join(contents[:5]) + (", ..." if len(contents) > 5 else "")
        raise RunDirError(
            f"{run_dir} is not empty ({shown}); continue that run with --resume, replace it with "
            "--overwrite, or choose another --out"
        )
    if overwrite:
        for name in RUN_FILES:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def open_run_dir(
    run_dir: str | Path, *, resume: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """Lock ``run_dir``, check it with :func:`prepare_run_dir`, and hold the lock for the block."""
    with run_dir_lock(run_dir):
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
        yield Path(run_dir)
