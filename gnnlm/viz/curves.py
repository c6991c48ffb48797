"""Training curves of a run (or of a comparison's runs together) and the rank histogram of link prediction.

From a run directory's log (``log.jsonl``, else ``metrics.csv``; :class:`~gnnlm.train.run_log.
MetricsLogger`)::

    plot_runs({"run": read_history("runs/umls-complex")}, "curves.png", ranks=test_ranks)

draws one panel per kind of series, against the optimizer step: the training loss; the validation
metrics that lie in [0, 1] (MRR, Hits@k, accuracy); the other validation metrics (MR, a loss); the
learning rates (``lr`` and one per named parameter group, log scale); the injection gates where the
task logs them (:func:`gnnlm.viz.gates.gate_series`); and, given link-prediction ranks, their histogram
(:func:`rank_histogram`). Several runs (a comparison's arms and seeds, :func:`comparison_runs`) share
the panels, one colour per arm.

Figures are built with the object API (:class:`matplotlib.figure.Figure`): no GUI backend, no pyplot
state; matplotlib is imported only when drawing.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gnnlm.viz.gates import gate_series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Rows = list[dict[str, Any]]


class NoMetricsError(FileNotFoundError):
    """A folder without a run's log (``log.jsonl`` / ``metrics.csv``)."""


def read_history(run_dir: str | Path) -> Rows:
    """The logged rows of a run directory: ``log.jsonl`` (every key), else ``metrics.csv``.

    Raises:
        NoMetricsError: neither file, or no row in it.
    """
    run_dir = Path(run_dir)
    jsonl, table = run_dir / "log.jsonl", run_dir / "metrics.csv"
    if jsonl.is_file():
        rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    elif table.is_file():
        with open(table, newline="") as f:
            rows = [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    else:
        raise NoMetricsError(
            f"{run_dir}: no log.jsonl or metrics.csv: not a run directory of gnnlm train, or its "
            "first epoch has not ended yet"
        )
    if not rows:
        raise NoMetricsError(f"{jsonl if jsonl.is_file() else table}: no rows logged yet")
    return rows


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def comparison_runs(root: str | Path) -> dict[str, Path]:
    """``{"<arm>/seed-<s>": run dir}`` of a comparison (``RUN/runs/<arm>/seed-<s>/``), in arm order;
    ``{}`` for a single run."""
    runs = Path(root) / "runs"
    if not runs.is_dir():
        return {}
    return {
        f"{arm.name}/{seed.name}": seed
        for arm in sorted(p for p in runs.iterdir() if p.is_dir())
        for seed in sorted(p for p in arm.iterdir() if p.is_dir() and p.name.startswith("seed-"))
    }


def series(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of the rows that have ``key`` (finite values only)."""
    return [
        (int(r["step"] if "step" in r else r["epoch"]), float(r[key]))
        for r in rows
        if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
    ]


def panels(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The keys of ``rows`` grouped into panels: ``loss``, ``valid`` (metrics within [0, 1]),
    ``valid (other)``, ``learning rate``; empty panels are left out."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    valid = [k for k in keys if k.startswith("valid_") and series(rows, k)]
    unit = [k for k in valid if all(0 <= v <= 1 for _, v in series(rows, k))]
    groups = {
        "loss": [k for k in ("loss",) if k in keys],
        "valid": unit,
        "valid (other)": [k for k in valid if k not in unit and k != "valid_num_queries"],
        "learning rate": [k for k in keys if k == "lr" or k.startswith("lr_")],
    }
    return {name: ks for name, ks in groups.items() if ks}


def rank_histogram(ranks: np.ndarray, *, max_bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` of ranks: one bin per integer rank ``[k, k + 1)`` up to ``max_bins``
    ranks, else ``max_bins`` log-spaced bins from 1 to the largest rank (realistic ranks are
    half-integers for ties: a tie between ranks 1 and 2 counts in the ``[1, 2)`` bin).

    Args:
        ranks: ``[n]`` ranks (>= 1), e.g. both sides' filtered test ranks.
    """
    ranks = np.asarray(ranks, dtype=np.float64).reshape(-1)
    if ranks.size == 0:
        raise ValueError("no ranks to draw")
    if ranks.min() < 1:
        raise ValueError(f"ranks start at 1, got {ranks.min()}")
    top = float(np.floor(ranks.max())) + 1
    if top - 1 <= max_bins:
        edges = np.arange(1, top + 1, dtype=np.float64)
    else:
        edges = np.unique(np.floor(np.geomspace(1, top, max_bins + 1)))
        edges[-1] = max(edges[-1], top)
    counts, edges = np.histogram(ranks, bins=edges)
    return counts, edges


def plot_runs(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path | None = None,
    *,
    ranks: Mapping[str, np.ndarray] | None = None,
    title: str | None = None,
    metric: str | None = None,
) -> Figure:
    """Training curves of one or several runs, and a rank histogram when ``ranks`` are given.

    Args:
        runs: ``{label: rows}``; labels ``arm/seed-s`` share a colour per arm.
        path: where to save (PNG by its suffix), or ``None``.
        ranks: ``{side: [n] ranks}`` of link prediction (``head``, ``tail``), drawn stacked.
        title: the figure's title.
        metric: with several runs, the validation metric drawn (the selection metric; default: the
            first logged), so that the arms stay readable; one run draws every metric.
    """
    names: dict[str, list[str]] = {}
    for rows in runs.values():
        for name, keys in panels(rows).items():
            names.setdefault(name, [])
            names[name] += [k for k in keys if k not in names[name]]
    if len(runs) > 1:
        valid = names.pop("valid", []) + names.pop("valid (other)", [])
        chosen = f"valid_{metric}" if metric is not None else (valid[0] if valid else None)
        if chosen in valid:
            names = {"loss": names.pop("loss", []), f"valid {chosen[6:]}": [chosen], **names}
            names = {k: v for k, v in names.items() if v}
    gates = {label: gate_series(list(rows)) for label, rows in runs.items()}
    if any(gates.values()):
        names["gates"] = []
    if not names and not ranks:
        raise ValueError("nothing to plot: the rows have no loss, validation metric or lr")
    count = len(names) + (1 if ranks else 0)
    columns = min(count, 3)
    grid_rows = math.ceil(count / columns)
    fig = _figure(figsize=(5.2 * columns, 3.6 * grid_rows), layout="constrained")
    axes = fig.subplots(grid_rows, columns, squeeze=False).reshape(-1)
    for ax in axes[count:]:
        ax.set_visible(False)
    arms = list(dict.fromkeys(label.split("/")[0] for label in runs))
    colours = {arm: f"C{i % 10}" for i, arm in enumerate(arms)}
    several = len(runs) > 1
    for ax, (name, keys) in zip(axes, names.items()):
        for label, rows in runs.items():
            colour = colours[label.split("/")[0]] if several else None
            drawn = gates[label] if name == "gates" else {k: series(rows, k) for k in keys}
            for i, (key, points) in enumerate(drawn.items()):
                if not points:
                    continue
                steps, values = zip(*points)
                shown = key.removeprefix("valid_")
                line = "-" if not several else ["-", "--", ":", "-."][i % 4]
                ax.plot(
                    steps, values, line, color=colour, marker="." if len(points) < 30 else None,
                    label=(f"{label} {shown}" if len(drawn) > 1 else label) if several else shown,
                )  # fmt: skip
        ax.set_title(name)
        ax.set_xlabel("optimizer step")
        if name == "learning rate" and all(
            v > 0 for rows in runs.values() for k in keys for _, v in series(rows, k)
        ):
            ax.set_yscale("log")
        if name == "loss":
            ax.set_ylabel("training loss (epoch mean)")
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    if ranks:
        _draw_ranks(axes[len(names)], ranks)
    if title:
        fig.suptitle(title)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def _draw_ranks(ax: Axes, ranks: Mapping[str, np.ndarray]) -> None:
    every = np.concatenate([np.asarray(r, dtype=np.float64).reshape(-1) for r in ranks.values()])
    _, edges = rank_histogram(every)
    bottom = np.zeros(len(edges) - 1)
    for side, values in ranks.items():
        counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=edges)
        ax.bar(edges[:-1], counts, width=np.diff(edges), bottom=bottom, align="edge",
               label=f"{side} ({len(values)})", edgecolor="white", linewidth=0.3)  # fmt: skip
        bottom += counts
    if edges[-1] - edges[0] > len(edges):  # log-spaced bins
        ax.set_xscale("log")
    mrr = float(np.mean(1.0 / every))
    ax.set_title(f"test ranks (filtered), MRR {mrr:.4f}")
    ax.set_xlabel("rank")
    ax.set_ylabel("queries")
    ax.legend(fontsize="x-small")


def _figure(**kwargs: Any) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # an optional extra
        raise ImportError("plots need matplotlib: pip install 'gnnlm[bench]'") from err
    return Figure(**kwargs)
