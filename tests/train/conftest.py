from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def load_real(tmp_path_factory):
    """``load_real(name)``: a benchmark KG from ``$GNNLM_DATA_DIR`` (skips when unset), cached per session."""
    data_dir = os.environ.get("GNNLM_DATA_DIR")
    if not data_dir or not Path(data_dir).is_dir():
        pytest.skip("GNNLM_DATA_DIR is not set")
    cache = tmp_path_factory.mktemp("gnnlm-cache")
    graphs = {}

    def load(name: str):
        if name not in graphs:
            from gnnlm.data import load_dataset

            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("GNNLM_CACHE_DIR", str(cache))
                graphs[name] = load_dataset(name)
        return graphs[name]

    return load
