"""Train the shipped KGE configs and tabulate link-prediction quality and speed.

    python benchmarks/kge.py --datasets umls kinship nations --models transe distmult complex rotate tucker
    python benchmarks/kge.py --datasets fb15k-237 wn18rr --models complex --epochs 5 --set evaluation.frequency=0

For each ``configs/<dataset>/<model>.yaml`` it trains (``--epochs`` / ``--set`` override the config), then
prints a table (model, dataset, filtered test MRR, Hits@1/3/10, the MRR the config aims at, train seconds,
training triples per second, test evaluation seconds) and writes every record as JSON to
``benchmarks/results/kge.json`` (merged with earlier records of other (dataset, model) pairs).
The published number comes from the ``Aims at: test MRR ...`` comment of each config.
Timings depend on the machine and on what else runs on it; the thread count is set explicitly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

from gnnlm.eval.metrics import HEADLINE_METRICS
from gnnlm.utils.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("umls", "kinship", "nations", "fb15k-237", "wn18rr")
MODELS = ("transe", "distmult", "complex", "rotate", "tucker", "conve")
AIM = re.compile(r"Aims at: test MRR\s*([0-9.]+)")


def published_mrr(path: Path) -> float | None:
    match = AIM.search(path.read_text())
    return float(match.group(1)) if match else None


def run_one(path: Path, overrides: list[str], quiet: bool) -> dict:
    from gnnlm.train import TrainConfig, Trainer

    config = TrainConfig.load(path, overrides)
    trainer = Trainer(config, quiet=quiet)
    result = trainer.fit()
    m = result.metrics
    test = m["test"]
    return {
        "dataset": config.dataset,
        "model": path.stem,
        "config": str(path.relative_to(ROOT)),
        "overrides": overrides,
        "epochs": m["epochs"],
        "best_epoch": m["best_epoch"],
        **{key: test[key] for key in HEADLINE_METRICS},
        "valid_mrr": m["valid"]["mrr"],
        "published_mrr": published_mrr(path),
        "train_seconds": m["train_seconds"],
        "triples_per_second": m["triples_per_second"],
        "eval_seconds": m["eval_seconds"]["test"],
        "num_parameters": m["num_parameters"],
    }


def table(records: list[dict]) -> str:
    head = "| model | dataset | epochs | MRR | H@1 | H@3 | H@10 | published MRR | train s | triples/s | eval s |"
    lines = [head, "|" + "---|" * 11]
    for r in records:
        pub = f"{r['published_mrr']:.3f}" if r["published_mrr"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['epochs']} | {r['mrr']:.3f} | {r['hits@1']:.3f} | "
            f"{r['hits@3']:.3f} | {r['hits@10']:.3f} | {pub} | {r['train_seconds']:.1f} | "
            f"{r['triples_per_second']:,.0f} | {r['eval_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["umls", "kinship", "nations"], choices=DATASETS
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument(
        "--epochs", type=int, default=None, help="override training.epochs of every config"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--configs", type=Path, default=ROOT / "configs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kge.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    overrides = list(args.overrides) + ([f"training.epochs={args.epochs}"] if args.epochs else [])
    records = []
    for dataset in args.datasets:
        for model in args.models:
            path = args.configs / dataset / f"{model}.yaml"
            if not path.exists():
                print(f"skip {dataset}/{model}: no {path}", file=sys.stderr)
                continue
            start = time.perf_counter()
            record = run_one(path, overrides, args.quiet)
            record["wall_seconds"] = time.perf_counter() - start
            records.append(record)
            print(
                f"{dataset}/{model}: test MRR {record['mrr']:.4f} in {record['wall_seconds']:.0f}s",
                flush=True,
            )
    print(table(records))

    machine = {
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    previous = json.loads(args.out.read_text())["records"] if args.out.exists() else []
    keep = [
        r
        for r in previous
        if (r["dataset"], r["model"]) not in {(x["dataset"], x["model"]) for x in records}
    ]
    for record in records:
        record["machine"] = machine
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"records": keep + records}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
