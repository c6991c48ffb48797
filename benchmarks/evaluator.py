"""Time the full filtered rank-based evaluation (both sides) on a real benchmark.

The issue's yardstick: FB15k-237 test (20,466 triples x 2 sides x 14,541 entities), ComplEx d=200,
random initialisation (timing does not depend on training), one and two threads. Prints a table and
writes JSON (default ``benchmarks/results/evaluator.json``; the previous payload is kept under
``history``).

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/evaluator.py [--threads 1 2] [--repeats 2] [--busy 0 1]

``--busy K`` adds ``K`` busy-looping processes (started and stopped by the benchmark, each bounded to
``--busy-limit`` seconds) while the thread counts are timed, to see how each count copes with a busy
machine; the evaluator's ``num_threads`` default comes from this comparison. The machine's load average
is recorded next to every run: on a shared machine, timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from gnnlm.data import load_dataset
from gnnlm.eval import RankBasedEvaluator
from gnnlm.kge import build_kge_model, gemm
from gnnlm.utils.atomic import atomic_write_text


def score_only_seconds(model, triples: torch.Tensor, block: int) -> float:
    """Lower bound: the 1-N products of the unique queries alone, no ranking."""
    reps = model.representations()
    start = time.perf_counter()
    for keys, fn in ((triples[:, [0, 1]], model.score_t), (triples[:, [1, 2]], model.score_h)):
        unique = torch.unique(keys, dim=0)
        for chunk in unique.split(block):
            fn(chunk, reps=reps)
    return time.perf_counter() - start


@contextmanager
def busy_processes(count: int, limit: float):
    """``count`` background processes spinning on a core each, for at most ``limit`` seconds."""
    code = (
        f"import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        if procs:
            time.sleep(1.0)  # let them start spinning
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--interaction", default="complex")
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--busy", type=int, nargs="+", default=[0], help="extra busy processes (one run per value)"
    )
    parser.add_argument("--busy-limit", type=float, default=600.0)
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
    block = args.batch_size or max(1, RankBasedEvaluator().max_scores // kg.num_entities)

    rows = []
    for busy in args.busy:
        with busy_processes(busy, args.busy_limit):
            for repeat in range(args.repeats):  # interleaved: each count sees the same load
                for threads in args.threads:
                    evaluator = RankBasedEvaluator(
                        index, batch_size=args.batch_size, quiet=True, num_threads=threads
                    )
                    torch.set_num_threads(threads)  # for the scores-only timing
                    load = os.getloadavg()[0]
                    start, cpu_start = time.perf_counter(), time.process_time()
                    with torch.no_grad():
                        metrics = evaluator.evaluate(model, triples)
                    seconds = time.perf_counter() - start
                    cpu_seconds = time.process_time() - cpu_start
                    with torch.no_grad():
                        scores_s = score_only_seconds(model, triples, block)
                    rows.append(
                        {
                            "threads": threads,
                            "busy_processes": busy,
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
                        f"busy={busy} threads={threads} repeat={repeat}: {seconds:6.2f} s wall, "
                        f"{cpu_seconds:6.2f} s CPU (1-N scores alone {scores_s:5.2f} s; "
                        f"load avg {load:.2f})",
                        flush=True,
                    )

    print()
    print(
        f"{args.dataset} {args.split}: {len(triples)} triples x 2 sides x {kg.num_entities} entities, "
        f"{args.interaction} d={args.dim}, batch={block}, oneDNN={gemm.USE_ONEDNN}"
    )
    print(
        f"{'busy':>4} {'threads':>7} {'best s':>8} {'median s':>9} {'all runs (s)':>24} "
        f"{'best CPU s':>11} {'scores only s':>14} {'load avg':>9}"
    )
    summary: dict[str, dict[str, float]] = {}
    for busy in args.busy:
        for threads in args.threads:
            mine = [r for r in rows if r["threads"] == threads and r["busy_processes"] == busy]
            times = sorted(r["seconds"] for r in mine)
            best, median = times[0], times[len(times) // 2]
            summary.setdefault(str(busy), {})[str(threads)] = best
            runs = ", ".join(f"{r['seconds']:.2f}" for r in mine)
            scores_s = min(r["scores_only_seconds"] for r in mine)
            cpu = min(r["cpu_seconds"] for r in mine)
            load = max(r["load_avg_1min_before"] for r in mine)
            print(
                f"{busy:>4} {threads:>7} {best:>8.2f} {median:>9.2f} {runs:>24} {cpu:>11.2f} "
                f"{scores_s:>14.2f} {load:>9.2f}"
            )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    history = []
    if out.exists():
        previous = json.loads(out.read_text())
        history = previous.pop("history", []) + [previous]
    payload = {
        "dataset": args.dataset,
        "split": args.split,
        "interaction": args.interaction,
        "embedding_dim": args.dim,
        "num_triples": len(triples),
        "num_entities": kg.num_entities,
        "batch_size": block,
        "onednn": gemm.USE_ONEDNN,
        "best_seconds_by_threads": summary[str(args.busy[0])],
        "best_seconds_by_busy_processes_and_threads": summary,
        "busy_processes_note": "extra busy-looping processes started by the benchmark, on top of "
        "whatever else ran (see load_avg_1min_before)",
        "default_num_threads": RankBasedEvaluator().num_threads,
        "runs": rows,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "note": "shared machine: see load_avg_1min_before for each run",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python benchmarks/evaluator.py " + " ".join(sys.argv[1:]),
        "history": history,
    }
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
