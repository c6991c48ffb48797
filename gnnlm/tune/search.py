"""Hyperparameter search on Optuna: every trial is a training run of the one engine.

::

    result = tune("configs/umls/complex.yaml", "configs/umls/complex_space.yaml", "runs/tune", trials=20)
    result.best_config.save("best.yaml")      # what `gnnlm train` takes

A search lives in one directory::

    DIR/study.db        Optuna's SQLite storage: running the same search again resumes it
    DIR/trials/<n>/     trial n's run directory (config.yaml, metrics.csv, model/, ... and trial.json)
    DIR/trials.csv      one row per trial: number, state, value, params, epochs, seconds
    DIR/best.yaml       the best trial's full config, for `gnnlm train`

Sampling is Optuna's TPE (seeded by the config's ``seed`` and the number of trials already in the
study, so a resumed search does not redraw the points it drew before). Every trial trains with the
config's seed; the first trial of a new search is the config itself where its values lie in the space
(``baseline=True``), so the search starts from the config it is asked to improve. After every
validation the trial reports the task's selection metric (``evaluation.metric``) to a median pruner,
which stops trials that are worse than the median of earlier trials at the same epoch (at the same
optimizer step with ``evaluation.steps``). A pruned trial's run directory is left resumable: a
checkpoint of the step it stopped at, logs up to it, and ``trial.json`` saying why it stopped.

``trials`` is the size of the study: finished trials (complete, pruned, failed) are never run again,
and a run with a larger ``trials`` continues the same study. A trial interrupted by the previous
process (Ctrl-C, a kill) is marked failed and its point is tried again. A study is tied to the config
and space it was created with; running it with another is refused.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnnlm.config import ConfigError, apply_overrides, config_diff
from gnnlm.tune.space import SearchSpace
from gnnlm.utils.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import optuna

    from gnnlm.train.config import RunConfig
    from gnnlm.train.trainer import Trainer

STUDY_NAME = "gnnlm-tune"
STORAGE_NAME = "study.db"
TRIAL_RECORD = "trial.json"


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
        study: the Optuna study (every trial of the directory, earlier runs' included).
        best_config: the best trial's config (``None`` when no trial completed).
        best_value: its validation metric.
        best_trial: its number.
        metric: the selection metric; ``maximize``: its direction.
        rows: one dict per trial, as in ``trials.csv``.
        out: the search directory.
    """

    study: optuna.Study
    best_config: RunConfig | None
    best_value: float | None
    best_trial: int | None
    metric: str
    maximize: bool
    rows: list[dict[str, Any]]
    out: Path


def _optuna():
    try:
        import optuna
    except ImportError as err:  # optional dependency
        raise ImportError("gnnlm tune needs optuna: pip install 'gnnlm[tune]'") from err
    return optuna


def tune(
    config: RunConfig | str | Path,
    space: SearchSpace | str | Path,
    out: str | Path,
    *,
    trials: int,
    timeout: float | None = None,
    quiet: bool = False,
    baseline: bool = True,
    enqueue: Sequence[dict[str, Any]] = (),
    pruner_startup_trials: int = 5,
    pruner_warmup_steps: int = 0,
    startup_trials: int | None = None,
    data: Any = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Search ``space`` around ``config`` until the study in ``out`` holds ``trials`` finished trials.

    Args:
        config: the config to tune (a path or a loaded single-run config).
        space: the search space (a path, read against ``config``, or a :class:`SearchSpace`).
        out: the search directory (created; an existing search there is resumed).
        trials: the number of finished trials the study should hold.
        timeout: stop starting new trials after this many seconds (the running one finishes).
        quiet: no progress bars in the trials (each trial's own lines; ``on_trial`` reports trials).
        baseline: make the first trial of a new study the config's own values (those in the space).
        enqueue: more points (``{key: value}``) to try first, before sampling (new studies only).
        pruner_startup_trials: trials that finish before the median pruner prunes anything.
        pruner_warmup_steps: reports (epochs, or steps with ``evaluation.steps``) of a trial before it
            can be pruned.
        startup_trials: random trials before TPE models the space (default: a third of ``trials``,
            between 2 and 10).
        data: the task's data, if loaded (shared by every trial; only when the space does not
            search ``dataset`` or ``dataset_kwargs``).
        on_trial: called with each trial's row when it finishes (progress lines).

    A trial whose values the task refuses (a :class:`ConfigError` when it starts, e.g. a loss the
    loop does not support) or whose loss diverges before any evaluation is recorded as failed, with
    the reason in ``trials.csv``, and the search goes on; a trial that diverges later keeps the
    value of its best weights.

    Raises:
        ConfigError: ``trials < 1``, a comparison config, a malformed space, or a study in ``out``
            made with another config or space.
        RunDirError: another process is running a search in ``out``.
    """
    optuna = _optuna()
    from gnnlm.tasks import load_config
    from gnnlm.train.run_dir import run_dir_lock

    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if not isinstance(config, (str, Path)):
        source = config.origin("") or "the config"
    else:
        source, config = str(config), load_config(config)
    if config.is_comparison:
        raise ConfigError(
            f"{source}: gnnlm tune searches one run; this config has variants/seeds (remove them)"
        )
    if not isinstance(space, SearchSpace):
        space = SearchSpace.load(space, config)
    if data is not None and any(k.split(".")[0].startswith("dataset") for k in space.keys):
        raise ConfigError(
            f"{space.source}: the space searches the dataset, so data cannot be shared"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metric, maximize = _selection_metric(config)
    with run_dir_lock(out):
        storage = optuna.storages.RDBStorage(f"sqlite:///{(out / STORAGE_NAME).resolve()}")
        study = optuna.create_study(
            storage=storage, study_name=STUDY_NAME, load_if_exists=True,
            direction="maximize" if maximize else "minimize",
        )  # fmt: skip
        _check_same_study(study, config, space, out, metric)
        if not study.trials:
            firsts = ([space.defaults(config)] if baseline else []) + list(enqueue)
            for params in firsts:
                if params:
                    study.enqueue_trial(params)
        _retry_interrupted(study, storage)
        done = _finished(study)
        startup = startup_trials if startup_trials is not None else max(2, min(10, trials // 3))
        study.sampler = optuna.samplers.TPESampler(
            seed=config.seed + len(study.trials), n_startup_trials=startup
        )
        study.pruner = optuna.pruners.MedianPruner(
            n_startup_trials=pruner_startup_trials, n_warmup_steps=pruner_warmup_steps
        )
        objective = _Objective(config, space, out, metric, maximize, quiet=quiet, data=data)
        callbacks = []
        if on_trial is not None:
            callbacks.append(lambda s, t: on_trial(trial_row(t, space)))
        if trials > done:
            from gnnlm.train.trainer import TrainingDivergedError

            study.optimize(
                objective, n_trials=trials - done, timeout=timeout, callbacks=callbacks,
                catch=(ConfigError, TrainingDivergedError),
            )  # fmt: skip
        return _write_results(study, config, space, out, metric, maximize)


def _selection_metric(config: RunConfig) -> tuple[str, bool]:
    """The task's selection metric and direction, without loading data."""
    from gnnlm.tasks.loading import task_class

    cls = task_class(config.task, "task")
    metric = config.evaluation.metric or next(iter(cls.metrics), None)
    if metric is None or metric not in cls.metrics:
        raise ConfigError(
            f"{config.at('evaluation.metric')}evaluation.metric={metric!r} is not one of the task's "
            f"metrics ({', '.join(cls.metrics)})"
        )
    return metric, cls.metrics[metric] == "max"


def _check_same_study(
    study: optuna.Study, config: RunConfig, space: SearchSpace, out: Path, metric: str
) -> None:
    """Record the config and space of a new study; refuse to continue one made with others."""
    attrs = study.user_attrs
    where = out / STORAGE_NAME
    if "config" not in attrs:
        study.set_user_attr("config", config.to_dict())
        study.set_user_attr("space", space.to_dict())
        study.set_user_attr("metric", metric)
        return
    saved = type(config).from_dict(attrs["config"], source=str(where))
    diff = config_diff(saved, config)
    if diff:
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{where}: this search was started with another config ({changes}); rerun it with the "
            "same config, or choose another --out"
        )
    if attrs["space"] != json.loads(json.dumps(space.to_dict())):
        old, new = attrs["space"], space.to_dict()
        keys = sorted(set(old) | set(new))
        changes = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys
                            if old.get(k) != json.loads(json.dumps(new.get(k))))  # fmt: skip
        raise ConfigError(
            f"{where}: this search was started with another space ({changes}); rerun it with the "
            f"same --space, or choose another --out"
        )


def _finished(study: optuna.Study) -> int:
    """Trials that count towards ``trials``: finished ones, less those a previous process left
    interrupted (their point runs again)."""
    states = _optuna().trial.TrialState
    return sum(
        1
        for t in study.trials
        if t.state in (states.COMPLETE, states.PRUNED, states.FAIL)
        and not t.user_attrs.get("interrupted")
    )


def _retry_interrupted(study: optuna.Study, storage: Any) -> None:
    """Mark trials left running by an earlier process (we hold the directory's lock, so none is
    running now) as failed and interrupted, and queue their points again."""
    states = _optuna().trial.TrialState
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    for t in study.trials:
        if t.state is not states.RUNNING:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, states.FAIL)
        if t.params:
            study.enqueue_trial(t.params)


class _Objective:
    """Train one trial in ``out/trials/<number>`` and return its best validation metric."""

    def __init__(self, config, space, out, metric, maximize, *, quiet, data) -> None:
        self.config, self.space, self.out = config, space, out
        self.metric, self.maximize, self.quiet, self.data = metric, maximize, quiet, data

    def __call__(self, trial: optuna.Trial) -> float:
        from gnnlm.train.trainer import Trainer, TrainingDivergedError

        optuna = _optuna()
        start = time.perf_counter()
        params = self.space.suggest(trial)
        run_dir = self.out / "trials" / str(trial.number)
        record = {"number": trial.number, "params": params, "run_dir": str(run_dir)}
        try:
            config = apply_overrides(self.config, params)
            config._origins = {"": f"trial {trial.number} of {self.out}"}
            reporter = _Reporter(trial, self.metric, by_step=bool(config.evaluation.steps))
            trainer = Trainer(
                config, run_dir=run_dir, data=self.data, quiet=self.quiet,
                callbacks=[reporter.after_epoch], step_callbacks=[reporter.after_step],
            )  # fmt: skip
            result = trainer.fit(overwrite=True)
        except optuna.TrialPruned as err:
            record.update(state="pruned", reason=str(err), **reporter.where)
            self._finish(trial, run_dir, record, start)
            raise
        except TrainingDivergedError as err:
            if err.result is None or "valid" not in err.result.metrics:
                record.update(state="failed", reason=str(err))
                self._finish(trial, run_dir, record, start)
                raise
            result = err.result  # the best finite weights so far: a usable, if poor, trial
            record["diverged"] = str(err)
            trial.set_user_attr("diverged", True)
        except KeyboardInterrupt:  # Ctrl-C: Optuna marks the trial failed; it runs again on resume
            trial.set_user_attr("interrupted", True)
            if trial.params:
                trial.study.enqueue_trial(trial.params)
            raise
        except ConfigError as err:
            record.update(state="failed", reason=str(err))
            self._finish(trial, run_dir, record, start)
            raise
        if "valid" not in result.metrics:
            raise ConfigError(f"{self.config.dataset}: gnnlm tune needs a validation split")
        value = float(result.metrics["valid"][self.metric])
        trial.set_user_attr("epochs", result.metrics["epochs"])
        record.update(state="complete", value=value, best_epoch=result.metrics["best_epoch"],
                      epochs=result.metrics["epochs"])  # fmt: skip
        self._finish(trial, run_dir, record, start)
        return value

    @staticmethod
    def _finish(trial, run_dir: Path, record: dict[str, Any], start: float) -> None:
        seconds = time.perf_counter() - start
        trial.set_user_attr("seconds", seconds)
        if "reason" in record:
            trial.set_user_attr("reason", record["reason"][:500])
        if "epoch" in record:
            trial.set_user_attr("epochs", record["epoch"])
        if run_dir.is_dir():
            atomic_write_json(run_dir / TRIAL_RECORD, {**record, "seconds": seconds})


class _Reporter:
    """The Trainer callbacks of a trial: report each validation to Optuna, prune when told to."""

    def __init__(self, trial: optuna.Trial, metric: str, *, by_step: bool) -> None:
        self.trial, self.key, self.by_step = trial, f"valid_{metric}", by_step
        self.reported: int | None = None
        self.where: dict[str, Any] = {}

    def after_epoch(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self._report(trainer, row)

    def after_step(self, trainer: Trainer) -> None:
        rows = trainer.logger.rows
        if rows and rows[-1].get("step") == trainer.step:  # a step-level validation just logged
            self._report(trainer, rows[-1])

    def _report(self, trainer: Trainer, row: dict[str, Any]) -> None:
        value = row.get(self.key)
        position = int(row["step"] if self.by_step else row["epoch"])
        if value is None or position == self.reported:
            return
        self.reported = position
        self.trial.report(float(value), position)
        if not self.trial.should_prune():
            return
        # Stop here with a consistent run directory: a checkpoint of this very step (the logs hold
        # rows up to it), so `gnnlm train --resume` on the trial's folder could continue it.
        if trainer.run_dir is not None:
            from gnnlm.train.trainer import CHECKPOINT_NAME

            trainer.save_checkpoint(trainer.run_dir / CHECKPOINT_NAME)
        self.where = {"epoch": trainer.epoch, "step": trainer.step, "value": float(value)}
        unit = "step" if self.by_step else "epoch"
        raise _optuna().TrialPruned(
            f"{self.key}={value:.4f} at {unit} {position} is worse than the median of earlier trials"
        )


# -- results ---------------------------------------------------------------------------------------
def trial_row(t: optuna.trial.FrozenTrial, space: SearchSpace) -> dict[str, Any]:
    """One ``trials.csv`` row: number, state, value (the last reported for a pruned trial), params."""
    last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
    value = t.value if t.value is not None else last
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name.lower()
        + (" (interrupted)" if t.user_attrs.get("interrupted") else ""),
        "value": value,
        "epochs": t.user_attrs.get("epochs"),
        "seconds": t.user_attrs.get("seconds"),
    }
    row.update({key: t.params.get(key) for key in space.keys})
    row["reason"] = t.user_attrs.get("reason", "")
    return row


def _write_results(
    study: optuna.Study,
    config: RunConfig,
    space: SearchSpace,
    out: Path,
    metric: str,
    maximize: bool,
) -> TuneResult:
    rows = [trial_row(t, space) for t in study.trials]
    buffer = io.StringIO()
    fields = ["number", "state", "value", "epochs", "seconds", *space.keys, "reason"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "trials.csv", buffer.getvalue())
    complete = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if not complete:
        return TuneResult(study, None, None, None, metric, maximize, rows, out)
    best = study.best_trial
    best_config = apply_overrides(config, {k: best.params[k] for k in space.keys})
    header = (
        f"# best of {len(complete)} completed trials ({len(study.trials)} in all) of gnnlm tune in "
        f"{out}:\n# trial {best.number}, valid {metric} = {best.value:.4f} "
        f"({'higher' if maximize else 'lower'} is better); searched: {', '.join(space.keys)}\n"
    )
    atomic_write_text(out / "best.yaml", header + best_config.to_yaml())
    return TuneResult(study, best_config, best.value, best.number, metric, maximize, rows, out)


def format_table(result: TuneResult, *, limit: int | None = None) -> str:
    """The trials as a fixed-width table, best first (complete, then pruned, then failed)."""
    sign = -1 if result.maximize else 1

    def order(row: dict[str, Any]) -> tuple:
        rank = {"complete": 0, "pruned": 1}.get(row["state"], 2)
        value = row["value"]
        return (rank, sign * value if value is not None and math.isfinite(value) else math.inf)

    rows = sorted(result.rows, key=order)[:limit]
    keys = (
        [k for k in result.rows[0] if k not in ("number", "state", "value", "reason")]
        if rows
        else []
    )
    header = ["trial", "state", result.metric, *keys]
    lines = [header]
    for row in rows:
        value = row["value"]
        cells = [str(row["number"]), row["state"], "-" if value is None else f"{value:.4f}"]
        cells += [_cell(row[k]) for k in keys]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = io.StringIO()
    for i, line in enumerate(lines):
        text.write("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n")
        if i == 0:
            text.write("  ".join("-" * w for w in widths) + "\n")
    return text.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
