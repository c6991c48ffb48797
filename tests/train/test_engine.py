"""The training engine with a user-defined task: data order, parameter groups, accumulation, schedules,
early stopping, mid-epoch resume, comparisons, and the task found by dotted path from the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from gnnlm.cli import main
from gnnlm.config import AT_LEAST_1, Config, checked
from gnnlm.train import RunConfig, StepOutput, Task, Trainer, seed_everything
from gnnlm.train.config import ConfigError, EvaluationConfig, TrainingConfig
from gnnlm.train.variants import run_variants

DOTTED = "tests.train.test_engine:RegressionTask"


@dataclass
class RegressionData(Config):
    num_train: int = checked(64, AT_LEAST_1, "64")
    num_eval: int = checked(32, AT_LEAST_1, "32")
    flip_valid: bool = (
        False  # valid targets of the opposite sign: validation gets worse as training fits
    )


@dataclass
class RegressionConfig(RunConfig):
    task: str = DOTTED
    data: RegressionData = field(default_factory=RegressionData)
    training: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(epochs=5, batch_size=8, lr=0.05, optimizer="sgd")
    )
    evaluation: EvaluationConfig = field(
        default_factory=lambda: EvaluationConfig(frequency=1, patience=0)
    )


class Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x))).squeeze(-1)


class RegressionTask(Task):
    """A user's task, as small as a task gets: fit ``y = x @ w`` with a two-layer net."""

    name = "regression_test"
    config_class = RegressionConfig
    metrics = {"mse": "min", "num_examples": "max"}

    def setup(self) -> None:
        g = torch.Generator().manual_seed(1234)  # the data is fixed; the run's seed drives the rest
        d = self.config.data
        w = torch.randn(4, generator=g)
        self.x = {s: torch.randn(n, 4, generator=g) for s, n in
                  (("train", d.num_train), ("valid", d.num_eval), ("test", d.num_eval))}  # fmt: skip
        self.y = {s: x @ w for s, x in self.x.items()}
        if d.flip_valid:
            self.y["valid"] = -self.y["valid"]

    def build_model(self) -> nn.Module:
        return Regressor()

    def parameter_groups(self, model: Regressor) -> dict[str, list[nn.Parameter]]:
        return {"body": list(model.body.parameters()), "head": list(model.head.parameters())}

    def num_train_examples(self) -> int:
        return len(self.y["train"])

    def training_step(self, model, indices, generator):
        loss = nn.functional.mse_loss(model(self.x["train"][indices]), self.y["train"][indices])
        return StepOutput(loss, {"mean_target": float(self.y["train"][indices].mean())})

    def evaluate(self, model, split):
        mse = nn.functional.mse_loss(model(self.x[split]), self.y[split])
        return {"mse": float(mse), "num_examples": len(self.y[split])}

    def predict(self, model, records):
        return [{"y": float(model(torch.tensor([r["x"]], dtype=torch.float)))} for r in records]


def make(**overrides) -> RegressionConfig:
    from gnnlm.config import apply_overrides

    return apply_overrides(RegressionConfig(), overrides)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_task_learns_and_metrics_json_keeps_its_shape(tmp_path):
    start = RegressionTask(make())
    start.setup()
    seed_everything(0)
    with torch.no_grad():
        before = start.evaluate(start.build_model(), "test")["mse"]
    result = Trainer(make(**{"training.epochs": 20}), run_dir=tmp_path, quiet=True).fit()
    assert result.metrics["test"]["mse"] < 0.5 * before
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) >= {"valid", "test", "best_epoch", "epochs", "steps", "train_seconds"}
    assert saved["steps"] == 20 * 64 // 8
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 21))
    assert all("valid_mse" in r and "train_mean_target" in r for r in rows)
    assert "valid_mse" in (tmp_path / "metrics.csv").read_text().splitlines()[0]


def test_accumulation_over_k_micro_batches_equals_one_k_times_larger_batch():
    big = Trainer(make(**{"training.batch_size": 16}), quiet=True).fit()
    small = Trainer(
        make(**{"training.batch_size": 4, "training.accumulation_steps": 4}), quiet=True
    ).fit()
    assert big.metrics["steps"] == small.metrics["steps"] == 5 * 64 // 16
    for key, value in weights(big.model).items():
        torch.testing.assert_close(weights(small.model)[key], value, rtol=1e-5, atol=1e-6)
    # and the micro-batches did not simply make more steps of their own
    plain = Trainer(make(**{"training.batch_size": 4}), quiet=True).fit()
    assert not torch.allclose(plain.model.head.weight, big.model.head.weight, atol=1e-4)


def test_accumulation_weighs_an_uneven_last_group_by_its_examples():
    # 60 examples, micro-batches of 8, groups of 2: the last group is one batch of 4 examples
    config = make(
        **{"data.num_train": 60, "training.batch_size": 8, "training.accumulation_steps": 2}
    )
    big = make(**{"data.num_train": 60, "training.batch_size": 16})
    a, b = Trainer(config, quiet=True).fit(), Trainer(big, quiet=True).fit()
    for key, value in weights(b.model).items():
        torch.testing.assert_close(weights(a.model)[key], value, rtol=1e-5, atol=1e-6)


def test_each_parameter_group_gets_its_own_learning_rate():
    config = make(**{"training.epochs": 1, "training.batch_size": 64, "training.lr": 0.1,
                     "training.param_groups": {"head": {"lr": 0.5}}})  # fmt: skip
    task = RegressionTask(config)
    task.setup()
    seed_everything(0)
    initial = weights(task.build_model())
    seen = {}

    def record(
        trainer: Trainer,
    ) -> None:  # after the one optimizer step; .grad still holds its gradient
        seen["groups"] = [(g["name"], g["lr"]) for g in trainer.optimizer.param_groups]
        seen["after"] = weights(trainer.model)
        seen["grads"] = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}

    Trainer(config, quiet=True, step_callbacks=[record]).fit()
    assert seen["groups"] == [("body", 0.1), ("head", 0.5)]
    for name, grad in seen["grads"].items():
        lr = 0.5 if name.startswith("head") else 0.1
        torch.testing.assert_close(seen["after"][name], initial[name] - lr * grad)


def test_parameter_group_errors_name_the_groups():
    with pytest.raises(ConfigError, match=r"'gates'.*this task's groups are: body, head"):
        Trainer(make(**{"training.param_groups": {"gates": {"lr": 1.0}}}), quiet=True).fit()
    with pytest.raises(
        ConfigError, match=r"param_groups.head has the key 'lrr'.*did you mean 'lr'"
    ):
        Trainer(make(**{"training.param_groups": {"head": {"lrr": 1.0}}}), quiet=True)


def test_linear_warmup_then_decay_is_stepped_per_optimizer_step():
    config = make(**{"training.scheduler": "linear", "training.warmup_steps": 4,
                     "training.epochs": 2, "training.lr": 0.1})  # fmt: skip
    lrs = []
    Trainer(
        config, quiet=True, step_callbacks=[lambda t: lrs.append(t.optimizer.param_groups[0]["lr"])]
    ).fit()
    total = 2 * 64 // 8
    expected = [0.1 * min((s + 1) / 4, (total - s - 1) / (total - 4)) for s in range(total)]
    assert lrs == pytest.approx(expected)
    with pytest.raises(ConfigError, match="warmup_steps applies to the per-step schedules"):
        Trainer(make(**{"training.warmup_steps": 4}), quiet=True)


def test_early_stopping_restores_the_best_weights(tmp_path):
    # valid targets are flipped: the better the fit, the worse validation; the first evaluation is best
    config = make(**{"data.flip_valid": True, "training.epochs": 10, "evaluation.patience": 2})
    snapshots = {}
    result = Trainer(
        config, run_dir=tmp_path, quiet=True,
        callbacks=[lambda t, row: snapshots.setdefault(row["epoch"], weights(t.model))],
    ).fit()  # fmt: skip
    m = result.metrics
    assert m["stopped_early"] and m["epochs"] == 3 and m["best_epoch"] == 1
    for key, value in snapshots[1].items():
        assert torch.equal(result.model.state_dict()[key], value)
    assert not torch.equal(result.model.head.weight, snapshots[3]["head.weight"])
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert m["valid"]["mse"] == pytest.approx(min(r["valid_mse"] for r in rows))


def test_evaluation_every_n_steps_logs_rows_and_can_stop_mid_epoch(tmp_path):
    config = make(**{"evaluation.steps": 3, "evaluation.frequency": 0, "training.epochs": 2})
    result = Trainer(config, run_dir=tmp_path, quiet=True).fit()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "valid_mse" in r] == [3, 6, 9, 12, 15]
    assert [r["step"] for r in rows if "loss" in r] == [8, 16]  # the epochs' rows
    assert result.metrics["steps"] == 16
    config = make(**{"evaluation.steps": 4, "evaluation.frequency": 0, "training.epochs": 2})
    rows = Trainer(config, quiet=True).fit().history
    assert [r["step"] for r in rows if "valid_mse" in r] == [4, 8, 12, 16]  # 8, 16 end epochs
    flipped = make(**{"data.flip_valid": True, "evaluation.steps": 2, "evaluation.frequency": 0,
                      "evaluation.patience": 1, "training.epochs": 3})  # fmt: skip
    stopped = Trainer(flipped, quiet=True).fit().metrics
    assert stopped["stopped_early"] and stopped["steps"] == 4 and stopped["epochs"] == 0
    assert stopped["best_step"] == 2  # the first evaluation was the best; its weights are kept


@pytest.mark.parametrize("stop_at", [3, 8, 13])  # mid-epoch, at an epoch's end, in the second epoch
def test_a_run_killed_mid_epoch_resumes_bit_for_bit(tmp_path, stop_at):
    config = make(**{"training.epochs": 2, "training.checkpoint_steps": 1,
                     "training.scheduler": "linear", "training.warmup_steps": 2})  # fmt: skip
    full = Trainer(config, run_dir=tmp_path / "full", quiet=True).fit()

    def kill(trainer: Trainer) -> None:
        if trainer.step == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config, run_dir=tmp_path / "cut", quiet=True, step_callbacks=[kill]).fit()
    resumed = Trainer(config, run_dir=tmp_path / "cut", quiet=True).fit(resume=True)
    for key, value in weights(full.model).items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("full", "cut"))
    assert a["valid"] == b["valid"] and a["test"] == b["test"]
    rows = [(tmp_path / d / "log.jsonl").read_text().splitlines() for d in ("full", "cut")]
    losses = [[json.loads(r)["loss"] for r in run] for run in rows]
    assert losses[0] == losses[1]  # the epoch's mean loss survives a mid-epoch stop


def test_variants_run_every_arm_with_every_seed_and_tabulate(tmp_path):
    config = make(**{"variants": {"slow": {"training.lr": 0.01}, "fast": {"training.lr": 0.1}},
                     "seeds": [0, 1, 2], "training.epochs": 3})  # fmt: skip
    comparison = run_variants(config, tmp_path, quiet=True)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert list(saved["arms"]) == ["slow", "fast"] and saved["metrics"][0] == "mse"
    for arm, lr in (("slow", 0.01), ("fast", 0.1)):
        runs = [json.loads((tmp_path / "runs" / arm / f"seed-{s}" / "metrics.json").read_text())
                for s in (0, 1, 2)]  # fmt: skip
        values = [r["test"]["mse"] for r in runs]
        summary = saved["arms"][arm]["summary"]["test"]["mse"]
        assert summary["values"] == values and summary["n"] == 3
        assert summary["mean"] == pytest.approx(sum(values) / 3)
        assert summary["std"] > 0 and summary["ci95"] == pytest.approx(
            4.302653 * summary["std"] / math.sqrt(3), rel=1e-5
        )
        config_file = (tmp_path / "runs" / arm / "seed-1" / "config.yaml").read_text()
        assert f"lr: {lr}" in config_file and "seed: 1" in config_file
    assert "| fast |" in (tmp_path / "comparison.md").read_text()
    # the same seed gives every arm the same data order: the first batch's mean target is equal
    first = {arm: json.loads((tmp_path / "runs" / arm / "seed-0" / "log.jsonl").read_text()
             .splitlines()[0])["train_mean_target"] for arm in ("slow", "fast")}  # fmt: skip
    assert first["slow"] == first["fast"]
    # resume reads finished runs back instead of training them again
    again = run_variants(config, tmp_path, quiet=True, resume=True)
    assert (
        again.last is None and again.arms["fast"]["summary"] == comparison.arms["fast"]["summary"]
    )


def test_resume_refuses_finished_runs_of_another_config_before_writing_anything(tmp_path):
    """A resumed comparison must not tabulate runs trained under other settings beside new ones."""
    from gnnlm.config import ConfigError

    config = make(
        **{"variants": {"a": {"training.lr": 0.01}}, "seeds": [0, 1], "training.epochs": 1}
    )
    run_variants(config, tmp_path, quiet=True)
    root_config = (tmp_path / "config.yaml").read_text()
    changed = make(**{"variants": {"a": {"training.lr": 0.02}}, "seeds": [0, 1],
                      "training.epochs": 1})  # fmt: skip
    with pytest.raises(ConfigError, match=r"seed-0/config.yaml: .*training.lr: 0.01 -> 0.02"):
        run_variants(changed, tmp_path, quiet=True, resume=True)
    assert (tmp_path / "config.yaml").read_text() == root_config  # nothing overwritten
    # keys free on resume (more epochs, checkpoint kept or not) are not a different experiment
    more = make(**{"variants": {"a": {"training.lr": 0.01}}, "seeds": [0, 1], "training.epochs": 3,
                   "training.keep_checkpoint": False})  # fmt: skip
    again = run_variants(more, tmp_path, quiet=True, resume=True)
    assert again.last is None and list(again.arms["a"]["runs"]) == ["0", "1"]
    # a finished run that lost its config is refused too
    (tmp_path / "runs" / "a" / "seed-1" / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="without its config.yaml"):
        run_variants(config, tmp_path, quiet=True, resume=True)


def test_a_variant_with_a_typo_fails_before_anything_trains(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"task: {DOTTED}\nvariants:\n  a: {{training.lrr: 0.1}}\n")
    code = main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2 and not (tmp_path / "run").exists()


def test_a_user_task_trains_through_the_cli_by_dotted_path(tmp_path, capsys):
    path = tmp_path / "regression.yaml"
    path.write_text(f"task: {DOTTED}\nseed: 3\ntraining: {{epochs: 20}}\ndata: {{num_train: 48}}\n")
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"]["mse"] < 0.5 and printed["valid"]["num_examples"] == 32
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert f"task: {DOTTED}" in saved and "num_train: 48" in saved
    # evaluating imports the task's module again: only for a trusted run folder
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 2
    assert "names code to import" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "run"), "--json", "--trust-remote-code"]) == 0
    assert json.loads(capsys.readouterr().out)["mse"] == pytest.approx(printed["test"]["mse"])
    # gnnlm predict --input: the task's predict(), one JSON line per record
    records = tmp_path / "x.jsonl"
    records.write_text('{"x": [1, 0, 0, 0]}\n\n{"x": [0, 1, 0, 0]}\n')
    args = ["predict", str(tmp_path / "run"), "--input", str(records), "--trust-remote-code"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(x)["y"], float) for x in lines)
    records.write_text('{"x": [1, 0, 0, 0]}\n{"x": oops}\n')
    assert main(args) == 2
    assert f"{records}:2:7: not JSON" in capsys.readouterr().err


def test_unknown_task_and_wrong_keys_name_file_and_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("task: no_such_task\n")
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    assert f"{path}:1: unknown task 'no_such_task'" in capsys.readouterr().err
    path.write_text(f"task: {DOTTED}\ndata:\n  num_trian: 3\n")
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: unknown config key 'data.num_trian'" in err and "num_train" in err
    path.write_text(f"task: {DOTTED}\ndata:\n  num_train: 0\n")
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "data.num_train must be an integer >= 1, got 0" in capsys.readouterr().err


def test_log_steps_writes_running_training_means_between_epochs(tmp_path):
    config = make(**{"training.log_steps": 3, "training.epochs": 2})
    rows = Trainer(config, run_dir=tmp_path, quiet=True).fit().history
    step_rows = [r for r in rows if "train_loss" in r]
    assert [r["step"] for r in step_rows] == [3, 6, 9, 12, 15]
    assert all("train_mean_target" in r and "valid_mse" not in r for r in step_rows)
    assert [r["step"] for r in rows if "valid_mse" in r] == [8, 16]


def test_an_empty_variant_leaves_the_comparison_intact():
    """``full: {}`` (the config itself) between other arms: checking it must not clear the variants
    (apply_overrides with nothing to apply returned the config itself, which variant() then changed)."""
    from gnnlm.train.config import RunConfig

    config = RunConfig(variants={"a": {"seed": 1}, "full": {}, "b": {"seed": 2}})
    config.check_variants()
    assert list(config.variants) == ["a", "full", "b"]
    assert config.variant("full").variants == {} and config.variant("full") is not config
