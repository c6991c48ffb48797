"""Comparing arms is an engine feature: every variant runs with the same seeds, budget and data order.

A config's ``variants:`` maps an arm's name to overrides of the config; ``seeds:`` lists the seeds every
arm runs with::

    variants:
      lm: {model.injection: []}
      lm+graph: {model.injection: [graph]}
    seeds: [0, 1, 2]

Each (arm, seed) is an ordinary run in ``RUN/runs/<arm>/seed-<seed>/`` (resumable on its own), so the
arms differ in their overrides and nothing else: the engine draws the data order from the seed, and the
task builds the same head for every arm. ``RUN/comparison.json`` and ``RUN/comparison.md`` tabulate every
metric of every split as mean ± sample standard deviation over seeds, with a 95% t-interval of the mean.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnnlm.train.config import RunConfig
from gnnlm.train.run_dir import open_run_dir
from gnnlm.utils.atomic import atomic_write_json, atomic_write_text

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
RUNS_DIR = "runs"


def summarize(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "ci95", "n", "values"}``: sample std (0 for one value) and the half-width of
    a 95% t-interval of the mean (``None`` for one value)."""
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    ci = None
    if n > 1:
        from scipy.stats import t

        ci = float(t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95": ci, "n": n, "values": values}


def paired_bootstrap(
    a: list[list[int]], b: list[list[int]], *, rounds: int = 10000, seed: int = 0
) -> dict[str, float]:
    """``{"mean", "low", "high"}``: the mean over seeds of (accuracy of ``a`` - accuracy of ``b``) and
    its 95% percentile interval, resampling the test examples (``a[s][i]``, ``b[s][i]``: the outcome,
    0 or 1, of example ``i`` under seed ``s``; both arms saw the same examples of a seed).

    Seeds whose example lists have the same length are taken to share the examples (the same test
    set under every seed) and get the *same* resample in a round: resampling each seed on its own
    would treat them as independent test sets and narrow the interval by up to sqrt(seeds). Seeds of
    other lengths are resampled on their own."""
    import torch

    g = torch.Generator().manual_seed(seed)
    diffs = [
        torch.tensor(x, dtype=torch.float) - torch.tensor(y, dtype=torch.float)
        for x, y in zip(a, b)
    ]
    means = torch.zeros(rounds)
    index_of: dict[int, torch.Tensor] = {}  # example count -> this draw, shared by those seeds
    for d in diffs:
        if len(d) not in index_of:
            index_of[len(d)] = torch.randint(0, len(d), (rounds, len(d)), generator=g)
        means += d[index_of[len(d)]].mean(1)
    means /= len(diffs)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975])).tolist()
    return {"mean": float(sum(d.mean() for d in diffs) / len(diffs)), "low": low, "high": high}


@dataclass
class Comparison:
    """The outcome of :func:`run_variants`.

    Attributes:
        arms: arm -> ``{"overrides", "seeds", "runs": {seed: metrics.json}, "summary": {split:
            {metric: summarize(...)}}}``.
        metrics: the task's metric names (table columns), the selection metric first.
        run_dir: where the comparison was written (``None``: nowhere).
        last: the :class:`~gnnlm.train.TrainResult` of the last run trained here (``None`` when every
            run was already finished).
    """

    arms: dict[str, dict[str, Any]]
    metrics: list[str]
    run_dir: Path | None = None
    last: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "arms": self.arms}

    def markdown(self) -> str:
        """One table per split: arms as rows, ``mean ± std`` per metric, and the seeds."""
        lines = []
        splits = sorted({s for arm in self.arms.values() for s in arm["summary"]})
        for split in splits:
            lines += [f"### {split}", "", "| arm | " + " | ".join(self.metrics) + " | seeds |"]
            lines.append("|---" * (len(self.metrics) + 2) + "|")
            for name, arm in self.arms.items():
                cells = []
                for metric in self.metrics:
                    s = arm["summary"].get(split, {}).get(metric)
                    if s is None:
                        cells.append("")
                    elif s["ci95"] is None:
                        cells.append(f"{s['mean']:.4f}")
                    else:
                        cells.append(f"{s['mean']:.4f} ± {s['std']:.4f} (±{s['ci95']:.4f})")
                lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(arm['seeds'])} |")
            lines.append("")
        lines.append(
            "mean ± sample standard deviation over seeds (±half-width of the 95% t-interval of the mean)."
        )
        return "\n".join(lines) + "\n"


def run_variants(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    data: Any = None,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
) -> Comparison:
    """Run every arm of ``config.variants`` (or the config itself) with every seed of ``config.seeds``
    (or ``config.seed``), and write the comparison table into ``run_dir``.

    With ``resume``, finished runs are read back and unfinished ones continue from their checkpoints.

    Args:
        data: the task's data, if already loaded (shared by every run).
    """
    from gnnlm.train.trainer import Trainer, TrainResult

    config.check_variants()
    arms = dict(config.variants) or {"run": {}}
    seeds = list(config.seeds) or [config.seed]
    root = Path(run_dir) if run_dir is not None else None
    out: dict[str, dict[str, Any]] = {}
    last: TrainResult | None = None
    metrics: list[str] = []
    # each run's config and folder, built once
    plan = {
        (arm, seed): (
            config.variant(arm if config.variants else None, seed),
            root / RUNS_DIR / arm / f"seed-{seed}" if root is not None else None,
        )
        for arm in arms
        for seed in seeds
    }
    with contextlib.ExitStack() as stack:
        if root is not None:
            stack.enter_context(open_run_dir(root, resume=resume, overwrite=overwrite))
            if resume:  # every finished run first, before anything is written
                for single, sub in plan.values():
                    if (sub / "metrics.json").is_file():
                        check_finished_run(sub, single)
            config.save(root / "config.yaml")
        for arm, overrides in arms.items():
            runs: dict[str, Any] = {}
            for seed in seeds:
                single, sub = plan[arm, seed]
                done = sub / "metrics.json" if sub is not None else None
                if resume and done is not None and done.is_file():  # checked above
                    runs[str(seed)] = json.loads(done.read_text())
                    continue
                trainer = Trainer(single, run_dir=sub, data=data, quiet=quiet)
                metrics = metrics or _metric_order(trainer)
                again = resume and sub is not None and (sub / "checkpoint.safetensors").is_file()
                last = trainer.fit(resume=again)
                runs[str(seed)] = last.metrics
            out[arm] = {
                "overrides": overrides or {},
                "seeds": seeds,
                "runs": runs,
                "summary": _summaries(runs.values()),
            }
            comparison = Comparison(out, metrics or _metric_names(out), root, last)
            if root is not None:  # after every arm: a stopped comparison keeps what it has
                atomic_write_json(root / COMPARISON_JSON, comparison.to_dict())
                atomic_write_text(root / COMPARISON_MD, comparison.markdown())
    if not quiet:
        print(comparison.markdown(), end="")
    return comparison


def check_finished_run(run_dir: Path, config: RunConfig) -> None:
    """Refuse to read back a finished run trained with another config than ``config``.

    A resumed comparison keeps its finished runs; one trained under other settings (a config file
    edited since, different ``--set`` overrides) would otherwise be tabulated beside the new ones as
    if they were the same experiment. Keys that may change on resume (``training.epochs``,
    ``training.keep_checkpoint``) are ignored, as when an unfinished run resumes.

    Raises:
        ConfigError: naming the run and every differing key with both values.
    """
    from gnnlm.config import ConfigError
    from gnnlm.train.trainer import resume_mismatch

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: a finished run without its config.yaml cannot be resumed")
    if lines := resume_mismatch(type(config).load(path), config):
        raise ConfigError(
            f"{path}: this finished run was trained with another config ({lines}); resume with the "
            f"same config and overrides, or run into a new folder"
        )


def _metric_order(trainer: Any) -> list[str]:
    names = list(trainer.task.metrics)
    return [trainer.metric] + [m for m in names if m != trainer.metric]


def _metric_names(arms: dict[str, dict[str, Any]]) -> list[str]:
    """Metric columns when every run was read back from disk: the numeric keys of their splits."""
    for arm in arms.values():
        for split in arm["summary"].values():
            return list(split)
    return []


def _summaries(runs: Any) -> dict[str, dict[str, Any]]:
    """split -> metric -> :func:`summarize` over the runs' ``metrics.json`` (numeric values only)."""
    values: dict[str, dict[str, list[float]]] = {}
    for metrics in runs:
        for split in ("valid", "test"):
            for key, value in (metrics.get(split) or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values.setdefault(split, {}).setdefault(key, []).append(float(value))
    return {
        split: {key: summarize(v) for key, v in metrics.items()}
        for split, metrics in values.items()
    }
