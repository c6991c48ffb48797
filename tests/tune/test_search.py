"""``gnnlm.tune.tune`` on a tiny KG: best.yaml trains, the study resumes, pruning stops bad trials."""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from gnnlm.config import ConfigError
from gnnlm.tasks import load_config
from gnnlm.train import Trainer
from gnnlm.tune import SearchSpace, format_table, tune
from gnnlm.tune.search import STORAGE_NAME, STUDY_NAME
from tests.train.tiny_kg import write_tiny_config, write_tiny_kg

SPACE = (
    "training.lr: {type: float, low: 1e-3, high: 0.3, log: true}\n"
    "model.embedding_dim: {type: int, low: 8, high: 32, step: 8}\n"
)


@pytest.fixture
def setup(tmp_path):
    """``(config path, space path)`` of a tiny KG search (8-wide DistMult, 4 epochs)."""
    kg = write_tiny_kg(tmp_path / "kg")
    config = write_tiny_config(tmp_path / "tiny.yaml", kg, "evaluation.frequency=1")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return config, space


def test_search_writes_best_yaml_that_trains_to_the_same_value(setup, tmp_path):
    config_path, space = setup
    result = tune(config_path, space, tmp_path / "search", trials=3, quiet=True)
    assert [row["state"] for row in result.rows] == ["complete"] * 3
    # the first trial is the config's own values (lr 0.05 lies in the space; dim 8 too)
    assert result.study.trials[0].params == {"training.lr": 0.05, "model.embedding_dim": 8}
    values = [t.value for t in result.study.trials]
    assert result.best_value == max(values)
    assert result.best_trial == values.index(max(values))

    with open(tmp_path / "search" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert [float(r["value"]) for r in rows] == pytest.approx(values)
    assert [float(r["training.lr"]) for r in rows] == pytest.approx(
        [t.params["training.lr"] for t in result.study.trials]
    )
    for n in range(3):  # every trial is a full run directory of the engine
        trial_dir = tmp_path / "search" / "trials" / str(n)
        metrics = json.loads((trial_dir / "metrics.json").read_text())
        assert metrics["valid"]["mrr"] == pytest.approx(values[n])
        assert json.loads((trial_dir / "trial.json").read_text())["state"] == "complete"

    # best.yaml is a config `gnnlm train` takes unchanged; same seed, so the same valid MRR
    from gnnlm.cli import main

    best = tmp_path / "search" / "best.yaml"
    assert main(["train", str(best), "--out", str(tmp_path / "retrain"), "--quiet"]) == 0
    retrained = json.loads((tmp_path / "retrain" / "metrics.json").read_text())
    assert retrained["valid"]["mrr"] == pytest.approx(result.best_value, abs=1e-12)
    loaded = load_config(best)
    params = result.study.best_trial.params
    assert loaded.training.lr == params["training.lr"]
    assert loaded.model.embedding_dim == params["model.embedding_dim"]
    assert loaded.training.epochs == 4  # everything else is the tuned config's

    table = format_table(result)
    assert table.splitlines()[0].split()[:3] == ["trial", "state", "mrr"]
    assert table.splitlines()[2].split()[0] == str(result.best_trial)  # best first


def test_rerun_resumes_the_study(setup, tmp_path):
    config_path, space = setup
    out = tmp_path / "search"
    first = tune(config_path, space, out, trials=2, quiet=True)
    stamp = (out / "trials" / "0" / "metrics.json").stat().st_mtime_ns
    second = tune(config_path, space, out, trials=4, quiet=True)
    assert len(second.study.trials) == 4  # continued: two new trials, not four
    assert [t.number for t in second.study.trials] == [0, 1, 2, 3]
    for old, new in zip(first.study.trials, second.study.trials[:2]):
        assert (old.params, old.value) == (new.params, new.value)
    assert (out / "trials" / "0" / "metrics.json").stat().st_mtime_ns == stamp  # not re-run
    # the resumed sampler does not redraw the points drawn before
    points = [tuple(t.params.values()) for t in second.study.trials]
    assert len(set(points)) == 4
    third = tune(config_path, space, out, trials=4, quiet=True)
    assert len(third.study.trials) == 4  # finished: nothing runs again
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0", "1", "2", "3"]


def test_another_config_or_space_is_refused(setup, tmp_path):
    config_path, space = setup
    out = tmp_path / "search"
    tune(config_path, space, out, trials=1, quiet=True)
    changed = load_config(config_path, ["training.epochs=3"])
    with pytest.raises(ConfigError, match=r"study.db: this search was started with another config "
                       r"\(training.epochs: 4 -> 3\)"):  # fmt: skip
        tune(changed, space, out, trials=2, quiet=True)
    other = tmp_path / "other.yaml"
    other.write_text(SPACE.replace("high: 0.3", "high: 0.5"))
    with pytest.raises(ConfigError, match=r"started with another space \(training.lr: .*0.3.* -> "):
        tune(config_path, other, out, trials=2, quiet=True)
    assert len(optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / STORAGE_NAME}")
               .trials) == 1  # fmt: skip


def test_absurd_lr_is_pruned_and_its_run_dir_stays_consistent(setup, tmp_path):
    config_path, space = setup
    config = load_config(config_path, ["model.embedding_dim=32", "training.epochs=6"])
    only_lr = tmp_path / "lr.yaml"
    only_lr.write_text("training.lr: {type: float, low: 1e-6, high: 1.0, log: true}\n")
    # trial 0 learns (lr 0.2: valid MRR >= 0.15 from epoch 1); trial 1 cannot (lr 1e-5: MRR stays at
    # its initial 0.08), so the median pruner, with one finished trial, stops it at its first report
    result = tune(
        config, only_lr, tmp_path / "search", trials=2, quiet=True, baseline=False,
        enqueue=[{"training.lr": 0.2}, {"training.lr": 1e-5}], pruner_startup_trials=1,
    )  # fmt: skip
    good, bad = result.study.trials
    assert good.state.name == "COMPLETE" and bad.state.name == "PRUNED"
    assert bad.intermediate_values.keys() == {1}
    assert bad.intermediate_values[1] < min(good.intermediate_values.values())
    assert result.best_trial == 0
    assert [row["state"] for row in result.rows] == ["complete", "pruned"]

    trial_dir = tmp_path / "search" / "trials" / "1"
    record = json.loads((trial_dir / "trial.json").read_text())
    assert record["state"] == "pruned" and record["epoch"] == 1
    assert "worse than the median" in record["reason"]
    assert not (trial_dir / "metrics.json").exists()
    rows = (trial_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2  # header + epoch 1
    # consistent: the checkpoint is of the epoch it stopped at, and the run resumes from it
    trial_config = load_config(trial_dir / "config.yaml")
    assert trial_config.training.lr == 1e-5
    resumed = Trainer(trial_config, run_dir=trial_dir, quiet=True).fit(resume=True)
    assert resumed.metrics["epochs"] == 6
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4, 5, 6]


def test_interrupted_trial_is_tried_again(setup, tmp_path):
    config_path, space = setup
    out = tmp_path / "search"
    tune(config_path, space, out, trials=1, quiet=True)
    # a process killed mid-trial leaves the trial RUNNING in the storage
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / STORAGE_NAME}")
    trial = study.ask()
    SearchSpace.load(space, load_config(config_path)).suggest(trial)
    left = dict(trial.params)
    result = tune(config_path, space, out, trials=2, quiet=True)
    states = [t.state.name for t in result.study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]  # two finished trials, as asked
    assert result.study.trials[1].user_attrs["interrupted"] is True
    assert result.study.trials[2].params == left  # its point ran again
    assert result.rows[1]["state"] == "fail (interrupted)"


def test_comparison_config_and_bad_trials(setup, tmp_path):
    config_path, space = setup
    comparison = load_config(config_path, ["variants={a: {training.lr: 0.1}}"])
    with pytest.raises(ConfigError, match="searches one run; this config has variants"):
        tune(comparison, space, tmp_path / "a", trials=1)
    with pytest.raises(ConfigError, match="--trials must be >= 1"):
        tune(config_path, space, tmp_path / "b", trials=0)
    # a trial whose values the task refuses fails alone; the search goes on
    loss = tmp_path / "loss.yaml"
    loss.write_text("training.loss: {type: categorical, choices: [margin, bce]}\n")
    result = tune(
        config_path, loss, tmp_path / "c", trials=2, quiet=True, baseline=False,
        enqueue=[{"training.loss": "margin"}, {"training.loss": "bce"}],
    )  # fmt: skip
    assert [row["state"] for row in result.rows] == ["fail", "complete"]
    assert "does not support the kvsall loop" in result.rows[0]["reason"]
    assert result.best_trial == 1


def test_loaded_data_is_shared_by_the_trials(setup, tmp_path):
    from gnnlm.data import load_dataset

    config_path, space = setup
    config = load_config(config_path)
    kg = load_dataset(config.dataset, **config.dataset_kwargs)
    shared = tune(config, space, tmp_path / "shared", trials=2, quiet=True, data=kg)
    loaded = tune(config, space, tmp_path / "loaded", trials=2, quiet=True)
    assert [t.value for t in shared.study.trials] == [t.value for t in loaded.study.trials]
    searches_data = tmp_path / "data.yaml"
    searches_data.write_text("dataset_kwargs.cache: {type: categorical, choices: [false]}\n")
    with pytest.raises(ConfigError, match="searches the dataset, so data cannot be shared"):
        tune(config, searches_data, tmp_path / "x", trials=1, data=kg)
