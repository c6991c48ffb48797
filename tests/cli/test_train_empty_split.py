"""``gnnlm train`` on a dataset whose test split is empty: a clean run that reports no test metrics."""

from __future__ import annotations

import json

from gnnlm.cli import main
from tests.train.tiny_kg import write_tiny_config, write_tiny_kg


def test_empty_test_split_runs_to_the_end_and_reports_no_test_metrics(tmp_path, capsys):
    folder = write_tiny_kg(tmp_path / "kg")
    (folder / "test.txt").write_text("")
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, "training.epochs=1")
    code = main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet", "--threads", "1"])
    assert code == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["test"] is None and printed["valid"]["mrr"] > 0
    assert "gnnlm train: the test split is empty: no test metrics" in captured.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test" not in metrics and "mrr" in metrics["valid"]
