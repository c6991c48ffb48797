"""Where dataset files come from: explicit folder, ``$GNNLM_DATA_DIR``, the user cache, a download.

Resolution order for a dataset whose folder name is ``folder``:

1. ``data_dir`` given explicitly (``load_dataset(..., data_dir=...)`` / ``--data-dir``): it must hold the
   dataset, as ``data_dir/folder`` or as the folder itself; nothing else is tried.
2. ``$GNNLM_DATA_DIR/folder``.
3. The user cache, ``$GNNLM_CACHE_DIR/datasets/folder`` (default ``~/.cache/gnnlm``, or
   ``$XDG_CACHE_HOME/gnnlm``).
4. A download from the dataset's canonical public URL into the user cache (written to a temporary
   folder first and moved into place when complete, so an interrupted download leaves nothing behind).

A location whose folder exists but lacks a required file is an error naming the missing file: a
half-copied dataset is never skipped silently.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gnnlm.data.errors import DatasetNotFoundError
from gnnlm.data.io import describe_missing

#: environment variable naming a folder that holds dataset folders (``fb15k-237/``, ``umls/``, ...)
DATA_DIR_ENV = "GNNLM_DATA_DIR"
#: environment variable overriding the user cache folder
CACHE_DIR_ENV = "GNNLM_CACHE_DIR"


def cache_dir() -> Path:
    """The user cache folder: ``$GNNLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/gnnlm``, else
    ``~/.cache/gnnlm``. Downloads go to ``datasets/``, processed graphs to ``processed/``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gnnlm"


@dataclass(frozen=True)
class Download:
    """A remote file: ``url`` saved as ``target`` (relative to the dataset folder), or, when
    ``member`` is given, ``url`` is a tar archive and its member ``member`` is saved as ``target``."""

    target: str
    url: str
    member: str | None = None


@dataclass(frozen=True)
class Location:
    """Where a dataset resolved: its folder and how it was found (``data_dir``, ``GNNLM_DATA_DIR``,
    ``cache`` or ``download``)."""

    path: Path
    source: str


def _holds(folder: Path, required: Sequence[str]) -> bool:
    """Whether ``folder`` is this dataset's folder: it must exist and hold every required file."""
    if not folder.is_dir():
        return False
    missing = [name for name in required if not (folder / name).is_file()]
    if not missing:
        return True
    for name in missing:  # a broken symbolic link or a folder in a file's place: say which
        if os.path.lexists(folder / name):
            raise DatasetNotFoundError(describe_missing(folder / name))
    present = [name for name in required if (folder / name).is_file()]
    if present:  # a partial copy: say what is missing rather than looking elsewhere
        raise DatasetNotFoundError(
            f"{folder / missing[0]}: file not found (the folder has "
            f"{', '.join(present)} but lacks {', '.join(missing)})"
        )
    return False


def find_local(
    folder: str, required: Sequence[str], data_dir: str | os.PathLike | None = None
) -> Location | None:
    """The first location holding the dataset, without downloading; ``None`` if there is none.

    Raises:
        DatasetNotFoundError: an explicit ``data_dir`` that does not hold the dataset, or a folder
            holding only some of the required files.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        # the root of all datasets, a parent folder (conceptnet/ for conceptnet/CN-100K), or the
        # dataset folder itself
        for candidate in dict.fromkeys((root / folder, root / Path(folder).name, root)):
            if _holds(candidate, required):
                return Location(candidate, "data_dir")
        raise DatasetNotFoundError(
            f"{root}: holds neither {folder}/{required[0]} nor {required[0]} "
            f"(data_dir was given explicitly, so no other location is tried)"
        )
    env = os.environ.get(DATA_DIR_ENV)
    if env and _holds(Path(env).expanduser() / folder, required):
        return Location(Path(env).expanduser() / folder, DATA_DIR_ENV)
    cached = cache_dir() / "datasets" / folder
    if _holds(cached, required):
        return Location(cached, "cache")
    return None


def searched_locations(folder: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The folders :func:`find_local` looks in, for messages."""
    if data_dir is not None:
        return [str(Path(data_dir) / folder)]
    out = []
    if os.environ.get(DATA_DIR_ENV):
        out.append(f"${DATA_DIR_ENV}/{folder} = {Path(os.environ[DATA_DIR_ENV]) / folder}")
    else:
        out.append(f"${DATA_DIR_ENV} (not set)")
    out.append(str(cache_dir() / "datasets" / folder))
    return out


def _fetch(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` (the one function that touches the network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def download(folder: str, files: Sequence[Download], *, name: str) -> Location:
    """Download a dataset's files into the user cache and return its folder.

    All files are fetched into a temporary folder next to the final one, which is moved into place
    with :func:`os.replace` only when every file arrived.

    Raises:
        DatasetNotFoundError: a file could not be downloaded (e.g. no network); the message names the
            URL and the locations searched before.
    """
    final = cache_dir() / "datasets" / folder
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=final.parent))
    try:
        archives: dict[str, Path] = {}
        for item in files:
            target = tmp / item.target
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                if item.member is None:
                    _fetch(item.url, target)
                    continue
                if item.url not in archives:
                    archives[item.url] = tmp / f".archive-{len(archives)}"
                    _fetch(item.url, archives[item.url])
                _extract_member(archives[item.url], item.member, target)
            except (urllib.error.URLError, OSError, tarfile.TarError) as err:
                raise DatasetNotFoundError(
                    f"{name}: not found locally ({'; '.join(searched_locations(folder))}) and the "
                    f"download of {item.url} failed: {err}. Set ${DATA_DIR_ENV} to a folder holding "
                    f"{folder}/, or pass data_dir=."
                ) from err
        for archive in archives.values():
            archive.unlink()
        if final.exists():  # another process finished first, or a partial copy: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Location(final, "download")


def _extract_member(archive: Path, member: str, target: Path) -> None:
    """Copy one member of a tar archive (matched by its path or its base name) to ``target``."""
    with tarfile.open(archive) as tar:
        names = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        found = names.get(member) or next(
            (m for n, m in names.items() if Path(n).name == member), None
        )
        if found is None:
            raise tarfile.TarError(f"{archive}: no member {member!r} (has {sorted(names)})")
        src = tar.extractfile(found)
        assert src is not None
        with src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)


def file_signature(paths: Mapping[str, Path]) -> dict[str, list[int]]:
    """``{name: [size, mtime_ns]}`` of source files, the part of a cache key that notices edits."""
    out = {}
    for key, path in sorted(paths.items()):
        stat = path.stat()
        out[key] = [stat.st_size, stat.st_mtime_ns]
    return out
