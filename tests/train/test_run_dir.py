"""Run directories: lock, refuse/overwrite/resume, stale temp files, NaN stop, warm start, vocabulary."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket

import pytest
import torch

from gnnlm.data import load_dataset
from gnnlm.train import (
    CheckpointError,
    ConfigError,
    RunDirError,
    Trainer,
    TrainingDivergedError,
    from_pretrained,
)
from gnnlm.train.checkpoint import load_tensors
from gnnlm.train.pretrained import align_graph, load_vocab
from gnnlm.train.run_dir import LOCK_NAME, run_dir_lock
from tests.train.tiny_kg import reverse_train_file, tiny_config, write_tiny_kg


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def kg_dir(tmp_path):
    return write_tiny_kg(tmp_path / "kg")


def fit(kg_dir, run_dir, *overrides, **kwargs):
    return Trainer(tiny_config(kg_dir, *overrides), run_dir=run_dir, quiet=True).fit(**kwargs)


# -- lock ------------------------------------------------------------------------------------------
def test_second_lock_in_the_same_process_is_refused_and_names_the_holder(tmp_path):
    with run_dir_lock(tmp_path / "run"):
        with pytest.raises(RunDirError, match=rf"in use by pid {os.getpid()} on "):
            with run_dir_lock(tmp_path / "run"):
                pass
        holder = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with run_dir_lock(tmp_path / "run"):  # released on exit
        pass


def _hold_lock(path, ready):
    with run_dir_lock(path):
        ready.set()
        signal.pause()


def test_lock_held_by_another_process_and_freed_by_kill_9(tmp_path, kg_dir):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(tmp_path / "run", ready), daemon=True)
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunDirError, match=rf"in use by pid {child.pid} on "):
            fit(kg_dir, tmp_path / "run")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    with run_dir_lock(tmp_path / "run"):  # no stale lock after kill -9
        pass


def test_trainer_holds_the_lock_while_it_runs(tmp_path, kg_dir):
    seen = []

    def try_second_writer(trainer, row):
        with pytest.raises(RunDirError, match="in use by pid"):
            with run_dir_lock(tmp_path / "run"):
                pass
        seen.append(row["epoch"])

    cfg = tiny_config(kg_dir, "training.epochs=1", "evaluation.frequency=0")
    Trainer(cfg, run_dir=tmp_path / "run", quiet=True, callbacks=[try_second_writer]).fit()
    assert seen == [1]


# -- refuse / overwrite / resume -------------------------------------------------------------------
def test_existing_run_is_refused_without_resume_or_overwrite(tmp_path, kg_dir):
    run = tmp_path / "run"
    fit(kg_dir, run, "training.epochs=2")
    before = {
        name: (run / name).read_bytes() for name in ("metrics.json", "checkpoint.safetensors")
    }
    with pytest.raises(
        RunDirError, match=r"is not empty \(checkpoint.safetensors, .*--resume.*--overwrite"
    ):
        fit(kg_dir, run, "training.epochs=2", "training.lr=0.1")
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing deleted
    with pytest.raises(RunDirError, match="exclude each other"):
        fit(kg_dir, run, resume=True, overwrite=True)
    with pytest.raises(ConfigError, match="cannot be combined with resume"):
        fit(kg_dir, run, resume=True, init_from=run)


def test_overwrite_deletes_the_earlier_run_first(tmp_path, kg_dir):
    run = tmp_path / "run"
    fit(kg_dir, run, "training.epochs=2")
    (run / "notes.txt").write_text("mine")

    def interrupt(trainer, row):
        raise KeyboardInterrupt

    cfg = tiny_config(kg_dir, "training.epochs=3", "training.lr=0.1")
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run_dir=run, quiet=True, callbacks=[interrupt]).fit(overwrite=True)
    assert not (run / "model").exists() and not (run / "metrics.json").exists()  # no old model left
    assert "lr: 0.1" in (run / "config.yaml").read_text()
    assert (run / "notes.txt").read_text() == "mine"  # files that are not ours stay


def test_stale_tmp_files_are_removed_on_resume(tmp_path, kg_dir):
    run = tmp_path / "run"
    fit(kg_dir, run, "training.epochs=2")
    stale = [
        run / ".checkpoint.safetensors.k3j_x9a.tmp",
        run / "model" / ".model.safetensors.a1.tmp",
    ]
    for path in stale:
        path.write_bytes(b"partial")
    (run / ".notes.bak.tmp").write_text("not ours")
    fit(kg_dir, run, "training.epochs=3", resume=True)
    assert not any(path.exists() for path in stale)
    assert (run / ".notes.bak.tmp").exists()


# -- NaN -------------------------------------------------------------------------------------------
def nan_after(epoch):
    def callback(trainer, row):
        if row["epoch"] == epoch:
            with torch.no_grad():
                for param in trainer.model.parameters():
                    param.fill_(float("nan"))

    return callback


def test_nan_loss_saves_best_model_and_metrics(tmp_path, kg_dir):
    run = tmp_path / "run"
    cfg = tiny_config(kg_dir, "training.epochs=6", "evaluation.frequency=2")
    trainer = Trainer(cfg, run_dir=run, quiet=True, callbacks=[nan_after(3)])
    with pytest.raises(
        TrainingDivergedError, match=r"^epoch 4: loss became nan.*epoch 2 weights"
    ) as info:
        trainer.fit()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and metrics["epochs"] == 3
    assert metrics["diverged"].startswith("epoch 4: loss became nan")
    assert metrics["valid"]["mrr"] == pytest.approx(info.value.result.metrics["valid"]["mrr"])
    tensors, _ = load_tensors(run / "model" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in tensors.values())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert metrics["valid"]["mrr"] == pytest.approx(log[1]["valid_mrr"])  # the epoch-2 weights


def test_nan_loss_without_evaluation_saves_the_last_checkpoint(tmp_path, kg_dir):
    run = tmp_path / "run"
    cfg = tiny_config(kg_dir, "training.epochs=4", "evaluation.frequency=0")
    with pytest.raises(TrainingDivergedError, match="epoch 2 weights"):
        Trainer(cfg, run_dir=run, quiet=True, callbacks=[nan_after(2)]).fit()
    checkpoint, _ = load_tensors(run / "checkpoint.safetensors")
    model, _ = load_tensors(run / "model" / "model.safetensors")
    assert all(torch.equal(model[k], checkpoint[f"model.{k}"]) for k in model)


# -- warm start ------------------------------------------------------------------------------------
def test_init_from_loads_weights_only_and_records_the_source(tmp_path, kg_dir):
    old = tmp_path / "old"
    fit(kg_dir, old, "training.epochs=4")
    first = {}

    def record_first_loss(trainer, row):
        first.setdefault("loss", row["loss"])

    cfg = tiny_config(kg_dir, "training.epochs=2", "training.lr=0.01", "seed=3")
    new = tmp_path / "new"
    trainer = Trainer(cfg, run_dir=new, quiet=True, callbacks=[record_first_loss])
    result = trainer.fit(init_from=old)
    fresh = fit(kg_dir, tmp_path / "fresh", "training.epochs=2", "training.lr=0.01", "seed=3")
    assert first["loss"] < fresh.history[0]["loss"]  # it started from the trained weights
    record = json.loads((new / "init_from.json").read_text())
    assert record["path"] == str((old / "model").resolve())
    assert record["best_epoch"] == json.loads((old / "metrics.json").read_text())["best_epoch"]
    assert len(record["weights_sha256"]) == 64
    assert result.metrics["init_from"] == record
    assert json.loads((new / "metrics.json").read_text())["init_from"] == record


def test_init_from_refuses_another_model(tmp_path, kg_dir):
    fit(kg_dir, tmp_path / "old", "training.epochs=1")
    with pytest.raises(
        CheckpointError, match=r"same model and graph; differs: model: .*embedding_dim"
    ):
        fit(kg_dir, tmp_path / "new", "model.embedding_dim=4", init_from=tmp_path / "old")
    with pytest.raises(CheckpointError, match="no model to start from"):
        fit(kg_dir, tmp_path / "new2", init_from=tmp_path / "nothing")


# -- vocabulary ------------------------------------------------------------------------------------
def test_reordered_dataset_is_renumbered_to_the_saved_vocabulary(tmp_path, kg_dir):
    run = tmp_path / "run"
    result = fit(kg_dir, run)
    reverse_train_file(kg_dir)
    kg = load_dataset(f"tsv:{kg_dir}", cache=False)
    assert list(kg.entities.names) != list(result.kg.entities.names)  # ids changed
    aligned = align_graph(kg, load_vocab(run / "model"), source="vocab.json")
    assert list(aligned.entities.names) == list(result.kg.entities.names)
    assert torch.equal(aligned.test, result.kg.test)
    model = from_pretrained(run / "model", kg=aligned)
    again = Trainer(result.config, kg=aligned, quiet=True)
    again.model = model
    assert again.evaluate("test")["mrr"] == pytest.approx(result.metrics["test"]["mrr"], abs=1e-12)
    with pytest.raises(CheckpointError, match="another order than the model"):
        from_pretrained(run / "model", kg=kg)


def test_dataset_with_other_names_is_refused_with_sizes_and_sample(tmp_path, kg_dir):
    run = tmp_path / "run"
    fit(kg_dir, run, "training.epochs=1", "evaluation.frequency=0")
    with open(kg_dir / "test.txt", "a") as f:
        f.write("newcomer\tr0\te1\n")
    kg = load_dataset(f"tsv:{kg_dir}", cache=False)
    with pytest.raises(CheckpointError, match=r"31 entities in the dataset, 30 in the vocabulary; "
                       r"only in the dataset \(1\): \['newcomer'\]"):  # fmt: skip
        align_graph(kg, load_vocab(run / "model"), source="vocab.json")
