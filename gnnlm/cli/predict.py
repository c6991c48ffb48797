"""``gnnlm predict RUN_DIR --head NAME --relation NAME [--k 10]`` (or ``--tail NAME`` for heads): the
top-k answers of a link-prediction run; ``gnnlm predict RUN_DIR --input FILE.jsonl`` (``-``: standard
input): the predictions of any task that defines ``predict(model, records)``, one JSON line per record
(a triple-classification record: ``{"head": ..., "relation": ..., "tail": ...}``); ``gnnlm predict
RUN_DIR --text "..."``: the entity links of a new text, with a run of a task that defines
``link_text(model, text)`` (entity linking)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gnnlm.cli.evaluate import add_trust_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="top-k tails of (head, relation, ?) or heads of (?, relation, tail); --input: any task",
        description="Rank every entity as the missing tail (--head) or head (--tail) of a query, with a "
        "trained link-prediction run's model (answers already known from the training triples are "
        "left out by default); or, with --input FILE.jsonl, the predictions of any task that defines "
        "them, one JSON line per input record.",
    )
    parser.add_argument("run_dir", type=Path, help="a directory written by `gnnlm train`")
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--head", help="head entity: predict tails of (HEAD, RELATION, ?)")
    side.add_argument("--tail", help="tail entity: predict heads of (?, RELATION, TAIL)")
    side.add_argument(
        "--input", type=Path, help="JSON lines of records for the task's predict() ('-': stdin)"
    )
    side.add_argument("--text", help="a text to link entities in (an entity-linking run)")
    parser.add_argument("--relation", help="relation name (with --head / --tail)")
    parser.add_argument("--k", type=int, default=10, help="number of answers (default: 10)")
    parser.add_argument(
        "--exclude",
        choices=("train", "all", "none"),
        default="train",
        help="leave out answers known from the train split (default), from every split, or none",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_trust_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gnnlm.cli.evaluate import load_run
    from gnnlm.train import CheckpointError, ConfigError, predict_heads, predict_tails
    from gnnlm.utils.registry import UntrustedCodeError

    if args.input is not None:
        return predict_records(args)
    if args.text is not None:
        return predict_text(args)
    if args.relation is None:
        print("gnnlm predict: --head / --tail need --relation", file=sys.stderr)
        return 2
    if args.k < 1:
        print(f"gnnlm predict: --k must be >= 1, got {args.k}", file=sys.stderr)
        return 2
    exclude = None if args.exclude == "none" else args.exclude
    try:
        _, task, model = load_run(args.run_dir, trust_remote_code=args.trust_remote_code)
        kg = getattr(task, "kg", None)
        if kg is None:
            raise ConfigError(
                f"{args.run_dir}: gnnlm predict ranks entities of a link-prediction run; this run's "
                f"task is {task.name!r}"
            )
        if getattr(type(model), "supports_text_queries", False):
            # a text model (task: text_link_prediction) also reads a head / tail given as new text
            from gnnlm.tasks.text_link_prediction import predict as text

            predict_tails, predict_heads = text.predict_tails_text, text.predict_heads_text
        if args.head is not None:
            prediction = predict_tails(model, kg, args.head, args.relation, args.k, exclude=exclude)
        else:
            prediction = predict_heads(model, kg, args.relation, args.tail, args.k, exclude=exclude)
    except (ConfigError, CheckpointError, UntrustedCodeError, FileNotFoundError) as err:
        print(f"gnnlm predict: {err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"gnnlm predict: {err.args[0]}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(prediction.to_dict(), indent=2))
        return 0
    h, r, t = prediction.query
    note = (
        f"{len(prediction.excluded)} known answers ({exclude}) left out"
        if exclude
        else "no answers left out"
    )
    print(f"({h}, {r}, {t})  [{note}]")
    for rank, (name, label, score) in enumerate(
        zip(prediction.names, prediction.labels, prediction.scores), 1
    ):
        shown = name if label == name else f"{name} ({label})"
        print(f"{rank:>3}. {shown:<50} {float(score):.4f}")
    return 0


def predict_records(args: argparse.Namespace) -> int:
    """``--input``: one JSON line of the task's prediction per input record."""
    from gnnlm.cli.evaluate import load_run
    from gnnlm.utils.modules import eval_mode

    source = sys.stdin if str(args.input) == "-" else None
    try:
        text = source.read() if source is not None else args.input.read_text(encoding="utf-8")
    except OSError as err:
        print(f"gnnlm predict: {args.input}: {err.strerror or err}", file=sys.stderr)
        return 2
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                print(f"gnnlm predict: {args.input}:{number}:{err.colno}: not JSON ({err.msg})",
                      file=sys.stderr)  # fmt: skip
                return 2
    _, task, model = load_run(args.run_dir, trust_remote_code=args.trust_remote_code)
    predict = getattr(task, "predict", None)
    if predict is None:
        print(f"gnnlm predict: task {task.name!r} does not define predict()", file=sys.stderr)
        return 2
    with eval_mode(model):
        outputs = predict(model, records)
    for output in outputs:
        print(json.dumps(output))
    return 0


def predict_text(args: argparse.Namespace) -> int:
    """``--text``: each linked mention of the text, one line each (span, mention, entity name, id,
    Wikidata id, score), or the task's list of links as JSON with ``--json``."""
    from gnnlm.cli.evaluate import load_run

    _, task, model = load_run(args.run_dir, trust_remote_code=args.trust_remote_code)
    link_text = getattr(task, "link_text", None)
    if link_text is None:
        print(f"gnnlm predict: --text needs an entity-linking run; this run's task is {task.name!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    links = link_text(model, args.text)
    if args.json:
        print(json.dumps(links, indent=2))
        return 0
    if not links:
        print("no mention found")
    for link in links:
        span = f"[{link['start']}:{link['end']}]"
        print(f"{span:<12} {link['mention']!r:<30} -> {link['name']} ({link['entity']}, "
              f"{link['qid']})  {link['score']:.4f}")  # fmt: skip
    return 0
