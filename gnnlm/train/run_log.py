"""Per-epoch metrics to ``metrics.csv`` and ``log.jsonl`` in a run directory (and TensorBoard if installed).

Rows are logged at every epoch end, and at every step-level validation (``evaluation.steps``); each has
the epoch and the optimizer step it was logged at."""

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
        if self.run_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

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
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self._writer.add_scalar(
                        key.replace("_", "/", 1), value, row.get("step", row["epoch"])
                    )
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
