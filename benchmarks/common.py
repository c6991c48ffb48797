"""What the comparison benchmarks share: running a config's arms through the engine, the record's
header (command and machine) and writing the results (JSON and a markdown table)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def comparison_parser(
    doc: str | None, *, name: str, threads: int, quick: str, runs: str | None = None
) -> argparse.ArgumentParser:
    """The options every comparison benchmark takes: ``--seeds``, ``--threads``, ``--bootstrap``,
    ``--out`` (``runs/<runs or name>``), ``--results`` (``benchmarks/results/<name>.json``),
    ``--resume``, ``--quick`` (its smoke run: ``quick``) and ``--quiet``; a script adds its own."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--bootstrap", type=int, default=10000, help="paired bootstrap rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / (runs or name))
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results" / f"{name}.json"
    )
    parser.add_argument("--resume", action="store_true", help="keep finished runs in --out")
    parser.add_argument("--quick", action="store_true", help=f"{quick}: a smoke run")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--keep-checkpoints", action="store_true",
        help="keep each finished run's resumable checkpoint (~4x its model; deleted by default)",
    )  # fmt: skip
    return parser


def header(argv: list[str] | None, threads: int) -> dict:
    """``{"command", "machine"}`` of a benchmark invoked with ``argv`` (``None``: ``sys.argv``)."""
    return {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": threads,
                    "torch": torch.__version__},
    }  # fmt: skip


@dataclass
class Arms:
    """The finished runs of a config's variants: ``runs[arm][seed]`` is a run's ``metrics.json``;
    ``overrides`` what was set on the config file (``--set`` and ``seeds``)."""

    config: object
    overrides: list[str]
    seeds: list[int]
    runs: dict[str, dict[int, dict]]
    seconds: float


def run_arms(config_path: Path, overrides: list[str], args: argparse.Namespace) -> Arms:
    """Load ``config_path`` with ``overrides`` (and ``args.seeds``) and run its variants into
    ``args.out`` (``args.resume`` keeps finished runs, ``args.quiet`` hides progress)."""
    from gnnlm.tasks.loading import load_config
    from gnnlm.train.variants import run_variants

    overrides = list(overrides)
    if getattr(args, "seeds", None):
        overrides.append(f"seeds={args.seeds}")
    # a measurement needs each run's model/ and metrics.json, not its checkpoint (GBs over a sweep)
    keep = getattr(args, "keep_checkpoints", False)
    config = load_config(config_path, overrides + [f"training.keep_checkpoint={str(keep).lower()}"])
    start = time.perf_counter()
    comparison = run_variants(
        config, args.out, quiet=args.quiet, resume=args.resume, overwrite=not args.resume
    )
    runs = {arm: {int(s): m for s, m in a["runs"].items()} for arm, a in comparison.arms.items()}
    seeds = config.seeds or [config.seed]
    return Arms(config, overrides, seeds, runs, time.perf_counter() - start)


def write_results(path: Path, record: dict, text: str, *, echo: bool = True) -> None:
    """``record`` to ``path`` (JSON) and ``text`` beside it (``.md``), both atomically; print
    ``text`` when ``echo``."""
    from gnnlm.utils.atomic import atomic_write_text

    write_json(path, record)
    atomic_write_text(path.with_suffix(".md"), text)
    if echo:
        print(text)


def write_json(path: Path, record: dict) -> None:
    """``record`` to ``path`` as indented JSON, atomically (a killed run never leaves half a file),
    creating its folder."""
    from gnnlm.utils.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def gflops(fn, flops: float, repeats: int) -> dict[str, float]:
    """GFLOP/s of ``fn`` (which does ``flops`` operations), by wall clock and by this process's CPU
    time, best of ``repeats``: ``{"wall": ..., "cpu": ...}``."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return {"wall": flops / min(wall) / 1e9, "cpu": flops / min(cpu) / 1e9}


def matmul_peak(size: int = 4096, repeats: int = 2) -> dict[str, dict[str, float]]:
    """GFLOP/s of a ``size x size`` float32 product, torch ``@`` and (where available) oneDNN, best
    of ``repeats`` (:func:`gflops`), at the current thread count: the yardstick that says how fast
    this machine is today, recorded beside step times measured in seconds."""
    from gnnlm.kge import gemm

    a, b = torch.randn(size, size), torch.randn(size, size)
    fns = {"torch": lambda: a @ b}
    if gemm.onednn_available():
        fns["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    small = torch.randn(256, 256)
    small @ small  # warm-up
    return {name: gflops(fn, 2 * size**3, repeats) for name, fn in fns.items()}
