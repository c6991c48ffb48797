"""``gnnlm evaluate RUN_DIR [--split test] [--json]``: the task's metrics of a trained run (link prediction:
filtered MRR, MR, Hits@k)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run of any task (link prediction: filtered MRR, MR, Hits@k)",
        description="Evaluate RUN_DIR/model on a split with the run's task (link prediction: the "
        "filtered rank-based protocol, filter = train + valid + test, realistic ties).",
    )
    parser.add_argument("run_dir", type=Path, help="a directory written by `gnnlm train`")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="queries per batch (default: the run's)"
    )
    parser.add_argument("--json", action="store_true", help="print every metric as JSON")
    add_trust_argument(parser)
    parser.set_defaults(func=run)


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the run's config to name code by dotted path (pkg.mod:Class), which imports and "
        "runs that module; only for run folders you trust",
    )


def load_run(run_dir: Path, *, trust_remote_code: bool = False, batch_size: int | None = None):
    """``(config, task, model)`` of a finished run of any task: its ``config.yaml`` read as the task's
    config (``batch_size`` replacing ``evaluation.batch_size``), the task's data loaded, and
    ``RUN_DIR/model`` loaded by the task (link prediction renumbers the graph to the model's
    ``vocab.json``). A task or component named by dotted path in the run's files is imported only
    with ``trust_remote_code``."""
    import contextlib

    from gnnlm.tasks import load_config, make_task
    from gnnlm.utils.registry import refuse_code_imports

    path = run_dir / "config.yaml"
    guard = contextlib.nullcontext() if trust_remote_code else refuse_code_imports(str(path))
    with guard:
        config = load_config(path)
        task = make_task(config.task, config)
    if batch_size is not None:
        config.evaluation.batch_size = batch_size
    task.setup()
    model = task.load_model(run_dir / "model", trust_remote_code=trust_remote_code)
    return config, task, model


def run(args: argparse.Namespace) -> int:
    from gnnlm.train import CheckpointError, ConfigError
    from gnnlm.utils.modules import eval_mode
    from gnnlm.utils.registry import UntrustedCodeError

    try:
        config, task, model = load_run(
            args.run_dir, trust_remote_code=args.trust_remote_code, batch_size=args.batch_size
        )
    except (ConfigError, CheckpointError, UntrustedCodeError, FileNotFoundError) as err:
        print(f"gnnlm evaluate: {err}", file=sys.stderr)
        return 2
    if not task.has_split(args.split):
        print(
            f"gnnlm evaluate: split {args.split!r} is unknown or empty for this run's data "
            f"({config.dataset})",
            file=sys.stderr,
        )
        return 2
    with eval_mode(model):
        metrics = task.evaluate(model, args.split)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    count = metrics.get("num_queries") or metrics.get("num_examples")
    size = (
        f" ({count} {'queries, filtered, both sides' if 'num_queries' in metrics else 'examples'})"
    )
    print(f"{config.dataset} {args.split}{size if count else ''}")
    for key in task.metrics:
        if key in metrics:
            print(f"  {key:<8} {metrics[key]:.4f}")
    return 0
