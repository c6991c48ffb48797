"""Injection gates drawn: their values over training, and the adaptive gate per token and layer.

Over training, from a run's ``log.jsonl`` (:class:`~gnnlm.train.run_log.MetricsLogger`; log a row every
few steps with ``training.log_steps``)::

    plot_gate_history("runs/tc-adaptive", "gates.png")

draws every gate series a task logs (triple classification: ``gate_<mode>_<j>``, each mode's scalar
gate at fused layer ``j``, and ``knowledge_gate_<j>``, the adaptive gate's mean over the real tokens of
the batches). For one example::

    tokens, matrix = token_gate_matrix(model, batch, index=0)  # matrix: [real tokens, fused layers]
    plot_token_gates(tokens, matrix, "tokens.png")

Figures are built with the object API (:class:`matplotlib.figure.Figure`), so drawing never touches a
GUI backend or pyplot's global state; each function returns the figure and saves it when given a path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gnnlm.fusion.batch import TextGraphBatch

#: ``[train_]gate_<mode>_<layer>``: a mode's scalar gate (``tanh(g)``; adaptive: ``sigmoid(b)``).
MODE_GATE = re.compile(r"^(?:train_)?gate_(?P<mode>.+)_(?P<layer>\d+)$")
#: ``[train_]knowledge_gate_<layer>``: the adaptive gate's mean over real tokens.
KNOWLEDGE_GATE = re.compile(r"^(?:train_)?knowledge_gate_(?P<layer>\d+)$")


def _matplotlib_figure(**kwargs: Any) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # an optional extra
        raise ImportError("plots need matplotlib: pip install 'gnnlm[bench]'") from err
    return Figure(**kwargs)


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


# -- over training -----------------------------------------------------------------------------------
def load_rows(run: str | Path | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The logged rows of a run: a run directory (its ``log.jsonl``), a ``log.jsonl`` file, or rows."""
    if isinstance(run, (str, Path)):
        path = Path(run)
        path = path / "log.jsonl" if path.is_dir() else path
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return list(run)


def _windowed(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, float]]:
    """``(step, mean of key over the steps since the previous row that has it)``.

    The engine's ``train_*`` values are running means since the epoch began (they restart after the
    epoch's last row, the one with ``loss``); the mean of a window is recovered from two consecutive
    running means ``m_k`` (over ``k`` steps) and ``m_n`` as ``(n m_n - k m_k) / (n - k)``.
    """
    points: list[tuple[int, float]] = []
    start, previous = 0, None  # the epoch's first step; (running mean, steps) of the last row
    for row in rows:
        if key in row and row[key] is not None:
            n = row["step"] - start
            if previous is None:
                points.append((row["step"], float(row[key])))
            elif n > previous[1]:
                mean, k = previous
                points.append((row["step"], (n * row[key] - k * mean) / (n - k)))
            previous = (row[key], n)
        if "loss" in row:  # the epoch's last row: the next epoch's running means restart
            start, previous = row["step"], None
    return points


def gate_series(
    run: str | Path | Iterable[Mapping[str, Any]], *, windowed: bool = True
) -> dict[str, list[tuple[int, float]]]:
    """Every gate series of a run: ``{key: [(step, value), ...]}``, keys without the ``train_`` prefix
    (``gate_graph_0``, ``knowledge_gate_1``, ...), in key order.

    Args:
        run: a run directory, its ``log.jsonl``, or the rows themselves.
        windowed: turn ``train_*`` running means (since the epoch began) into the mean over each
            logging window, so a late change is not flattened by the epoch's earlier steps; keys
            without the prefix are taken as they are.
    """
    rows = load_rows(run)
    keys = sorted({k for row in rows for k in row if MODE_GATE.match(k) or KNOWLEDGE_GATE.match(k)})
    series = {}
    for key in keys:
        if windowed and key.startswith("train_"):
            points = _windowed(rows, key)
        else:
            points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) is not None]
        series[key.removeprefix("train_")] = points
    return series


def plot_gate_history(
    run: str | Path | Iterable[Mapping[str, Any]],
    path: str | Path | None = None,
    *,
    windowed: bool = True,
    title: str | None = None,
) -> Figure:
    """Gate value per fused layer against the optimizer step, one line per series of
    :func:`gate_series`: the modes' scalar gates (solid) and the adaptive gate's mean over real
    tokens (dashed, thicker).

    Args:
        run: a run directory, its ``log.jsonl``, or the rows themselves.
        path: where to save the figure (PNG by its suffix), or ``None``.
        windowed: see :func:`gate_series`.
        title: the plot's title.

    Raises:
        ValueError: the log has no gate series (a task that logs none, or no rows yet).
    """
    series = gate_series(run, windowed=windowed)
    if not any(series.values()):
        raise ValueError(
            "no gate series (gate_<mode>_<layer> or knowledge_gate_<layer>) in the log; the run logs "
            "them every training.log_steps steps and at each epoch end"
        )
    fig = _matplotlib_figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for key, points in series.items():
        if not points:
            continue
        steps, values = zip(*points)
        knowledge = KNOWLEDGE_GATE.match(key)
        if knowledge:
            label, style = (
                f"adaptive, per token (mean), layer {knowledge['layer']}",
                dict(ls="--", lw=2),
            )
        else:
            match = MODE_GATE.match(key)
            gate = "sigmoid(b)" if match["mode"] == "adaptive" else "tanh(g)"
            label, style = f"{match['mode']} {gate}, layer {match['layer']}", dict(lw=1.2)
        ax.plot(steps, values, label=label, marker="." if len(steps) < 30 else None, **style)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("gate value")
    ax.set_title(title or "Injection gates over training (layer: fused layer)")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


# -- one example -------------------------------------------------------------------------------------
def token_gate_matrix(
    model: nn.Module, batch: TextGraphBatch, index: int = 0, *, tokenizer: Any = None
) -> tuple[list[str], Tensor]:
    """The adaptive gate of each real token of example ``index`` at each fused layer.

    Runs the model in eval mode without gradients (restoring its mode after).

    Args:
        model: a :class:`~gnnlm.fusion.FusedLM` with ``adaptive`` injection, or a model holding one
            as ``.fused`` (e.g. :class:`~gnnlm.tasks.TripleClassifier`).
        batch: a text + subgraph batch.
        index: the example in the batch.
        tokenizer: turns ids into tokens (default: ``load_tokenizer(fused.config.lm)``).

    Returns:
        ``(tokens, matrix)``: the example's ``n`` real tokens (padding left out) and ``[n, num_fused_
        layers]`` gates, ``FusionOutput.knowledge_gates[:, index, real].T``.

    Raises:
        ValueError: the model has no adaptive injection.
    """
    fused = getattr(model, "fused", model)
    device = next(fused.parameters()).device
    if device.type != "cpu":
        batch = batch.to(device)
    was_training = fused.training
    fused.eval()
    try:
        with torch.no_grad():
            gates = fused(batch).knowledge_gates  # [K, batch, seq]
    finally:
        fused.train(was_training)
    if gates is None:
        raise ValueError("the model has no adaptive gates: add 'adaptive' to its injection modes")
    real = batch.attention_mask[index].bool()  # [seq]
    matrix = gates[:, index, real].T.float().cpu()  # [n, K]
    if tokenizer is None:
        from gnnlm.lm import load_tokenizer

        tokenizer = load_tokenizer(fused.config.lm)
    tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[index, real].tolist())
    return list(tokens), matrix


def plot_token_gates(
    tokens: Sequence[str],
    matrix: Tensor,
    path: str | Path | None = None,
    *,
    layers: Sequence[int] | None = None,
    title: str | None = None,
) -> Figure:
    """A token x layer heatmap of adaptive gates (0: knowledge shut out, 1: let through).

    Args:
        tokens: ``n`` tokens, the rows.
        matrix: ``[n, num_fused_layers]`` gates (:func:`token_gate_matrix`).
        path: where to save the figure, or ``None``.
        layers: column labels, the LM indices of the fused layers (``FusedLM.fused_layers``;
            default: the fused layer's position ``0 .. K-1``).
        title: the plot's title.
    """
    values = torch.as_tensor(matrix, dtype=torch.float32).cpu()
    if values.dim() != 2 or values.size(0) != len(tokens):
        raise ValueError(
            f"matrix must be [{len(tokens)} tokens, layers], got {tuple(values.shape)}"
        )
    n, k = values.shape
    layers = list(layers) if layers is not None else list(range(k))
    fig = _matplotlib_figure(figsize=(2.5 + 0.7 * k, 1.2 + 0.22 * n), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values.numpy(), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_yticks(range(n), list(tokens), fontsize=7)
    ax.set_xticks(range(k), [str(j) for j in layers])
    ax.set_xlabel("LM layer" if layers is not None else "fused layer")
    ax.set_title(title or "Adaptive knowledge gate per token", fontsize=9)
    fig.colorbar(image, ax=ax, label="gate")
    return _save(fig, path)


__all__ = ["gate_series", "load_rows", "plot_gate_history", "plot_token_gates", "token_gate_matrix"]
