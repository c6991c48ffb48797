"""``python -m gnnlm`` is the ``gnnlm`` command."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_gnnlm_runs_the_cli(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("task: link_prediction\ntraining: {epochs: 0}\n")
    done = subprocess.run(
        [sys.executable, "-m", "gnnlm", "train", str(config), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=600,  # a loaded machine imports slowly
    )  # fmt: skip
    assert done.returncode == 2
    assert f"gnnlm train: {config}:2: training.epochs must be an integer >= 1, got 0" in done.stderr
