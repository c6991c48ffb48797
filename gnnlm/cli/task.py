"""``gnnlm task``: run a worked example end to end on real data.

Examples::

    gnnlm task triple-classification configs/tasks/triple_classification_wn18rr.yaml --out runs/tc
    gnnlm task triple-classification --tiny --num-train 64 --num-test 32 --out runs/tc-tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

TASKS = ("triple-classification",)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "task",
        help="run a worked example (LM-only vs knowledge-injected variants)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=TASKS, help="the task")
    parser.add_argument("config", nargs="?", help="YAML settings (default: built-in defaults)")
    parser.add_argument("--out", required=True, help="run folder (results.json is written there)")
    parser.add_argument("--data-dir", help="dataset folder (else $GNNLM_DATA_DIR)")
    parser.add_argument("--dataset", help="override the dataset")
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny random LM (tiny-bert) instead of MiniLM"
    )
    parser.add_argument("--num-train", type=int, help="training positives (plus as many negatives)")
    parser.add_argument(
        "--num-test", type=int, help="evaluation positives (plus as many negatives)"
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def load_config(path: str | None):
    """The task's settings from a YAML file (tags refused, errors as one-line ConfigErrors)."""
    from gnnlm.tasks import TripleClassificationConfig
    from gnnlm.utils.strict_yaml import ConfigError, did_you_mean, load_yaml, quote

    if path is None:
        return TripleClassificationConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror or err})") from None
    values, lines = load_yaml(text, path)
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}:1: expected a mapping of settings, found {type(values).__name__}"
        )
    known = [f.name for f in dataclasses.fields(TripleClassificationConfig)]
    for key in values:
        if key not in known:
            hint = did_you_mean(key, known)
            raise ConfigError(
                f"{path}:{lines.get(str(key), 1)}: unknown key {quote(key)}{hint}; valid keys: "
                f"{', '.join(known)}"
            )
    try:
        return TripleClassificationConfig.from_dict(values, source=path)
    except (ValueError, TypeError) as err:  # unknown keys
        raise ConfigError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from gnnlm.tasks import run_triple_classification
    from gnnlm.train.config import check_writable_dir

    config = load_config(args.config)
    check_writable_dir(args.out)  # before the model downloads and trains, not after
    overrides = {
        "dataset": args.dataset,
        "num_train": args.num_train,
        "num_test": args.num_test,
        "epochs": args.epochs,
        "seed": args.seed,
        "lm": "tiny-bert" if args.tiny else None,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    results = run_triple_classification(config, args.out, data_dir=args.data_dir, quiet=args.quiet)
    summary = {name: round(v["accuracy"], 4) for name, v in results["variants"].items()}
    print(json.dumps({"dataset": results["dataset"], "accuracy": summary, "out": args.out}))
    return 0
