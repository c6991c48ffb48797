"""Time the full filtered rank-based evaluation (both sides) on a real benchmark.

The issue's yardstick: FB15k-237 test (20,466 triples x 2 sides x 14,541 entities), ComplEx d=200,
random initialisation (timing does not depend on training), one and two threads. Prints a table and
writes JSON (default ``benchmarks/results/evaluator.json``).

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/evaluator.py [--threads 1 2] [--repeats 2]

The machine's load average is recorded next to every run: on a shared machine, timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from gnnlm.data import load_dataset
from gnnlm.eval import RankBasedEvaluator
from gnnlm.kge import build_kge_model, gemm


def score_only_seconds(model, triples: torch.Tensor, block: int) -> float:
    """Lower bound: the 1-N products of the unique queries alone, no ranking."""
    reps = model.representations()
    start = time.perf_counter()
    for keys, fn in ((triples[:, [0, 1]], model.score_t), (triples[:, [1, 2]], model.score_h)):
        unique = torch.unique(keys, dim=0)
        for chunk in unique.split(block):
            fn(chunk, reps=reps)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--interaction", default="complex")
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: from the memory budget"
    )
    parser.add_argument(
        "--no-onednn",
        action="store_true",
        help="plain BLAS `@` for the 1-N products (for comparison)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "evaluator.json"))
    args = parser.parse_args()

    gemm.USE_ONEDNN = not args.no_onednn
    kg = load_dataset(args.dataset)
    triples = kg.splits[args.split]
    torch.manual_seed(0)
    model = build_kge_model(args.interaction, kg.num_entities, kg.num_relations, args.dim).eval()
    index = kg.filter_index
    evaluator = RankBasedEvaluator(index, batch_size=args.batch_size, quiet=True)
    block = args.batch_size or max(1, evaluator.max_scores // kg.num_entities)

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for repeat in range(args.repeats):
            load = os.getloadavg()[0]
            start, cpu_start = time.perf_counter(), time.process_time()
            with torch.no_grad():
                metrics = evaluator.evaluate(model, triples)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            with torch.no_grad():
                scores_s = score_only_seconds(model, triples, block)
            rows.append(
                {
                    "threads": threads,
                    "repeat": repeat,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "scores_only_seconds": scores_s,
                    "load_avg_1min_before": load,
                    "mrr": metrics.mrr,
                    "num_queries": metrics.num_queries,
                }
            )
            print(
                f"threads={threads} repeat={repeat}: {seconds:6.2f} s wall, {cpu_seconds:6.2f} s CPU "
                f"(1-N scores alone {scores_s:5.2f} s; load avg {load:.2f})",
                flush=True,
            )

    print()
    print(
        f"{args.dataset} {args.split}: {len(triples)} triples x 2 sides x {kg.num_entities} entities, "
        f"{args.interaction} d={args.dim}, batch={block}, oneDNN={gemm.USE_ONEDNN}"
    )
    print(
        f"{'threads':>7} {'best s':>8} {'all runs (s)':>24} {'best CPU s':>11} {'scores only s':>14}"
    )
    summary = {}
    for threads in args.threads:
        mine = [r for r in rows if r["threads"] == threads]
        best = min(r["seconds"] for r in mine)
        summary[str(threads)] = best
        runs = ", ".join(f"{r['seconds']:.2f}" for r in mine)
        scores_s = min(r["scores_only_seconds"] for r in mine)
        cpu = min(r["cpu_seconds"] for r in mine)
        print(f"{threads:>7} {best:>8.2f} {runs:>24} {cpu:>11.2f} {scores_s:>14.2f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": args.dataset,
        "split": args.split,
        "interaction": args.interaction,
        "embedding_dim": args.dim,
        "num_triples": len(triples),
        "num_entities": kg.num_entities,
        "batch_size": block,
        "onednn": gemm.USE_ONEDNN,
        "best_seconds_by_threads": summary,
        "runs": rows,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "note": "shared machine: see load_avg_1min_before for each run",
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
