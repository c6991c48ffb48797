"""Fine-tuning strategies through the engine: frozen parts stay bit-identical (and only they), LoRA
leaves the LM's weights alone and merges to an equal-output model, phases switch the trainable set and
learning rates at their step, adversarial and meta steps differ from plain ones, two-stage training
hands over the stage-1 weights exactly, and every strategy resumes bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from gnnlm.config import ConfigError
from gnnlm.tasks.loading import config_from_mapping
from gnnlm.train import Trainer
from tests.tasks.test_multitask import subtask, write_graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Path:
    return write_graph(tmp_path_factory.mktemp("kg") / "g", 20, 110)


def config(
    graph: Path, finetuning: dict[str, Any] | None = None, model: dict | None = None, **top: Any
):
    mapping = {
        **subtask(graph, num_train=12),
        "training": {"epochs": 2, "batch_size": 4, "optimizer": "adamw", "lr": 3e-3,
                     "param_groups": {}},
        "evaluation": {"batch_size": 8, "frequency": 1},
        "finetuning": finetuning or {},
        **top,
    }  # fmt: skip
    mapping["model"] = {**mapping["model"], "freeze_lm_layers": 0, **(model or {})}
    return config_from_mapping(mapping)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    return {k for k, v in model.named_parameters() if not torch.equal(before[k], v)}


def train_steps(cfg, steps: int, capture=None):
    """Build the trainer, run ``steps`` optimizer steps (stopping there), return (trainer, start
    weights, per-step records of ``capture(trainer)``)."""
    trainer = Trainer(cfg, quiet=True)
    records = []

    class Stop(Exception):
        pass

    def callback(t):
        if capture is not None:
            records.append(capture(t))
        if t.step == steps:
            raise Stop

    trainer.step_callbacks.append(callback)
    start: dict[str, torch.Tensor] = {}
    original = trainer._build

    def build():
        original()
        start.update(weights(trainer.model))

    trainer._build = build
    with pytest.raises(Stop):
        trainer.fit()
    return trainer, start, records


# -- partial -----------------------------------------------------------------------------------------
def test_frozen_patterns_are_bit_identical_after_steps_and_only_they(graph):
    cfg = config(graph, {"freeze": ["fused.lm.*", "head.bias"]})
    trainer, start, _ = train_steps(cfg, 3)
    moved = changed(start, trainer.model)
    frozen = {k for k in start if k.startswith("fused.lm.") or k == "head.bias"}
    assert frozen and not (moved & frozen)
    # everything else that gets a gradient moved (the GNN, the fusion modules, the head's weight)
    assert "head.weight" in moved and any(k.startswith("fused.injections.") for k in moved)
    assert trainer.strategy.trainable_parameters["trainable"] == sum(
        p.numel() for k, p in trainer.model.named_parameters() if k not in frozen
    )


def test_freeze_lm_layers_freezes_the_embeddings_and_bottom_layers(graph):
    trainer, start, _ = train_steps(config(graph, {"freeze_lm_layers": 1}), 2)
    moved = changed(start, trainer.model)
    assert not {k for k in moved if ".embeddings." in k or ".layer.0." in k}
    assert any(".layer.1." in k for k in moved)


def test_a_pattern_that_selects_nothing_is_an_error(graph):
    with pytest.raises(ConfigError, match=r"finetuning.freeze has 'fused.lmm.\*', which selects"):
        Trainer(config(graph, {"freeze": ["fused.lmm.*"]}), quiet=True).fit()


def test_lora_trains_adapters_only_and_merges_to_an_equal_output_model(graph, tmp_path):
    cfg = config(graph, {"lora": {"r": 4, "alpha": 8}}, training={"epochs": 1, "batch_size": 4})
    trainer, start, _ = train_steps(cfg, 2)
    model = trainer.model
    moved = changed(start, model)
    lm_base = {k for k in start if k.startswith("fused.lm.") and "lora_" not in k}
    assert lm_base and not (moved & lm_base)  # the LM's own weights are untouched
    assert any("lora_B" in k for k in moved)  # the adapters learn (B starts at zero)
    assert "head.weight" in moved  # the rest of the model trains as before
    batch = trainer.task._batch(model, trainer.task.examples["valid"])
    model.eval()
    with torch.no_grad():
        before, _ = model(batch)
        from gnnlm.strategies.partial import has_lora, merge_lora

        assert merge_lora(model) == 2 * 2  # query and value of 2 layers
        assert not has_lora(model)
        after, _ = model(batch)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_a_lora_run_saves_the_merged_plain_model(graph, tmp_path, capsys):
    cfg = config(graph, {"lora": {"r": 2}}, training={"epochs": 1, "batch_size": 4})
    result = Trainer(cfg, run_dir=tmp_path / "run").fit()
    assert "trainable parameters:" in capsys.readouterr().err
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert not any("lora" in k for k in saved)
    assert result.metrics["lora_merged_layers"] == 4
    t = result.metrics["trainable_parameters"]
    assert 0 < t["trainable"] < t["total"]
    from gnnlm.cli.evaluate import load_run

    _, task, model = load_run(tmp_path / "run")  # the plain architecture reloads, scores the same
    with torch.no_grad():
        assert task.evaluate(model.eval(), "test")["accuracy"] == result.metrics["test"]["accuracy"]


# -- staged ------------------------------------------------------------------------------------------
def test_phases_switch_the_trainable_set_and_learning_rates_at_their_step(graph):
    phases = [
        {"steps": 2, "trainable": ["head"], "lr": {"head": 0.05}},
        {"trainable": ["all"], "lr": {"lm": 1e-4}},
    ]

    def capture(t):
        return {g["name"]: g["lr"] for g in t.optimizer.param_groups}, weights(t.model)

    trainer, start, records = train_steps(config(graph, {"phases": phases}), 3, capture)
    lrs = [r[0] for r in records]
    assert lrs[0]["head"] == lrs[1]["head"] == 0.05 and lrs[0]["lm"] == 3e-3
    assert lrs[2]["head"] == 3e-3 and lrs[2]["lm"] == 1e-4 and lrs[2]["gnn"] == 3e-3
    after_two = records[1][1]
    moved = {k for k in start if not torch.equal(start[k], after_two[k])}
    assert moved == {"head.weight", "head.bias"}  # phase 1 trained the head only
    moved = {k for k in start if not torch.equal(after_two[k], records[2][1][k])}
    assert any(k.startswith("fused.lm.") for k in moved)  # phase 2 trains everything
    assert trainer.strategy.trainable_parameters["phases"][0] == 41  # Linear(32 + 8 -> 1)


def test_phases_with_an_epoch_schedule_are_refused(graph):
    cfg = config(
        graph, {"phases": [{"steps": 1, "trainable": ["head"]}, {}]},
        training={"scheduler": "step", "scheduler_kwargs": {"step_size": 1}},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="per-step"):
        Trainer(cfg, quiet=True).fit()


# -- adversarial and meta ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_an_adversarial_step_differs_from_the_clean_one(graph, method):
    plain, _, _ = train_steps(config(graph), 1)
    adv, _, _ = train_steps(config(graph, {"adversarial": {"method": method, "epsilon": 0.5}}), 1)
    assert changed(weights(plain.model), adv.model)


@pytest.mark.parametrize("method", ["reptile", "fomaml"])
def test_a_meta_learning_run_trains_on_episodes(graph, method):
    meta = {"method": method, "shots": 1, "queries": 1, "meta_batch_size": 2, "inner_steps": 1}
    trainer, start, _ = train_steps(config(graph, {"meta": meta}), 2)
    assert "head.weight" in changed(start, trainer.model)


def test_meta_with_accumulation_is_refused(graph):
    cfg = config(graph, {"meta": {"method": "reptile"}}, training={"accumulation_steps": 2})
    with pytest.raises(ConfigError, match="accumulation_steps: 1"):
        Trainer(cfg, quiet=True).fit()


# -- two-stage ---------------------------------------------------------------------------------------
def test_two_stage_starts_from_exactly_the_first_stages_weights(graph, tmp_path, monkeypatch):
    stage1 = {**subtask(graph, num_train=8, negatives="uniform"),
              "training": {"epochs": 1, "batch_size": 4}, "evaluation": {"frequency": 0}}  # fmt: skip
    cfg = config(graph, pretraining=stage1, training={"epochs": 1, "batch_size": 4})
    import gnnlm.train.trainer as trainer_module

    seen = {}
    original = trainer_module.init_shared_weights

    def spy(model, source):
        record = original(model, source)
        seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return record

    monkeypatch.setattr(trainer_module, "init_shared_weights", spy)
    result = Trainer(cfg, run_dir=tmp_path / "run", quiet=True).fit()
    stage_weights = load_file(tmp_path / "run" / "pretraining" / "model" / "model.safetensors")
    assert seen.keys() == stage_weights.keys()
    assert all(torch.equal(seen[k], stage_weights[k]) for k in seen)
    record = json.loads((tmp_path / "run" / "init_from.json").read_text())
    assert record["copied"] == len(stage_weights) and result.metrics["init_from"] == record
    # resuming a finished two-stage run does not pre-train again
    mtime = (tmp_path / "run" / "pretraining" / "metrics.json").stat().st_mtime_ns
    cfg.training.epochs = 2
    Trainer(cfg, run_dir=tmp_path / "run", quiet=True).fit(resume=True)
    assert (tmp_path / "run" / "pretraining" / "metrics.json").stat().st_mtime_ns == mtime


# -- exact resume ------------------------------------------------------------------------------------
class Killed(RuntimeError):
    pass


STRATEGIES = {
    "lora": {"lora": {"r": 2}},
    "freeze": {"freeze": ["fused.lm.*"]},
    "phases": {"phases": [{"steps": 4, "trainable": ["head", "gates"]}, {"trainable": ["all"]}]},
    "fgm": {"adversarial": {"method": "fgm"}},
    "pgd": {"adversarial": {"method": "pgd", "steps": 2}},
    "freelb": {"adversarial": {"method": "freelb", "steps": 2}},
    "reptile": {"meta": {"method": "reptile", "shots": 1, "queries": 1, "meta_batch_size": 2}},
    "fomaml": {"meta": {"method": "fomaml", "shots": 1, "queries": 1, "meta_batch_size": 2}},
    "staged+fgm+lora": {
        "lora": {"r": 2},
        "adversarial": {"method": "fgm"},
        "phases": [{"steps": 3, "trainable": ["head"]}, {"trainable": ["all"]}],
    },  # fmt: skip
}


ADAPTIVE = {
    "injection": ["graph", "adaptive"],
    "injection_kwargs": {"adaptive": {"regularizer": "target", "target": 0.5}},
}


@pytest.mark.parametrize("name", [*STRATEGIES, "adaptive", "two_stage", "two_stage_in_stage_1"])
def test_every_strategy_resumes_bit_for_bit(graph, tmp_path, name):
    """2 epochs of 3 steps with a checkpoint after every step, killed after step 4 (mid-epoch, in the
    second phase where there are phases; for two-stage, in either stage): the resumed run's weights,
    logs and metrics equal an uninterrupted run's."""
    top: dict[str, Any] = {}
    if name.startswith("two_stage"):
        top["pretraining"] = {
            "task": "pretraining", "objectives": ["mlm", "link_prediction"],
            "data": {"num_train": 12, "num_valid": 4, "max_length": 24},
            "training": {"epochs": 2, "batch_size": 4, "checkpoint_steps": 1},
            "evaluation": {"frequency": 0, "metric": "loss"},
        }  # fmt: skip
    cfg = config(
        graph, STRATEGIES.get(name), ADAPTIVE if name == "adaptive" else None,
        training={"epochs": 2, "batch_size": 4, "checkpoint_steps": 1}, **top,
    )  # fmt: skip

    stage = "pretraining" if name == "two_stage_in_stage_1" else cfg.task

    def kill_after(trainer):
        if trainer.step == 4 and trainer.config.task == stage:
            raise Killed

    Trainer(cfg, run_dir=tmp_path / "a", quiet=True).fit()
    with pytest.raises(Killed):
        Trainer(cfg, run_dir=tmp_path / "b", quiet=True, step_callbacks=[kill_after]).fit()
    Trainer(cfg, run_dir=tmp_path / "b", quiet=True).fit(resume=True)
    a, b = (load_file(tmp_path / run / "model" / "model.safetensors") for run in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [
        [{k: v for k, v in json.loads(line).items() if k != "seconds"}
         for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in "ab"
    ]  # fmt: skip
    assert logs[0] == logs[1]
