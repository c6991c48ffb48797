"""``gnnlm train CONFIG.yaml [--set key=value ...] [--out RUN_DIR] [--quiet]
[--resume | --overwrite | --init-from OLD_RUN]``: run any task (``task:`` in the config, default
``link_prediction``); a config with ``variants:`` / ``seeds:`` runs the comparison."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train any task from a YAML config (link prediction, triple classification, yours)",
        description="Run the task a YAML config names (task: link_prediction by default, a registered "
        "name, or pkg.mod:MyTask); writes config.yaml, metrics.csv, log.jsonl, "
        "checkpoint.safetensors, model/ and metrics.json into the run directory. A config with "
        "variants: (and seeds:) runs every arm with every seed and writes comparison.md / "
        "comparison.json.",
    )
    parser.add_argument("config", type=Path, help="YAML config (see configs/)")
    add_overrides_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="run directory (default: runs/<config>-<time>)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (its files are deleted first); without --resume or "
        "--overwrite a non-empty --out is refused",
    )
    mode.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="OLD_RUN",
        help="warm start: a new run starting from the weights of OLD_RUN/model (same model and "
        "dataset; fresh optimizer, scheduler and RNGs; recorded in init_from.json)",
    )
    parser.set_defaults(func=run)


def add_overrides_argument(
    parser: argparse.ArgumentParser,
    help: str = "override a config value, e.g. --set training.lr=0.01 (repeatable; values are YAML)",
) -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``: one spelling in every command."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def set_threads(threads: int | None, command: str) -> int | None:
    """Apply ``--threads``; exit status 2 (after a one-line error) for a bad value, else ``None``."""
    import torch

    if threads is None:
        return None
    if threads < 1:
        print(f"gnnlm {command}: --threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)
    return None


def run(args: argparse.Namespace) -> int:
    from gnnlm.tasks import load_config
    from gnnlm.train import ConfigError

    code = set_threads(args.threads, "train")
    if code is not None:
        return code
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"gnnlm train: {err}", file=sys.stderr)
        return 2
    out = (
        args.out
        or Path("runs")
        / f"{args.config.parent.name}-{args.config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    again = f"gnnlm train {args.config} --out {out} --resume" + "".join(
        f" --set {o}" for o in args.overrides
    )
    return train_config(
        config, out, quiet=args.quiet, resume=args.resume, overwrite=args.overwrite,
        init_from=args.init_from, command="train", again=again,
    )  # fmt: skip


def train_config(
    config,
    out: Path,
    *,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    init_from: Path | None = None,
    command: str = "train",
    again: str = "",
) -> int:
    """Train a loaded config into ``out`` and print the summary (``gnnlm train`` and its aliases, such
    as ``gnnlm task triple-classification``); returns the exit status.

    Args:
        command: the sub-command named in error messages.
        again: the command line that resumes the run, printed when interrupted.
    """
    from gnnlm.train import CheckpointError, ConfigError, TrainingDivergedError, train

    if resume and out is None:
        print(f"gnnlm {command}: --resume needs --out RUN_DIR", file=sys.stderr)
        return 2
    if init_from is not None and config.is_comparison:
        print(
            f"gnnlm {command}: --init-from starts one run; it cannot start a comparison",
            file=sys.stderr,
        )
        return 2
    try:
        result = train(
            config, out, quiet=quiet, resume=resume, overwrite=overwrite, init_from=init_from
        )
    except (ConfigError, CheckpointError) as err:
        print(f"gnnlm {command}: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"gnnlm {command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\ngnnlm {command}: interrupted; continue from the last checkpoint with\n  {again}",
            file=sys.stderr,
        )
        return 130
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 reports the run
        return 0
    if config.is_comparison:
        print(json.dumps({"run_dir": str(out), "comparison": str(out / "comparison.md")}))
        return 0
    # an empty split has no metrics: reported as null, with a note, rather than a KeyError at the end
    names = list(result.task.metrics)
    summary = {
        split: {k: result.metrics[split][k] for k in names if k in result.metrics[split]}
        if split in result.metrics
        else None
        for split in ("valid", "test")
    }
    for split in (s for s, metrics in summary.items() if metrics is None):
        print(f"gnnlm {command}: the {split} split is empty: no {split} metrics", file=sys.stderr)
    print(
        json.dumps(
            {"run_dir": str(out), "best_epoch": result.metrics["best_epoch"], **summary}, indent=2
        )
    )
    return 0
