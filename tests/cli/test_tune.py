"""``gnnlm tune``: the command line (table, files, resume, one-line errors)."""

from __future__ import annotations

import csv

from gnnlm.cli import main
from tests.train.tiny_kg import write_tiny_config, write_tiny_kg


def test_tune_cli_table_files_resume_and_errors(tmp_path, capsys):
    config = write_tiny_config(tmp_path / "tiny.yaml", write_tiny_kg(tmp_path / "kg"))
    space = tmp_path / "space.yaml"
    space.write_text("training.lr: {type: float, low: 1e-3, high: 0.3, log: true}\n")
    out = tmp_path / "search"
    args = ["tune", str(config), "--space", str(space), "--out", str(out), "--threads", "1"]
    assert main([*args, "--trials", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["trial", "state", "mrr", "epochs", "seconds", "training.lr"]
    assert len([line for line in lines if " complete " in line]) == 2
    assert "best: trial" in captured.out and str(out / "best.yaml") in captured.out
    assert "trial 0: complete" in captured.err and "trial 1: complete" in captured.err
    # the same command with more trials continues the search
    assert main([*args, "--trials", "3", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress lines
    with open(out / "trials.csv") as f:
        assert [row["number"] for row in csv.DictReader(f)] == ["0", "1", "2"]
    # another config in the same directory: one line, exit status 2
    assert main([*args, "--trials", "3", "--set", "training.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnnlm tune: ") and "another config (training.epochs: 4 -> 2)" in err
    assert len(err.strip().splitlines()) == 1


def test_tune_cli_bad_space_names_file_and_line(tmp_path, capsys):
    config = write_tiny_config(tmp_path / "tiny.yaml", write_tiny_kg(tmp_path / "kg"))
    space = tmp_path / "space.yaml"
    space.write_text("training.lr: {type: float, low: 1e-3, high: 0.3}\nmodel.dim: {type: int, "
                     "low: 8, high: 16}\n")  # fmt: skip
    code = main(["tune", str(config), "--space", str(space), "--trials", "2", "--out",
                 str(tmp_path / "s")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gnnlm tune: {space}:2: model.dim=8 does not fit the config: unknown "
                          "config key 'model.dim'")  # fmt: skip
    assert not (tmp_path / "s").exists()  # refused before anything was created


def test_tune_cli_passes_the_pruner_settings(tmp_path, monkeypatch):
    import gnnlm.tune

    seen = {}

    def fake_tune(config, space, out, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop here: the arguments are what this test is about

    monkeypatch.setattr(gnnlm.tune, "tune", fake_tune)
    config = write_tiny_config(tmp_path / "tiny.yaml", write_tiny_kg(tmp_path / "kg"))
    space = tmp_path / "space.yaml"
    space.write_text("training.lr: {type: float, low: 1e-3, high: 0.3}\n")
    args = [
        "tune",
        str(config),
        "--space",
        str(space),
        "--trials",
        "4",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main([*args, "--prune-after-trials", "3", "--prune-warmup", "2"]) == 130
    assert seen["pruner_startup_trials"] == 3 and seen["pruner_warmup_steps"] == 2
    assert main(args) == 130
    assert seen["pruner_startup_trials"] == 5 and seen["pruner_warmup_steps"] == 0
