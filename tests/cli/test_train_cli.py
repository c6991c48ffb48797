from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from gnnlm.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    if not os.environ.get("GNNLM_DATA_DIR"):
        pytest.skip("GNNLM_DATA_DIR is not set")
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path / "cache"))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", str(CONFIGS / "nations" / "complex.yaml"), "--out", str(run), "--quiet", "--threads", "1",
                 "--set", "training.epochs=4", "--set", "evaluation.frequency=2"])  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("valid", "test"):
        assert {"mrr", "mr", "hits@1", "hits@3", "hits@10"} <= set(metrics[split])
        assert printed[split]["mrr"] == metrics[split]["mrr"]
    for name in (
        "config.yaml",
        "metrics.csv",
        "log.jsonl",
        "checkpoint.safetensors",
        "model/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert len((run / "log.jsonl").read_text().splitlines()) == 4

    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mrr"] == pytest.approx(metrics["test"]["mrr"], abs=1e-12)
    assert main(["evaluate", str(run), "--split", "valid"]) == 0
    assert f"mrr      {metrics['valid']['mrr']:.4f}" in capsys.readouterr().out

    assert (
        main(["predict", str(run), "--head", "usa", "--relation", "embassy", "--k", "3", "--json"])
        == 0
    )
    prediction = json.loads(capsys.readouterr().out)
    assert prediction["query"] == ["usa", "embassy", "?"] and len(prediction["predictions"]) == 3
    scores = [p["score"] for p in prediction["predictions"]]
    assert scores == sorted(scores, reverse=True)
    assert main(["predict", str(run), "--tail", "usa", "--relation", "embassy", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("(?, embassy, usa)") and out.count("\n") == 3

    # resume a finished run with a longer schedule
    assert main(["train", str(CONFIGS / "nations" / "complex.yaml"), "--out", str(run), "--quiet", "--resume",
                 "--set", "training.epochs=6", "--set", "evaluation.frequency=2"]) == 0  # fmt: skip
    assert len((run / "log.jsonl").read_text().splitlines()) == 6


def test_bad_config_key_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("dataset: nations\ntraining:\n  epochs: 2\n  learning_rate: 0.1\n")
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:4: unknown config key 'training.learning_rate'" in err
    good = str(CONFIGS / "nations" / "complex.yaml")
    assert main(["train", good, "--out", str(tmp_path / "r"), "--set", "training.epochs=two"]) == 2
    assert "training.epochs must be an integer, got 'two'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_predict_unknown_entity(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(CONFIGS / "nations" / "complex.yaml"), "--out", str(run), "--quiet",
                 "--set", "training.epochs=1"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(run), "--head", "usaa", "--relation", "embassy"]) == 2
    assert "unknown entity 'usaa' in nations (did you mean 'usa'" in capsys.readouterr().err
