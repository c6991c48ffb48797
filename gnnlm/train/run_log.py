"""Per-epoch metrics to ``metrics.csv`` and ``log.jsonl`` in a run directory (and TensorBoard if installed).

Rows are logged at every epoch end, and at every step-level validation (``evaluation.steps``); each has
the epoch and the optimizer step it was logged at.

With the ``tensorboard`` package installed, every numeric value of a row is also a TensorBoard scalar in
``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``), at the row's optimizer step, under the tag
:func:`tensorboard_tag` gives it: ``train/loss`` (the epoch's mean loss, and the running mean of rows
logged inside an epoch), ``train/<log>`` for a task's other training logs, ``gates/<mode>_<layer>``
for injection gates (``train_gate_*``, ``train_knowledge_gate_*``), ``valid/<metric>``, ``lr`` and
``lr/<group>`` (one per named parameter group), ``time/epoch_seconds``. A resumed run first discards
the events logged after its checkpoint (TensorBoard's ``purge_step``), as it does the rows of the
files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from gnnlm.utils.atomic import atomic_write_text

#: the first columns of ``metrics.csv``; ``valid_<metric>`` columns follow (empty in rows without
#: evaluation). ``log.jsonl`` holds every key of every row.
CSV_COLUMNS = ("epoch", "step", "loss", "lr", "seconds")


class MetricsLogger:
    """Appends one row per epoch to ``RUN_DIR/metrics.csv`` and ``RUN_DIR/log.jsonl``.

    Args:
        run_dir: the run directory (``None``: keep rows in memory only).
        metrics: the task's metric names (``valid_<name>`` columns of the CSV).
        tensorboard: also write scalars to ``RUN_DIR/tensorboard`` when the ``tensorboard`` package is
            installed (silently skipped otherwise).
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        *,
        metrics: tuple[str, ...] = (),
        tensorboard: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.columns = CSV_COLUMNS + tuple(f"valid_{m}" for m in metrics)
        self.rows: list[dict[str, Any]] = []
        self._writer = None
        self._tensorboard = tensorboard
        self._open_writer()

    def _open_writer(self, purge_step: int | None = None) -> None:
        """Open the TensorBoard writer (when enabled and installed); events from ``purge_step`` on
        that an earlier process wrote are dropped by TensorBoard."""
        if self.run_dir is None or not self._tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        if self._writer is not None:
            self._writer.close()
        self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)

    @property
    def csv_path(self) -> Path | None:
        return self.run_dir / "metrics.csv" if self.run_dir else None

    @property
    def jsonl_path(self) -> Path | None:
        return self.run_dir / "log.jsonl" if self.run_dir else None

    def resume(self, last_epoch: int, last_step: int | None = None) -> None:
        """Reload the rows up to the checkpoint (``last_step``; ``last_epoch`` for rows of earlier
        releases without a step), drop any logged after it, and rewrite the files."""
        if self.jsonl_path is None or not self.jsonl_path.exists():
            return
        rows = [
            json.loads(line) for line in self.jsonl_path.read_text().splitlines() if line.strip()
        ]
        self.rows = [
            row
            for row in rows
            if (
                row["step"] <= last_step
                if "step" in row and last_step is not None
                else row["epoch"] <= last_epoch
            )
        ]
        atomic_write_text(self.jsonl_path, "".join(json.dumps(row) + "\n" for row in self.rows))
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
        if self._writer is not None:  # events after the checkpoint belong to the abandoned run
            self._open_writer(purge_step=(last_step if last_step is not None else last_epoch) + 1)

    def log(self, row: dict[str, Any]) -> None:
        """Record one row: ``{"epoch", "step", "loss", "lr", "seconds", "valid_mrr", ...}``."""
        self.rows.append(row)
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        new_csv = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n"
            )
            if new_csv:
                writer.writeheader()
            writer.writerow(row)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            x = row.get("step", row["epoch"])
            for key, value in row.items():
                tag = tensorboard_tag(key)
                if (
                    tag is not None
                    and isinstance(value, (int, float))
                    and not isinstance(value, bool)
                ):
                    self._writer.add_scalar(tag, value, x)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_tag(key: str) -> str | None:
    """The TensorBoard tag of a row's key (``None``: not a scalar to plot, e.g. ``epoch``, ``step``).

    >>> [tensorboard_tag(k) for k in ("loss", "train_loss", "valid_mrr", "lr_gates", "train_gate_entity_0")]
    ['train/loss', 'train/loss', 'valid/mrr', 'lr/gates', 'gates/entity_0']
    """
    if key in ("epoch", "step"):  # the axes, not series
        return None
    if key in ("loss", "train_loss"):  # an epoch's mean, or its running mean inside the epoch
        return "train/loss"
    if key == "seconds":
        return "time/epoch_seconds"
    if key.startswith("lr_"):
        return f"lr/{key[3:]}"
    if key.startswith("train_"):
        name = key[len("train_") :]
        if name.startswith("gate_"):
            return f"gates/{name[len('gate_') :]}"
        if name.startswith("knowledge_gate_"):
            return f"gates/{name}"
        return f"train/{name}"
    if key.startswith("valid_"):
        return f"valid/{key[len('valid_') :]}"
    return key
