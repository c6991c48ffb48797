"""Time loading the benchmark KGs: a first load (parse + verify + write the processed cache), a cached
load (safetensors + JSON), and building the filter index.

Each first load uses a fresh, empty cache folder. Prints a table and writes JSON (default
``benchmarks/results/datasets.json``).

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/datasets.py [--names fb15k-237 wn18rr] [--repeats 3]

The machine's load average is recorded next to every run: on a shared machine, timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from gnnlm.data import load_dataset
from gnnlm.utils.atomic import atomic_write_text


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", default=["fb15k-237", "wn18rr"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/datasets.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.names:
        first, cached, index = [], [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["GNNLM_CACHE_DIR"] = cache
                _, seconds = timed(partial(load_dataset, name))
                first.append(seconds)
                kg, seconds = timed(partial(load_dataset, name))
                assert kg.extra["from_cache"]
                cached.append(seconds)
                _, seconds = timed(partial(getattr, kg, "filter_index"))
                index.append(seconds)
        row = {
            "dataset": name,
            "first_load_s": min(first),
            "cached_load_s": min(cached),
            "filter_index_s": min(index),
            "threads": args.threads,
            "repeats": args.repeats,
            "load_average": os.getloadavg()[0],
        }
        results.append(row)
        print(
            f"{name:12s} first load {row['first_load_s']:.2f}s  cached load {row['cached_load_s']:.3f}s"
            f"  filter index {row['filter_index_s']:.3f}s  (load average {row['load_average']:.1f})"
        )
    out = Path(args.out)
    meta = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor(),
    }
    atomic_write_text(out, json.dumps({"machine": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
