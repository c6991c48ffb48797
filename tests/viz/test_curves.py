"""Training curves and the rank histogram (gnnlm.viz.curves)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gnnlm.viz.curves import (
    NoMetricsError,
    comparison_runs,
    panels,
    plot_runs,
    rank_histogram,
    read_history,
    series,
)

pytest.importorskip("matplotlib")

ROWS = [
    {"epoch": 1, "step": 10, "loss": 0.9, "lr": 0.1, "lr_gnn": 0.1, "lr_gates": 0.02, "seconds": 1.0,
     "valid_mrr": 0.2, "valid_mr": 40.0, "train_gate_entity_0": 0.01},
    {"epoch": 1, "step": 15, "train_loss": 0.7, "train_gate_entity_0": 0.03},
    {"epoch": 2, "step": 20, "loss": 0.5, "lr": 0.05, "lr_gnn": 0.05, "lr_gates": 0.01, "seconds": 1.0,
     "train_gate_entity_0": 0.05},
    {"epoch": 3, "step": 30, "loss": 0.3, "lr": 0.02, "lr_gnn": 0.02, "lr_gates": 0.005, "seconds": 1.0,
     "valid_mrr": 0.6, "valid_mr": 9.5, "train_gate_entity_0": 0.08},
]  # fmt: skip


def test_rank_histogram_counts_are_the_ranks():
    ranks = np.array([1, 1, 1.5, 2, 2, 2, 3.5, 7, 7, 12])
    counts, edges = rank_histogram(ranks)
    assert edges.tolist() == list(range(1, 14))  # one bin per rank [k, k + 1)
    assert counts.tolist() == [3, 3, 1, 0, 0, 0, 2, 0, 0, 0, 0, 1]
    assert counts.sum() == len(ranks)
    # many entities: log-spaced bins, every rank counted once, each bin's count by hand
    rng = np.random.default_rng(0)
    big = rng.integers(1, 14_000, size=5_000).astype(float)
    counts, edges = rank_histogram(big, max_bins=40)
    assert len(counts) <= 40 and counts.sum() == len(big)
    assert edges[0] == 1 and edges[-1] > big.max()
    for i in (0, len(counts) // 2, len(counts) - 1):
        inside = (big >= edges[i]) & (
            big < edges[i + 1] if i < len(counts) - 1 else big <= edges[-1]
        )
        assert counts[i] == inside.sum()
    with pytest.raises(ValueError, match="ranks start at 1"):
        rank_histogram(np.array([0.0, 2.0]))


def test_panels_and_series():
    assert panels(ROWS) == {
        "loss": ["loss"],
        "valid": ["valid_mrr"],
        "valid (other)": ["valid_mr"],
        "learning rate": ["lr", "lr_gnn", "lr_gates"],
    }
    assert series(ROWS, "valid_mrr") == [(10, 0.2), (30, 0.6)]
    assert series(ROWS, "loss") == [(10, 0.9), (20, 0.5), (30, 0.3)]


def test_plot_writes_a_png_with_every_panel(tmp_path):
    ranks = {"head": np.array([1.0, 2, 2, 5]), "tail": np.array([1.0, 1, 3, 40])}
    fig = plot_runs({"run": ROWS}, tmp_path / "curves.png", ranks=ranks)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    # MRR by hand: (1 + 1/2 + 1/2 + 1/5 + 1 + 1 + 1/3 + 1/40) / 8 = 0.5698
    assert titles == ["loss", "valid", "valid (other)", "learning rate", "gates",
                      "test ranks (filtered), MRR 0.5698"]  # fmt: skip
    # the bars are the histogram: stacked head + tail counts per rank
    hist = fig.axes[5]
    heights = [p.get_height() for p in hist.patches]
    n_bins = len(rank_histogram(np.concatenate(list(ranks.values())))[0])
    head, tail = heights[:n_bins], heights[n_bins:]
    total = [h + t for h, t in zip(head, tail)]
    assert sum(total) == 8 and total[0] == 3  # rank 1: one head, two tails
    lines = {ln.get_label(): ln.get_ydata().tolist() for ln in fig.axes[1].get_lines()}
    assert lines == {"mrr": [0.2, 0.6]}
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_several_runs_share_the_panels_one_colour_per_arm(tmp_path):
    other = [dict(r, **{"valid_mrr": r["valid_mrr"] / 2}) if "valid_mrr" in r else r for r in ROWS]
    runs = {"lm/seed-0": ROWS, "lm/seed-1": ROWS, "kg/seed-0": other}
    fig = plot_runs(runs, tmp_path / "arms.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["loss", "valid mrr", "learning rate", "gates"]  # one metric: readable arms
    valid = list(fig.axes[1].get_lines())
    assert [ln.get_label() for ln in valid] == ["lm/seed-0", "lm/seed-1", "kg/seed-0"]
    assert valid[0].get_color() == valid[1].get_color() != valid[2].get_color()
    assert valid[2].get_ydata().tolist() == [0.1, 0.3]
    fig = plot_runs(runs, metric="mr")
    assert fig.axes[1].get_title() == "valid mr"
    assert fig.axes[1].get_lines()[0].get_ydata().tolist() == [40.0, 9.5]


def test_history_from_log_or_csv_and_clear_errors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(NoMetricsError, match=r"run: no log.jsonl or metrics.csv"):
        read_history(run)
    (run / "metrics.csv").write_text("epoch,step,loss,lr,seconds,valid_mrr\n1,5,0.5,0.1,1.5,\n"
                                     "2,10,0.25,0.1,1.5,0.75\n")  # fmt: skip
    assert read_history(run) == [
        {"epoch": 1, "step": 5, "loss": 0.5, "lr": 0.1, "seconds": 1.5},
        {"epoch": 2, "step": 10, "loss": 0.25, "lr": 0.1, "seconds": 1.5, "valid_mrr": 0.75},
    ]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert read_history(run) == ROWS  # log.jsonl has every key
    (run / "log.jsonl").write_text("")
    with pytest.raises(NoMetricsError, match="no rows logged yet"):
        read_history(run)
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_runs({"run": [{"epoch": 1, "step": 1}]})


def test_comparison_runs_layout(tmp_path):
    for arm in ("lm", "kg"):
        for seed in (0, 1):
            (tmp_path / "runs" / arm / f"seed-{seed}").mkdir(parents=True)
    assert list(comparison_runs(tmp_path)) == ["kg/seed-0", "kg/seed-1", "lm/seed-0", "lm/seed-1"]
    assert comparison_runs(tmp_path / "runs" / "lm" / "seed-0") == {}
