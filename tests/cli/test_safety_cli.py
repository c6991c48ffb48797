"""`gnnlm train/evaluate/predict` safety: run directories, NaN stop, warm start, vocabulary, trust."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from gnnlm.cli import main
from gnnlm.data import KnowledgeGraph, Vocabulary
from gnnlm.kge.resolver import UntrustedCodeError
from gnnlm.train import ModelConfig, PretrainedConfig, Trainer, from_pretrained
from gnnlm.train.run_dir import run_dir_lock
from tests.train.tiny_kg import reverse_train_file, write_tiny_config, write_tiny_kg

QUIET = ["--quiet", "--threads", "1"]


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path / "cache"))
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def setup(tmp_path):
    kg_dir = write_tiny_kg(tmp_path / "kg")
    return kg_dir, write_tiny_config(tmp_path / "tiny.yaml", kg_dir)


def train(config, run, *extra):
    return main(["train", str(config), "--out", str(run), *QUIET, *extra])


def test_evaluate_and_predict_use_the_saved_vocabulary(tmp_path, setup, capsys):
    kg_dir, config = setup
    run = tmp_path / "run"
    assert train(config, run) == 0
    capsys.readouterr()
    query = ["predict", str(run), "--head", "e1", "--relation", "r1", "--k", "5", "--json"]
    assert main(["evaluate", str(run), "--json"]) == 0 and main(query) == 0
    before = capsys.readouterr().out
    reverse_train_file(kg_dir)  # same triples; entities first appear in another order
    assert main(["evaluate", str(run), "--json"]) == 0 and main(query) == 0
    assert capsys.readouterr().out == before

    with open(kg_dir / "valid.txt", "a") as f:
        f.write("e1\tr9\te2\n")
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnnlm evaluate: ") and err.count("\n") == 1
    assert "4 relations in the dataset, 3 in the vocabulary; only in the dataset (1): ['r9']" in err


def test_existing_run_dir_needs_resume_or_overwrite(tmp_path, setup, capsys):
    _, config = setup
    run = tmp_path / "run"
    assert train(config, run, "--set", "training.epochs=2") == 0
    metrics = (run / "metrics.json").read_text()
    capsys.readouterr()
    assert train(config, run, "--set", "training.epochs=2") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gnnlm train: {run} is not empty (") and "--overwrite" in err
    assert (run / "metrics.json").read_text() == metrics
    assert train(config, run, "--resume", "--set", "training.epochs=3") == 0
    assert len((run / "log.jsonl").read_text().splitlines()) == 3
    assert train(config, run, "--overwrite", "--set", "training.epochs=1") == 0
    assert len((run / "log.jsonl").read_text().splitlines()) == 1
    with run_dir_lock(run):  # a second writer while one holds the directory
        assert train(config, run, "--resume") == 2
    assert "is in use by pid" in capsys.readouterr().err


def test_nan_stops_with_one_line_and_init_from_warm_starts(tmp_path, setup, capsys, monkeypatch):
    _, config = setup
    run = tmp_path / "run"
    original = Trainer._train_epoch

    def diverge_in_epoch_3(self):
        if self.epoch == 2:
            raise FloatingPointError("epoch 3: loss became nan; lower training.lr?")
        return original(self)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_train_epoch", diverge_in_epoch_3)
        assert train(config, run) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("gnnlm train: epoch 3: loss became nan")
    assert f"--init-from {run}" in captured.err
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == 2
    assert (run / "model" / "model.safetensors").is_file()

    new = tmp_path / "new"
    assert train(config, new, "--init-from", str(run), "--set", "training.lr=0.01") == 0
    record = json.loads((new / "init_from.json").read_text())
    assert record["path"] == str((run / "model").resolve())
    assert record["diverged"].startswith("epoch 3: loss became nan")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module ``gnnlm_test_plugin`` whose import writes ``imported.txt`` (any code could run there)."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "gnnlm_test_plugin.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from gnnlm.kge.interactions import DistMult\n\n\nclass MyDistMult(DistMult):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("gnnlm_test_plugin", None)


def test_saved_dotted_path_runs_no_code_unless_trusted(tmp_path, setup, plugin, capsys):
    _, config = setup
    run = tmp_path / "run"
    # the user's own config may name code
    assert train(config, run, "--set", "model.interaction=gnnlm_test_plugin:MyDistMult") == 0
    assert plugin.read_text() == "ran"
    plugin.unlink()
    sys.modules.pop("gnnlm_test_plugin")
    capsys.readouterr()

    for command in (
        ["evaluate", str(run)],
        ["predict", str(run), "--head", "e1", "--relation", "r1"],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "names code to import: 'gnnlm_test_plugin:MyDistMult'" in err
        assert "--trust-remote-code" in err and err.count("\n") == 1
        assert not plugin.exists()
    assert main(["evaluate", str(run), "--trust-remote-code"]) == 0
    assert plugin.read_text() == "ran"


@pytest.mark.parametrize("field", ["encoder", "representation"])
def test_saved_encoder_or_table_path_is_refused_before_import(tmp_path, plugin, field):
    folder = tmp_path / "downloaded"
    config = PretrainedConfig(
        ModelConfig("distmult", embedding_dim=4, **{field: "gnnlm_test_plugin:X"}), 5, 2
    )
    config.save(folder)
    kg = KnowledgeGraph(Vocabulary(f"e{i}" for i in range(5)), Vocabulary(["r0", "r1"]), {})
    with pytest.raises(UntrustedCodeError, match="'gnnlm_test_plugin:X'.*trust_remote_code=True"):
        from_pretrained(folder, kg=kg)
    assert not plugin.exists()
