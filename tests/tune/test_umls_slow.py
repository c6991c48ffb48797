"""``gnnlm tune`` on UMLS with a small budget finds a config at least as good as the shipped one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gnnlm.tasks import load_config
from gnnlm.train import train
from gnnlm.tune import tune

ROOT = Path(__file__).resolve().parents[2]
BUDGET = ["training.epochs=20", "evaluation.frequency=5", "evaluation.patience=0"]


@pytest.mark.slow
def test_search_on_umls_matches_or_beats_the_shipped_config(tmp_path, monkeypatch):
    if not os.environ.get("GNNLM_DATA_DIR"):
        pytest.skip("GNNLM_DATA_DIR is not set")
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path / "cache"))
    config = load_config(ROOT / "configs" / "umls" / "complex.yaml", BUDGET)
    shipped = train(config, tmp_path / "shipped", quiet=True).metrics["valid"]["mrr"]
    # the search's own: the shipped values are not its first trial
    result = tune(
        config, ROOT / "configs" / "umls" / "complex_space.yaml", tmp_path / "search", trials=6,
        quiet=True, baseline=False,
    )  # fmt: skip
    assert sum(row["state"] == "complete" for row in result.rows) >= 2
    print(
        f"UMLS, 20 epochs: shipped valid MRR {shipped:.4f}, best of 6 trials {result.best_value:.4f}"
    )
    assert result.best_value >= shipped
    # and best.yaml trains to the same value (same seed, same engine)
    again = train(load_config(tmp_path / "search" / "best.yaml"), quiet=True)
    assert again.metrics["valid"]["mrr"] == pytest.approx(result.best_value, abs=1e-12)
