from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA = os.environ.get("GNNLM_DATA_DIR")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every data test gets its own user cache, never ``~/.cache/gnnlm``."""
    path = tmp_path_factory.mktemp("gnnlm-cache")
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(path))
    return path


def shared_real_cache(tmp_path_factory) -> Path:
    """One processed-graph cache per test session for the real datasets (each parsed once)."""
    path = tmp_path_factory.getbasetemp() / "real-data-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def real_data_dir(tmp_path_factory, monkeypatch, isolated_cache) -> Path:
    if not REAL_DATA or not Path(REAL_DATA).is_dir():
        pytest.skip("GNNLM_DATA_DIR is not set")
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(shared_real_cache(tmp_path_factory)))
    return Path(REAL_DATA)


def write_split_files(folder: Path, splits: dict[str, list[tuple[str, str, str]]]) -> Path:
    """A ConvE-format folder: ``{split}.txt`` with ``head<TAB>relation<TAB>tail`` lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows))
    return folder


#: a tiny KG: 5 entities in train, "e" only in test, one duplicate in train, one test triple in train
TINY = {
    "train": [
        ("a", "likes", "b"),
        ("b", "likes", "c"),
        ("c", "hates", "a"),
        ("a", "likes", "b"),
        ("d", "hates", "b"),
    ],
    "valid": [("a", "hates", "c")],
    "test": [("b", "likes", "e"), ("c", "hates", "a")],
}
