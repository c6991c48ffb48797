"""What the encoders' dropout (a uniform-draw mask on CPU) saves against ``F.dropout``, in one run.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/dropout.py [--threads 1] [--steps 24]

1. One mask on a ``[14541, 200]`` array (FB15k-237's entities at d200), forward + backward: fastest and
   median of ``--reps``.
2. Full training steps on the whole FB15k-237 graph (2 layers, Adam, the step of
   ``benchmarks/encoders.py``), ``gnnlm.encoders.dropout.UNIFORM_MASK_ON_CPU`` toggled at every step in
   one process: both arms see the same memory state and the same machine load, which a comparison of
   two processes on this noisy machine does not give. Reported per model: median and fastest CPU
   time per step of each arm, and the median of the per-pair ratios (uniform / ``F.dropout``) with a
   bootstrap 95% interval over the pairs.

Writes ``benchmarks/results/dropout.json``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch
from common import header, matmul_peak, write_json

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "CompGCN sub d200": ("ours-compgcn", 200, {"composition": "sub"}),
    "CompGCN mult d200": ("ours-compgcn", 200, {"composition": "mult"}),
    "CompGCN corr d200": ("ours-compgcn", 200, {"composition": "corr"}),
    "R-GCN basis-30 d64": ("ours-rgcn", 64, {"num_bases": 30}),
}


def _time(fn, reps: int) -> list[float]:
    for _ in range(3):
        fn()
    out = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return out


def mask_costs(reps: int) -> dict:
    """Forward + backward of one dropout (p 0.1) on ``[14541, 200]``, ms: ``{arm: (min, median)}``."""
    from gnnlm.encoders import dropout as module

    x = torch.randn(14541, 200, requires_grad=True)
    grad = torch.randn(14541, 200)

    def step(uniform: bool):
        module.UNIFORM_MASK_ON_CPU = uniform
        module.dropout(x, 0.1).backward(grad)
        x.grad = None

    out = {}
    for name, uniform in (("F.dropout", False), ("uniform", True)):
        t = _time(lambda u=uniform: step(u), reps)
        out[name] = {"min_ms": 1e3 * min(t), "median_ms": 1e3 * statistics.median(t)}
    module.UNIFORM_MASK_ON_CPU = True
    # the mask alone: what F.dropout's bernoulli_ draws against one uniform_ draw
    y = torch.empty(14541, 200)
    out["bernoulli_ alone"] = {"min_ms": 1e3 * min(_time(lambda: y.bernoulli_(0.9), reps))}
    out["uniform_ alone"] = {"min_ms": 1e3 * min(_time(lambda: y.uniform_(), reps))}
    return out


def alternating_steps(name: str, steps: int, rounds: int, seed: int = 0) -> dict:
    """``steps`` training steps per arm, the arm switched at every step (``F.dropout`` first)."""
    from encoders import step_loss

    from gnnlm.data import load_dataset
    from gnnlm.encoders import dropout as module

    kind, dim, options = MODELS[name]
    torch.manual_seed(seed)
    graph = load_dataset("fb15k-237").homogeneous(add_inverse=True)
    loss, params = step_loss(kind, dim, options, graph)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)  # as the training engine builds it

    def step():
        loss().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = {False: [], True: []}
    for i in range(2 + 2 * steps):
        uniform = bool(i % 2)
        module.UNIFORM_MASK_ON_CPU = uniform
        start = time.process_time()
        step()
        if i >= 2:  # two warm-up steps (pair structure, workspaces)
            times[uniform].append(time.process_time() - start)
    module.UNIFORM_MASK_ON_CPU = True
    ratios = [u / t for t, u in zip(times[False], times[True])]
    rng = random.Random(seed)
    boot = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(rounds)
    )  # resampled pairs
    return {
        "cpu_s_median": {"F.dropout": statistics.median(times[False]),
                         "uniform": statistics.median(times[True])},
        "cpu_s_min": {"F.dropout": min(times[False]), "uniform": min(times[True])},
        "ratio_median": statistics.median(ratios),
        "ratio_ci95": [boot[int(0.025 * rounds)], boot[int(0.975 * rounds) - 1]],
        "cpu_s_all": {"F.dropout": [round(t, 4) for t in times[False]],
                      "uniform": [round(t, 4) for t in times[True]]},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=24, help="steps per arm and model")
    parser.add_argument("--reps", type=int, default=30, help="repetitions of the mask timing")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--bootstrap", type=int, default=10000)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "dropout.json"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    record = header(argv, args.threads)
    record["matmul_4096_gflops"] = matmul_peak()  # how fast this machine is today
    print(f"4096^2 matmul: {record['matmul_4096_gflops']['torch']['cpu']:.0f} GFLOP/s (CPU time)")
    record["masks"] = mask_costs(args.reps)
    print("one mask, [14541, 200], forward + backward (ms, fastest / median):")
    for arm, r in record["masks"].items():
        print(
            f"  {arm:18s} {r['min_ms']:7.1f}"
            + (f" / {r['median_ms']:.1f}" if "median_ms" in r else "")
        )
    record["steps"] = {}
    print(f"\ntraining steps on FB15k-237, arms alternating, {args.steps} per arm (CPU s):")
    print(
        f"{'model':20s} {'F.dropout med':>13s} {'uniform med':>11s} {'min / min':>11s} {'ratio [95% CI]':>22s}"
    )
    for name in args.models:
        r = alternating_steps(name, args.steps, args.bootstrap)
        record["steps"][name] = r
        med, low = r["cpu_s_median"], r["cpu_s_min"]
        ci = r["ratio_ci95"]
        print(f"{name:20s} {med['F.dropout']:13.3f} {med['uniform']:11.3f} "
              f"{low['F.dropout']:5.3f}/{low['uniform']:5.3f} "
              f"{r['ratio_median']:8.3f} [{ci[0]:.3f}, {ci[1]:.3f}]", flush=True)  # fmt: skip
    write_json(args.out, record)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
