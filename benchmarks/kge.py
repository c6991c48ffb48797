"""Train the shipped KGE configs and tabulate link-prediction quality and speed.

    python benchmarks/kge.py --datasets umls kinship nations --models transe distmult complex rotate tucker
    python benchmarks/kge.py --datasets fb15k-237 wn18rr --models complex --epochs 5 --set evaluation.frequency=0

For each ``configs/<dataset>/<model>.yaml`` it trains (``--epochs`` / ``--set`` override the config), then
prints a table (model, dataset, filtered test MRR, Hits@1/3/10, the MRR the config aims at, train seconds,
training triples per second, test evaluation seconds) and writes every record as JSON to
``benchmarks/results/kge.json`` (merged with earlier records of other (dataset, model) pairs).
The published number comes from the ``Aims at: test MRR ...`` comment of each config.
Timings depend on the machine and on what else runs on it; the thread count is set explicitly.

``--reference DIR`` compares training speed with another checkout of gnnlm (``git worktree add DIR
<commit>``) in one run instead: each config trains ``--epochs`` epochs (no validation) in a fresh process
per (checkout, config, round), the rounds alternating the checkouts in a random order, and the table gives
the median triples/s of each, their ratio and whether the test MRRs are equal (they should be: same
seed, same procedure). Writes ``benchmarks/results/kge_vs_reference.json``::

    git worktree add /tmp/gnnlm-before HEAD~1
    python benchmarks/kge.py --reference /tmp/gnnlm-before --datasets umls --models complex rotate \
        --epochs 20 --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
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


_WORKER = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[3]))
from gnnlm.train import TrainConfig, Trainer
assert __import__("gnnlm").__file__.startswith(sys.argv[4]), "wrong checkout imported"
config = TrainConfig.load(sys.argv[1], json.loads(sys.argv[2]))
m = Trainer(config, quiet=True).fit().metrics
print(json.dumps({"tps": m["triples_per_second"], "train_seconds": m["train_seconds"],
                  "mrr": m["test"]["mrr"], "epochs": m["epochs"]}))
"""


def compare(args: argparse.Namespace, overrides: list[str]) -> int:
    """Same-run training speed of this checkout against ``--reference`` (see the module docstring)."""
    trees = {"this": ROOT, "reference": args.reference.resolve()}
    jobs = [
        (dataset, model)
        for dataset in args.datasets
        for model in args.models
        if (args.configs / dataset / f"{model}.yaml").exists()
    ]
    overrides = overrides + ["evaluation.frequency=0"]
    results: dict = {job: {name: [] for name in trees} for job in jobs}
    rng = random.Random(0)
    for round_ in range(args.rounds):
        for job in jobs:
            for name in rng.sample(list(trees), len(trees)):
                tree = trees[name]
                config = tree / "configs" / job[0] / f"{job[1]}.yaml"
                env = {**os.environ, "PYTHONPATH": str(tree)}
                done = subprocess.run(
                    [sys.executable, "-c", _WORKER, str(config), json.dumps(overrides),
                     str(args.threads), str(tree)],
                    capture_output=True, text=True, env=env, cwd=tree, check=True,
                )  # fmt: skip
                results[job][name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {round_ + 1} {job[0]}/{job[1]} {name}: "
                      f"{results[job][name][-1]['tps']:,.0f} triples/s", flush=True)  # fmt: skip
    lines = ["| dataset | model | epochs | this triples/s | reference triples/s | ratio | same test MRR |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    records = []
    for (dataset, model), runs in results.items():
        this = statistics.median(r["tps"] for r in runs["this"])
        ref = statistics.median(r["tps"] for r in runs["reference"])
        same = {r["mrr"] for r in runs["this"]} == {r["mrr"] for r in runs["reference"]}
        records.append({"dataset": dataset, "model": model, "this": runs["this"],
                        "reference": runs["reference"], "median_ratio": this / ref, "same_mrr": same})  # fmt: skip
        lines.append(f"| {dataset} | {model} | {runs['this'][0]['epochs']} | {this:,.0f} | {ref:,.0f} | "
                     f"{this / ref:.3f} | {same} |")  # fmt: skip
    print("\n".join(lines))
    out = args.out.with_name("kge_vs_reference.json")
    commit = subprocess.run(["git", "-C", str(trees["reference"]), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    doc = {"reference": str(trees["reference"]), "reference_commit": commit, "rounds": args.rounds,
           "threads": args.threads, "overrides": overrides, "records": records,
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "platform": platform.platform()}  # fmt: skip
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


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
    parser.add_argument(
        "--reference", type=Path, default=None,
        help="another gnnlm checkout: compare training speed with it in one run (see above)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --reference (default 3)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    overrides = list(args.overrides) + ([f"training.epochs={args.epochs}"] if args.epochs else [])
    if args.reference is not None:
        return compare(args, overrides)
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
