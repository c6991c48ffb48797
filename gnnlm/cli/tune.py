"""``gnnlm tune CONFIG --space SPACE.yaml --trials N [--out DIR] [--timeout S] [--quiet]``:
hyperparameter search on Optuna (TPE, median pruning on the validation metric); every trial is a
``gnnlm train`` run in ``DIR/trials/<n>``; writes ``DIR/best.yaml``, ``DIR/trials.csv`` and prints a
table. Running the same command again resumes the search (``DIR/study.db``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from gnnlm.cli.train import add_overrides_argument

    parser = subparsers.add_parser(
        "tune",
        help="hyperparameter search over a YAML space (Optuna TPE + median pruning)",
        description="Search the keys of SPACE.yaml (e.g. 'training.lr: {type: float, low: 1e-4, "
        "high: 1e-1, log: true}', see gnnlm.tune.space) around CONFIG: every trial trains CONFIG "
        "with the trial's values into DIR/trials/<n>, reporting the task's validation metric after "
        "each evaluation to a median pruner. Writes DIR/best.yaml (for gnnlm train), DIR/trials.csv "
        "and DIR/study.db; the same command again resumes the search (up to --trials in all).",
    )
    parser.add_argument("config", type=Path, help="YAML config to tune (see configs/)")
    parser.add_argument("--space", type=Path, required=True, help="search space YAML")
    parser.add_argument(
        "--trials", type=int, required=True, help="trials in the study in all (resumed runs count)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="search directory (default: runs/<config>-tune)"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="start no new trial after this many seconds"
    )
    add_overrides_argument(
        parser, "override a config value before tuning, e.g. --set training.epochs=50 (repeatable)"
    )
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="do not make the config's own values the first trial of a new search",
    )
    parser.add_argument(
        "--prune-after-trials", type=int, default=5, metavar="N",
        help="trials that finish before the median pruner prunes anything (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--prune-warmup", type=int, default=0, metavar="N",
        help="a trial's first N validations (epochs, or steps with evaluation.steps) are never "
        "pruned (default 0: from its first validation)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gnnlm.cli.train import set_threads
    from gnnlm.tasks import load_config
    from gnnlm.tune import format_table, tune

    code = set_threads(args.threads, "tune")
    if code is not None:
        return code
    try:
        import optuna
    except ImportError:
        print("gnnlm tune: needs optuna: pip install 'gnnlm[tune]'", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    config = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / f"{args.config.parent.name}-{args.config.stem}-tune"

    def progress(row: dict) -> None:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row.items()
            if k not in ("number", "state", "value", "epochs", "seconds", "reason")
        )
        seconds = f", {row['seconds']:.1f} s" if row["seconds"] is not None else ""
        print(f"trial {row['number']}: {row['state']} {value}{seconds}  {params}", file=sys.stderr)

    try:
        result = tune(
            config, args.space, out, trials=args.trials, timeout=args.timeout, quiet=True,
            baseline=args.baseline, on_trial=None if args.quiet else progress,
            pruner_startup_trials=args.prune_after_trials, pruner_warmup_steps=args.prune_warmup,
        )  # fmt: skip
    except KeyboardInterrupt:
        again = (
            f"gnnlm tune {args.config} --space {args.space} --trials {args.trials} --out {out}"
            + "".join(f" --set {o}" for o in args.overrides)
        )
        print(f"\ngnnlm tune: interrupted; resume the search with\n  {again}", file=sys.stderr)
        return 130
    print(format_table(result), end="")
    if result.best_config is None:
        print(f"gnnlm tune: no trial completed; see {out / 'trials.csv'}", file=sys.stderr)
        return 1
    print(
        f"\nbest: trial {result.best_trial}, valid {result.metric} = {result.best_value:.4f}\n"
        f"  {out / 'best.yaml'}  (gnnlm train {out / 'best.yaml'} --out RUN)\n"
        f"  {out / 'trials.csv'}"
    )
    return 0
