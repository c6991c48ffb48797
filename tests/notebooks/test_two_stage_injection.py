"""notebooks/two_stage_injection.ipynb runs end to end on tiny settings (tiny-bert, a few texts)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "two_stage_injection.ipynb"
TINY = {
    'LM = "minilm"': 'LM = "tiny-bert"',
    "PRETRAIN_TEXTS = 1000": "PRETRAIN_TEXTS = 16",
    "NUM_TRAIN = 1000": "NUM_TRAIN = 16",
    "NUM_EVAL = 200": "NUM_EVAL = 8",
    '"num_valid": 100': '"num_valid": 8',
}


def code_cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and "id" in cell
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.skipif(
    not (Path(os.environ.get("GNNLM_DATA_DIR", "")) / "fb15k-237").is_dir(),
    reason="needs $GNNLM_DATA_DIR with fb15k-237",
)
def test_the_notebook_pretrains_fine_tunes_and_draws_the_gates(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    script = "\n\n".join(code_cells())
    for old, new in TINY.items():
        assert old in script, old  # the settings the notebook documents are still there
        script = script.replace(old, new)
    script = script.replace(
        'OUT = Path("runs/notebook-two-stage")', f"OUT = Path({str(tmp_path)!r})"
    )
    namespace: dict = {}
    exec(compile(script, NOTEBOOK.name, "exec"), namespace)
    result = namespace["result"]
    out = capsys.readouterr().out
    assert "hand-over: copied" in out and "test accuracy:" in out
    # stage 2 started from stage 1: every fused parameter came across, only the head is fresh
    record = result.metrics["init_from"]
    assert record["kept_initialisation"] == ["head.bias", "head.weight"]
    assert (tmp_path / "pretraining" / "metrics.json").is_file()
    for name in ("gate_history.png", "token_gates.png"):
        assert (tmp_path / name).stat().st_size > 1000
    tokens, matrix = namespace["tokens"], namespace["matrix"]
    assert matrix.shape == (len(tokens), 2) and ((matrix >= 0) & (matrix <= 1)).all()
