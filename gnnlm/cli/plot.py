"""``gnnlm plot RUN_DIR [--out FILE] [--no-ranks]``: training curves of a run (loss, validation metrics,
learning rates, gates) from its ``log.jsonl`` / ``metrics.csv``, and for link prediction a histogram
of the filtered test ranks; a comparison's arms and seeds are drawn together."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from gnnlm.cli.evaluate import add_trust_argument

    parser = subparsers.add_parser(
        "plot",
        help="draw a run's training curves (and link prediction's test rank histogram) as a PNG",
        description="Draw RUN_DIR's training curves (training loss, validation metrics, learning "
        "rates, injection gates) against the optimizer step; for a link-prediction run, also the "
        "histogram of its filtered test ranks (recomputed from RUN_DIR/model with the run's "
        "evaluator: needs the run's dataset). A comparison (RUN/runs/<arm>/seed-<s>) draws every "
        "arm's runs together.",
    )
    parser.add_argument("run_dir", type=Path, help="a directory written by `gnnlm train`")
    parser.add_argument(
        "--out", type=Path, default=None, help="image file (default: RUN_DIR/curves.png)"
    )
    parser.add_argument(
        "--no-ranks", dest="ranks", action="store_false", help="curves only (no rank histogram)"
    )
    add_trust_argument(parser)
    parser.set_defaults(func=run)


def recompute_test_ranks(run_dir: Path, *, trust_remote_code: bool = False) -> dict | None:
    """``{"head": [n], "tail": [n]}`` filtered test ranks (NumPy) of a finished link-prediction run,
    recomputed from ``RUN_DIR/model`` by the run's evaluator; ``None`` for a run of another task,
    an unfinished run (no ``model/``) or data without a test split."""
    from gnnlm.cli.evaluate import load_run
    from gnnlm.tasks.link_prediction.task import LinkPredictionTask
    from gnnlm.tasks.loading import task_class
    from gnnlm.utils.modules import eval_mode
    from gnnlm.utils.strict_yaml import load_yaml

    if not (run_dir / "model").is_dir() or not (run_dir / "config.yaml").is_file():
        return None
    data, _ = load_yaml((run_dir / "config.yaml").read_text(), str(run_dir / "config.yaml"))
    name = (data or {}).get("task", "link_prediction")
    if not isinstance(name, str) or ":" in name:  # a user's task: not ours to rank
        return None
    if not issubclass(task_class(name, str(run_dir / "config.yaml")), LinkPredictionTask):
        return None
    _, task, model = load_run(run_dir, trust_remote_code=trust_remote_code)
    if not task.has_split("test"):
        return None
    with eval_mode(model):
        ranks = task.evaluator.ranks(model, task.kg.splits["test"])
    return {side: values.numpy() for side, values in ranks.items()}


def run(args: argparse.Namespace) -> int:
    from gnnlm.viz.curves import NoMetricsError, comparison_runs, plot_runs, read_history

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        print(f"gnnlm plot: {run_dir}: no such run directory", file=sys.stderr)
        return 2
    members = comparison_runs(run_dir)
    try:
        if members:
            runs = {label: read_history(path) for label, path in members.items()}
        else:
            runs = {run_dir.name: read_history(run_dir)}
    except NoMetricsError as err:
        print(f"gnnlm plot: {err}", file=sys.stderr)
        return 2
    ranks = (
        recompute_test_ranks(run_dir, trust_remote_code=args.trust_remote_code)
        if args.ranks
        else None
    )
    out = args.out or run_dir / "curves.png"
    plot_runs(runs, out, ranks=ranks, title=str(run_dir), metric=_selection_metric(members))
    print(out)
    return 0


def _selection_metric(members: dict[str, Path]) -> str | None:
    """The selection metric a comparison's runs recorded in ``metrics.json`` (``None``: unknown)."""
    import json

    for path in members.values():
        try:
            return json.loads((path / "metrics.json").read_text()).get("selection_metric")
        except (OSError, ValueError):
            continue
    return None
