"""``gnnlm plot``: a run's curves and rank histogram, a comparison's arms, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gnnlm.cli import main
from gnnlm.cli.plot import recompute_test_ranks
from gnnlm.viz.curves import rank_histogram
from tests.train.tiny_kg import write_tiny_config, write_tiny_kg

pytest.importorskip("matplotlib")


def test_plot_link_prediction_run_with_its_test_ranks(tmp_path, capsys):
    config = write_tiny_config(tmp_path / "tiny.yaml", write_tiny_kg(tmp_path / "kg"))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet", "--threads", "1"]) == 0
    out = tmp_path / "plots" / "curves.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("curves.png")
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # the histogram's ranks are the run's test ranks: the evaluator's, from the saved model
    ranks = recompute_test_ranks(run)
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    every = np.concatenate([ranks["head"], ranks["tail"]])
    assert len(ranks["head"]) == len(ranks["tail"]) == 20  # tiny KG: 20 test triples
    assert float(np.mean(1.0 / every)) == pytest.approx(metrics["mrr"], abs=1e-9)
    assert float(np.mean(every <= 10)) == pytest.approx(metrics["hits@10"], abs=1e-9)
    counts, _ = rank_histogram(every)
    assert counts.sum() == 40
    # the default output goes into the run directory
    assert main(["plot", str(run), "--no-ranks"]) == 0
    assert (run / "curves.png").stat().st_size > 10_000
    # a run without a saved model (interrupted, or a pruned tuning trial): curves only
    shutil.rmtree(run / "model")
    assert recompute_test_ranks(run) is None
    assert main(["plot", str(run), "--out", str(tmp_path / "no-model.png")]) == 0


def test_plot_comparison_draws_every_arm(tmp_path, capsys):
    config = write_tiny_config(
        tmp_path / "tiny.yaml", write_tiny_kg(tmp_path / "kg"), "training.epochs=2",
        "variants={slow: {training.lr: 0.01}, fast: {training.lr: 0.1}}",
    )  # fmt: skip
    run = tmp_path / "cmp"
    assert main(["train", str(config), "--out", str(run), "--quiet", "--threads", "1"]) == 0
    assert main(["plot", str(run), "--out", str(tmp_path / "cmp.png")]) == 0
    assert (tmp_path / "cmp.png").stat().st_size > 20_000


def test_plot_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"gnnlm plot: {empty}: no log.jsonl or metrics.csv: not a run directory of gnnlm train, "
        "or its first epoch has not ended yet"
    )
    assert not (empty / "curves.png").exists()
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
