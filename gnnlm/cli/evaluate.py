"""``gnnlm evaluate RUN_DIR [--split test] [--json]``: filtered rank-based metrics of a trained run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HEADLINE = ("mrr", "mr", "hits@1", "hits@3", "hits@10")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run (filtered MRR, MR, Hits@k)",
        description="Evaluate RUN_DIR/model on a split with the filtered rank-based protocol "
        "(filter = train + valid + test, realistic ties).",
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


def load_run(run_dir: Path, *, trust_remote_code: bool = False, command: str = "evaluate"):
    """``(config, kg, model)`` of a finished run, the graph numbered as the model's ``vocab.json``."""
    from gnnlm.data import load_dataset
    from gnnlm.train import TrainConfig, from_pretrained
    from gnnlm.train.pretrained import VOCAB_NAME, align_graph, load_vocab

    config = TrainConfig.load(run_dir / "config.yaml")
    kg = load_dataset(config.dataset, **config.dataset_kwargs)
    model_dir = run_dir / "model"
    vocab = load_vocab(model_dir)
    if vocab is None:
        print(
            f"gnnlm {command}: warning: {model_dir / VOCAB_NAME} is missing; assuming the dataset "
            "numbers entities and relations as it did in training",
            file=sys.stderr,
        )
    else:
        kg = align_graph(kg, vocab, source=str(model_dir / VOCAB_NAME))
    model = from_pretrained(model_dir, kg=kg, trust_remote_code=trust_remote_code)
    return config, kg, model


def run(args: argparse.Namespace) -> int:
    import torch

    from gnnlm.eval import RankBasedEvaluator
    from gnnlm.kge.resolver import UntrustedCodeError
    from gnnlm.train import CheckpointError, ConfigError

    try:
        config, kg, model = load_run(args.run_dir, trust_remote_code=args.trust_remote_code)
    except (ConfigError, CheckpointError, UntrustedCodeError, FileNotFoundError) as err:
        print(f"gnnlm evaluate: {err}", file=sys.stderr)
        return 2
    if args.split not in kg.splits:
        print(
            f"gnnlm evaluate: unknown split {args.split!r}; {kg.name} has {sorted(kg.splits)}",
            file=sys.stderr,
        )
        return 2
    batch_size = args.batch_size or config.evaluation.batch_size
    evaluator = RankBasedEvaluator(kg.filter_index, batch_size=batch_size, quiet=True)
    with torch.no_grad():
        metrics = evaluator.evaluate(model, kg.splits[args.split]).to_dict()
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{kg.name} {args.split} ({metrics['num_queries']} queries, filtered, both sides)")
        for key in HEADLINE:
            print(f"  {key:<8} {metrics[key]:.4f}")
    return 0
