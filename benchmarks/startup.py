"""Start-up time of the command line: ``gnnlm --help``, ``gnnlm datasets umls`` (cached) and
``import gnnlm.data``, each in a fresh interpreter; optionally against another checkout.

The arms run interleaved, ``--repeats`` times each; the table shows the min and the median. Writes
JSON (default ``benchmarks/results/startup.json``).

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/startup.py [--repeats 5] \\
        [--compare /tmp/old]   # e.g. mkdir /tmp/old && git archive REV | tar -x -C /tmp/old

The machine's load average is recorded: on a shared machine, timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gnnlm.utils.atomic import atomic_write_text

COMMANDS = {
    "gnnlm --help": ["-m", "gnnlm.cli", "--help"],
    "gnnlm datasets umls": ["-m", "gnnlm.cli", "datasets", "umls"],
    "import gnnlm.data": ["-c", "import gnnlm.data"],
}


def run(tree: Path, args: list[str], cache: Path) -> float:
    env = dict(os.environ, GNNLM_CACHE_DIR=str(cache), PYTHONPATH=str(tree))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {tree}:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout to time the same way")
    parser.add_argument("--out", default="benchmarks/results/startup.json")
    args = parser.parse_args()
    if not os.environ.get("GNNLM_DATA_DIR"):
        raise SystemExit("set GNNLM_DATA_DIR (gnnlm datasets umls reads the real files)")
    trees = {"current": Path(__file__).resolve().parents[1]}
    if args.compare is not None:
        trees["compare"] = args.compare.resolve()
    times: dict[str, dict[str, list[float]]] = {c: {t: [] for t in trees} for c in COMMANDS}
    with tempfile.TemporaryDirectory() as tmp:
        caches = {t: Path(tmp) / t for t in trees}
        for name, tree in trees.items():  # fill each processed-graph cache once
            run(tree, COMMANDS["gnnlm datasets umls"], caches[name])
        for _ in range(args.repeats):
            for command, argv in COMMANDS.items():
                for name, tree in trees.items():
                    times[command][name].append(run(tree, argv, caches[name]))
    header = f"{'command':<22}" + "".join(f"{t + ' min':>14}{t + ' med':>14}" for t in trees)
    print(header)
    for command, arms in times.items():
        cells = "".join(f"{min(v):>13.2f}s{statistics.median(v):>13.2f}s" for v in arms.values())
        print(f"{command:<22}{cells}")
    record = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.node(),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "trees": {k: str(v) for k, v in trees.items()},
        "repeats": args.repeats,
        "seconds": times,
    }
    # atomic: a killed run never leaves half a file
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
