"""Data-parallel training (torchrun / DDP / FSDP on gloo): two CPU processes train as one does.

Each test starts two processes once (``torch.multiprocessing``, forked where possible) and runs several trainers in
them; a process records what it saw in ``rank<r>.pt`` and the test compares with a one-process run
here. Rank 1 runs under an audit hook that records every write into the run directories: only rank
0 may write there.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import nn

from gnnlm.train import Trainer
from gnnlm.train.checkpoint import CheckpointError
from gnnlm.train.distributed import World, shard, shard_weight
from tests.train.tiny_kg import tiny_config, write_tiny_kg

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)
TIMING = ("train_seconds", "eval_seconds", "examples_per_second", "triples_per_second")
WORLD = 2
START = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


class Killed(RuntimeError):
    pass


# -- sharding arithmetic ---------------------------------------------------------------------------------
def test_shards_cover_the_global_batch_and_their_weights_make_its_mean():
    """Slices of 5 examples over 2 ranks: 3 + 2, in order; weights 3*2/5 and 2*2/5, whose average
    (DDP divides by the world size) weighs each example's loss 1/5; a rank past the end gets none."""
    batch = torch.arange(10, 15)
    worlds = [World(rank=r, size=2) for r in range(2)]
    parts = [shard(batch, w) for w in worlds]
    assert [p.tolist() for p in parts] == [[10, 11, 12], [13, 14]]
    weights = [shard_weight(len(p), 5, w) for p, w in zip(parts, worlds)]
    assert weights == [6 / 5, 4 / 5]
    # mean loss of a rank times its weight, averaged over ranks = the mean over all 5 examples
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    average = sum(losses[p - 10].mean() * wt for p, wt in zip(parts, weights)) / 2
    assert average == pytest.approx(3.0)
    assert shard(torch.arange(1), World(rank=1, size=2)).numel() == 0
    assert shard(batch, World()) is batch


def test_the_world_comes_from_torchruns_variables(monkeypatch):
    from gnnlm.config import ConfigError
    from gnnlm.train.distributed import world_from_env

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_env() == World() and not World().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    world = world_from_env()
    assert world == World(rank=2, local_rank=0, size=4) and world.distributed and not world.is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK=4 must lie in 0..WORLD_SIZE-1"):
        world_from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE must be a whole number, got 'two'"):
        world_from_env()


def test_a_comparison_is_refused_under_torchrun(tmp_path, monkeypatch):
    """Arms run one after another and their runner writes on every rank: one arm per launch."""
    from gnnlm.config import ConfigError
    from gnnlm.train import train

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    config = tiny_config(write_tiny_kg(tmp_path / "kg"), "seeds=[0, 1]")
    with pytest.raises(ConfigError, match="under torchrun train one arm at a time"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# -- the processes ------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(job: str, folder: Path, **kwargs: Any) -> list[dict[str, Any]]:
    """Run ``job`` on ``WORLD`` processes (gloo); returns what each rank recorded."""
    port = _free_port()
    # forked, the processes start with this one's imports (torch_geometric, transformers): seconds
    mp.start_processes(
        _worker, args=(job, str(folder), port, kwargs), nprocs=WORLD, start_method=START
    )
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _worker(rank: int, job: str, folder: str, port: int, kwargs: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
        LOCAL_RANK=str(rank), OMP_NUM_THREADS="1",
    )  # fmt: skip
    folder = Path(folder)
    writes: list[str] = []
    if rank != 0:
        sys.addaudithook(_write_recorder(str(folder / "runs"), writes))
    try:
        record = JOBS[job](folder, **kwargs)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    record["writes"] = writes
    torch.save(record, folder / f"rank{rank}.pt")


def _write_recorder(root: str, writes: list[str]):
    """An audit hook recording every file opened for writing, renamed, removed or made under
    ``root`` (Python's and ``os``'s own entry points all raise these events)."""
    flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        paths: list[Any] = []
        if event == "open" and args:
            mode, flag = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flag, int) and flag & flags
            ):
                paths = [args[0]]
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        for path in paths:
            if isinstance(path, (str, os.PathLike)) and str(os.fspath(path)).startswith(root):
                writes.append(f"{event} {os.fspath(path)}")

    return hook


def _state(result) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def _kill_after(step: int):
    def callback(trainer):
        if trainer.step == step:
            raise Killed(f"killed after step {step}")

    return callback


# -- a KGE task: KvsAll link prediction ---------------------------------------------------------------------
#: 171 KvsAll queries in batches of 85: slices of 43 / 42 (uneven), and a last batch of one
#: example, so rank 1 trains an empty slice (weight 0) once per epoch
KGE = ("training.batch_size=85", "training.epochs=4", "evaluation.frequency=2")


def _kge_job(folder: Path, data: str) -> dict[str, Any]:
    config = tiny_config(Path(data), *KGE)
    full = Trainer(config, run_dir=folder / "runs" / "full", quiet=True).fit()
    killed = tiny_config(Path(data), *KGE, "training.checkpoint_steps=1")
    with pytest.raises(Killed):
        Trainer(
            killed, run_dir=folder / "runs" / "killed", quiet=True, step_callbacks=[_kill_after(5)]
        ).fit()
    resumed = Trainer(killed, run_dir=folder / "runs" / "killed", quiet=True).fit(resume=True)
    return {
        "metrics": full.metrics, "state": _state(full), "history": full.history,
        "resumed_metrics": resumed.metrics, "resumed_state": _state(resumed),
    }  # fmt: skip


def _without_timing(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def _assert_close_metrics(a: dict[str, Any], b: dict[str, Any], names: list[str]) -> None:
    for split in ("valid", "test"):
        for name in names:
            assert a[split][name] == pytest.approx(b[split][name], abs=1e-6), (split, name)


def _assert_close_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_two_processes_train_link_prediction_as_one_and_resume_exactly(tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    data = write_tiny_kg(tmp_path / "kg")
    torch.set_num_threads(1)
    single = Trainer(tiny_config(data, *KGE), run_dir=tmp_path / "single", quiet=True).fit()
    ranks = _spawn("kge", tmp_path, data=str(data))

    # 1. the same weights, metrics and training loss as one process at the same global batch
    ddp = ranks[0]
    _assert_close_weights(ddp["state"], _state(single))
    names = ["mrr", "mr", "hits@1", "hits@10"]
    _assert_close_metrics(ddp["metrics"], single.metrics, names)
    assert ddp["metrics"]["best_epoch"] == single.metrics["best_epoch"]
    losses = [[row["loss"] for row in h if "loss" in row] for h in (ddp["history"], single.history)]
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert losses[0][-1] < losses[0][0]  # it trained
    # every rank holds the same model and the metrics rank 0 computed
    _assert_close_weights(ranks[1]["state"], ddp["state"])
    assert ranks[1]["metrics"]["test"] == ddp["metrics"]["test"]

    # 2. killed mid-epoch and resumed with two processes: the uninterrupted run, bit for bit
    assert all(torch.equal(ddp["resumed_state"][k], ddp["state"][k]) for k in ddp["state"])
    assert _without_timing(ddp["resumed_metrics"]) == _without_timing(ddp["metrics"])

    # 3. rank 0 alone wrote the run directories, and they hold a whole run
    assert ranks[1]["writes"] == [] and ranks[0]["writes"] == []  # rank 0 is not watched
    run = tmp_path / "runs" / "full"
    for name in (
        "config.yaml",
        "metrics.csv",
        "log.jsonl",
        "checkpoint.safetensors",
        "metrics.json",
    ):
        assert (run / name).is_file(), name
    saved = load_file(run / "model" / "model.safetensors")
    _assert_close_weights({k: saved[k] for k in ddp["state"]}, ddp["state"])

    # 4. a run of two processes does not resume on one
    with pytest.raises(CheckpointError, match="trained by 2 process.*this is 1"):
        Trainer(tiny_config(data, *KGE), run_dir=run, quiet=True).fit(resume=True)


def test_the_write_recorder_sees_the_engines_writes(tmp_path, monkeypatch):
    """The audit hook that watches rank 1 is not blind: in a child process running a one-process
    run under it, it records the run's files (so an empty record on rank 1 means something)."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    data = write_tiny_kg(tmp_path / "kg")
    mp.start_processes(
        _watched_single_run, args=(str(tmp_path), str(data)), nprocs=1, start_method=START
    )
    writes = torch.load(tmp_path / "watched.pt")
    assert any("checkpoint.safetensors" in w for w in writes)
    assert any("metrics.json" in w for w in writes)
    assert any("model.safetensors" in w for w in writes)


def _watched_single_run(_: int, folder: str, data: str) -> None:
    torch.set_num_threads(1)
    writes: list[str] = []
    sys.addaudithook(_write_recorder(str(Path(folder) / "runs"), writes))
    config = tiny_config(Path(data), "training.epochs=1", "evaluation.frequency=1")
    Trainer(config, run_dir=Path(folder) / "runs" / "one", quiet=True).fit()
    torch.save(list(writes), Path(folder) / "watched.pt")


# -- options under DDP: torch.compile, bf16 autocast -----------------------------------------------------------
OPTIONS = {
    "compiled": ("training.compile=true", "training.compile_kwargs={backend: aot_eager}"),
    "bf16": ("training.autocast=bf16",),
}


def _options_job(folder: Path, data: str) -> dict[str, Any]:
    out = {}
    for name, overrides in OPTIONS.items():
        torch._dynamo.reset()
        config = tiny_config(Path(data), *KGE, "training.epochs=2", *overrides)
        # the fused KvsAll loss hands Python floats on, which dynamo specialises on and recompiles
        # for: one compilation per frame (then eager) keeps this test short
        with torch._dynamo.config.patch(recompile_limit=1):
            result = Trainer(config, quiet=True).fit()
        out[name] = {"metrics": result.metrics, "state": _state(result), "history": result.history}
    return out


def test_compiled_steps_and_bf16_autocast_run_under_ddp(tmp_path, monkeypatch):
    """DDP around a step compiled by dynamo (``aot_eager``: no C compiler) trains as one eager
    process; bf16 autocast under DDP trains, both ranks agree, and its losses stay within bf16's
    precision of one bf16 process (the shards' matrix products round differently)."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    data = write_tiny_kg(tmp_path / "kg")
    torch.set_num_threads(1)
    eager = Trainer(tiny_config(data, *KGE, "training.epochs=2"), quiet=True).fit()
    bf16 = Trainer(tiny_config(data, *KGE, "training.epochs=2", *OPTIONS["bf16"]), quiet=True).fit()
    ranks = _spawn("options", tmp_path, data=str(data))

    compiled = ranks[0]["compiled"]
    _assert_close_weights(compiled["state"], _state(eager))
    _assert_close_metrics(compiled["metrics"], eager.metrics, ["mrr", "mr", "hits@10"])

    run = ranks[0]["bf16"]
    assert all(torch.equal(ranks[1]["bf16"]["state"][k], v) for k, v in run["state"].items())
    losses = [[row["loss"] for row in r] for r in (run["history"], bf16.history)]
    assert losses[0] == pytest.approx(losses[1], rel=2e-2)
    assert losses[0][1] < losses[0][0]
    assert run["metrics"]["test"]["mrr"] == pytest.approx(bf16.metrics["test"]["mrr"], abs=0.05)


# -- a fusion task: triple classification with a tiny LM ------------------------------------------------------
@pytest.fixture(scope="module")
def named_kg(tmp_path_factory) -> Path:
    """A small KG with entity names (tsv): 20 entities, 3 relations, 90 / 12 / 12 triples."""
    from tests.tasks.test_triple_classification import write_named_kg

    return write_named_kg(tmp_path_factory.mktemp("named-kg"))


def _fused_config(graph_dir: Path, *overrides: str):
    from tests.tasks.test_triple_classification import tiny_config as fused_config

    config = fused_config(
        graph_dir,
        **{"training.batch_size": 7, "training.epochs": 2, "evaluation.frequency": 1,
           "data.num_train": 8, "training.optimizer": "sgd", "training.lr": 0.1,
           "training.optimizer_kwargs": {"momentum": 0.9}, "training.clip_grad_norm": 0.05},
    )  # fmt: skip
    from gnnlm.config import apply_overrides

    return apply_overrides(config, list(overrides))


def _no_dropout_task(config):
    """Triple classification whose model has no dropout: its step is then a function of its batch."""
    from gnnlm.tasks import TripleClassificationTask

    class NoDropout(TripleClassificationTask):
        def build_model(self) -> nn.Module:
            model = super().build_model()
            for module in model.modules():
                if isinstance(module, nn.Dropout):
                    module.p = 0.0
                if isinstance(getattr(module, "dropout", None), float):
                    module.dropout = 0.0
            return model

    return NoDropout(config)


def _fused_job(folder: Path, graph_dir: str) -> dict[str, Any]:
    out = {}
    for strategy in ("ddp", "fsdp"):
        config = _fused_config(Path(graph_dir), f"training.distributed.strategy={strategy}")
        result = Trainer(
            _no_dropout_task(config), run_dir=folder / "runs" / strategy, quiet=True
        ).fit()
        out[strategy] = {"metrics": result.metrics, "state": _state(result),
                         "history": result.history}  # fmt: skip
    # FSDP killed mid-epoch 2 and resumed: each rank's optimizer shard comes back from the checkpoint
    config = _fused_config(
        Path(graph_dir), "training.distributed.strategy=fsdp", "training.checkpoint_steps=1"
    )
    run_dir = folder / "runs" / "fsdp-killed"
    with pytest.raises(Killed):
        Trainer(
            _no_dropout_task(config), run_dir=run_dir, quiet=True, step_callbacks=[_kill_after(4)]
        ).fit()
    resumed = Trainer(_no_dropout_task(config), run_dir=run_dir, quiet=True).fit(resume=True)
    out["fsdp_resumed"] = {"metrics": resumed.metrics, "state": _state(resumed)}
    return out


def test_two_processes_fine_tune_a_fused_lm_as_one_with_ddp_and_fsdp(
    named_kg, tmp_path, monkeypatch
):
    """A tiny-bert triple classifier (graph + entity injection, dropout off), 2 epochs of batches of
    7 over 2 ranks (4 + 3 examples): DDP and FSDP give the weights, losses and metrics of one process.

    Gradients clipped (FSDP clips by the norm over every rank's shard). SGD with momentum (an
    optimizer state to shard and checkpoint), without weight decay: Adam turns the float noise of gradients that are 0 in exact
    arithmetic (attention key biases) into whole steps; and FSDP's flat parameters give a parameter
    that no loss reaches a zero gradient (not ``None``), which weight decay then shrinks."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    config = _fused_config(named_kg)
    single = Trainer(_no_dropout_task(config), run_dir=tmp_path / "single", quiet=True).fit()
    ranks = _spawn("fused", tmp_path, graph_dir=str(named_kg))
    assert ranks[1]["writes"] == []
    single_losses = [row["loss"] for row in single.history]
    names = ["accuracy", "loss"]
    for strategy in ("ddp", "fsdp"):
        run = ranks[0][strategy]
        _assert_close_weights(run["state"], _state(single))
        losses = [row["loss"] for row in run["history"]]
        assert losses == pytest.approx(single_losses, rel=1e-5), strategy
        _assert_close_metrics(run["metrics"], single.metrics, names)
        assert (tmp_path / "runs" / strategy / "metrics.json").is_file()
    assert ranks[0]["ddp"]["history"][0]["train_accuracy"] == pytest.approx(
        single.history[0]["train_accuracy"]
    )
    assert not torch.equal(ranks[0]["ddp"]["state"]["head.weight"], _initial(config)["head.weight"])
    fsdp, resumed = ranks[0]["fsdp"], ranks[0]["fsdp_resumed"]
    assert all(torch.equal(resumed["state"][k], v) for k, v in fsdp["state"].items())
    assert _without_timing(resumed["metrics"]) == _without_timing(fsdp["metrics"])


def _initial(config) -> dict[str, torch.Tensor]:
    from gnnlm.train.trainer import seed_everything

    task = _no_dropout_task(config)
    task.validate()
    task.setup()
    seed_everything(config.seed)
    return task.build_model().state_dict()


JOBS = {"kge": _kge_job, "options": _options_job, "fused": _fused_job}


# -- the command line -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_gnnlm_train_matches_one_process(tmp_path, monkeypatch, capsys):
    """``torchrun --standalone --nproc-per-node 2 -m gnnlm train CONFIG --out RUN`` (fresh processes:
    slow to start) writes one run, reports it once, and ends with the metrics of ``gnnlm train``."""
    import json
    import subprocess

    from gnnlm.cli import main
    from tests.train.tiny_kg import write_tiny_config

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    data = write_tiny_kg(tmp_path / "kg")
    config = write_tiny_config(tmp_path / "tiny.yaml", data, *KGE)
    assert main(["train", str(config), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    capsys.readouterr()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "gnnlm", "train", str(config), "--out", str(tmp_path / "two"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"run_dir"') == 1  # rank 0 reports
    one, two = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    _assert_close_metrics(two, one, ["mrr", "mr", "hits@1", "hits@10"])
    saved = [load_file(tmp_path / r / "model" / "model.safetensors") for r in ("one", "two")]
    _assert_close_weights(saved[1], saved[0])
