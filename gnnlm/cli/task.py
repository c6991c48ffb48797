"""``gnnlm task NAME [CONFIG] --out RUN_DIR [flags]``: a shortcut for ``gnnlm train`` of a built-in task.

The flags become ``--set`` overrides of the config (``--tiny`` is ``--set model.lm=tiny-bert``,
``--num-train N`` is ``--set data.num_train=N``, ...) and the run is exactly ``gnnlm train``'s::

    gnnlm task triple-classification configs/tasks/triple_classification_wn18rr.yaml --out runs/tc
    # is
    gnnlm train configs/tasks/triple_classification_wn18rr.yaml --out runs/tc

    gnnlm task triple-classification --tiny --num-train 64 --num-test 32 --out runs/tc-tiny

Without CONFIG the task's defaults are used (triple classification: one LM+graph run on WN18RR).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: command-line name -> registered task.
TASKS = {"triple-classification": "triple_classification"}


def add_parser(subparsers) -> None:
    from gnnlm.cli.train import add_overrides_argument

    parser = subparsers.add_parser(
        "task",
        help="shortcut for `gnnlm train` of a built-in task (flags become --set overrides)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=TASKS, help="the task")
    parser.add_argument(
        "config", nargs="?", type=Path, help="YAML config (default: the task's defaults)"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--data-dir", help="dataset folder (else $GNNLM_DATA_DIR)")
    parser.add_argument("--dataset", help="= --set dataset=NAME")
    parser.add_argument(
        "--tiny", action="store_true", help="= --set model.lm=tiny-bert (tiny random LM)"
    )
    parser.add_argument("--num-train", type=int, help="= --set data.num_train=N (positives)")
    parser.add_argument("--num-valid", type=int, help="= --set data.num_valid=N")
    parser.add_argument("--num-test", type=int, help="= --set data.num_test=N")
    parser.add_argument("--epochs", type=int, help="= --set training.epochs=N")
    parser.add_argument("--seed", type=int, help="= --set seed=S --set seeds=[] (one seed)")
    add_overrides_argument(parser, "any other override, as in gnnlm train (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out")
    mode.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides the flags stand for (then the explicit ``--set`` ones)."""
    flags = {
        "dataset": args.dataset,
        "model.lm": "tiny-bert" if args.tiny else None,
        "data.num_train": args.num_train,
        "data.num_valid": args.num_valid,
        "data.num_test": args.num_test,
        "training.epochs": args.epochs,
        "seed": args.seed,
        "seeds": "[]" if args.seed is not None else None,
    }
    items = [f"task={TASKS[args.name]}"]
    items += [f"{key}={value}" for key, value in flags.items() if value is not None]
    return items + list(args.overrides)


def run(args: argparse.Namespace) -> int:
    from gnnlm.cli.train import set_threads, train_config
    from gnnlm.config import apply_overrides, check_writable_dir
    from gnnlm.tasks import load_config, lookup_task
    from gnnlm.train import ConfigError

    code = set_threads(args.threads, "task")
    if code is not None:
        return code
    if args.data_dir is not None:
        os.environ["GNNLM_DATA_DIR"] = args.data_dir
    items = overrides(args)
    try:
        if args.config is not None:
            config = load_config(args.config, items)
        else:
            cls = lookup_task(TASKS[args.name]).config_class
            config = apply_overrides(cls(), items)
            config.check_variants()
        check_writable_dir(args.out)  # before the model loads and the data is read
    except ConfigError as err:
        print(f"gnnlm task: {err}", file=sys.stderr)
        return 2
    config_arg = f" {args.config}" if args.config is not None else ""
    again = f"gnnlm task {args.name}{config_arg} --out {args.out} --resume" + "".join(
        f" --set {o}" for o in items[1:]
    )
    return train_config(
        config, args.out, quiet=args.quiet, resume=args.resume, overwrite=args.overwrite,
        command="task", again=again,
    )  # fmt: skip
