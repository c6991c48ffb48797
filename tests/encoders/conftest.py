from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA = os.environ.get("GNNLM_DATA_DIR")


@pytest.fixture(scope="session")
def encoder_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gnnlm-encoder-cache")


@pytest.fixture(autouse=True)
def isolated_cache(encoder_cache, monkeypatch):
    """Never write the user's ``~/.cache/gnnlm`` from a test (the CLI test loads UMLS itself)."""
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(encoder_cache))


@pytest.fixture(scope="session")
def umls(encoder_cache):
    if not REAL_DATA or not Path(REAL_DATA).is_dir():
        pytest.skip("GNNLM_DATA_DIR is not set")
    from gnnlm.data import load_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GNNLM_CACHE_DIR", str(encoder_cache))
        return load_dataset("umls")
