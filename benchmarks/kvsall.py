"""KvsAll (1-N) training throughput against the machine's matmul peak, fused and reference paths.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/kvsall.py [--steps 10] [--repeats 3] [--threads 1]

A step is what the trainer does per batch (``zero_grad``, ``batch_loss``, ``backward``, optimiser
``step``, ``post_step``, ``loss.item()``), on the first ``steps`` batches of a shuffled epoch
(``--steps 0``: the whole epoch). Throughput counts the three ``[B, N, D]`` products of a step,
``3 * 2 * B * N * D`` FLOPs (forward ``Q @ E.T``, ``dQ = G @ E``, ``dE = G.T @ Q``; ``D`` is the entity
width, 400 for ComplEx d=200), over the step's whole wall time; everything else (loss, optimiser,
regulariser) counts as overhead. In the same run, interleaved with the arms, it measures the
single-thread peak of a 4096 x 4096 matmul (torch ``@`` and oneDNN) and the three products alone.

Arms: ``fused`` (the default path: fused loss, oneDNN forward product) and ``reference`` (the old path:
dense targets, ``Loss.kvsall``, plain ``@``). Each arm is timed ``repeats`` times; the best is kept.
Prints a table and writes ``benchmarks/results/kvsall.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from class_resolver.contrib.torch import optimizer_resolver
from common import gflops, matmul_peak, write_json

from gnnlm.data import load_dataset
from gnnlm.kge import build_kge_model, gemm
from gnnlm.train.loops import KvsAllLoop
from gnnlm.train.losses import loss_resolver
from gnnlm.train.regularizers import regularizer_resolver

OUT = Path(__file__).parent / "results" / "kvsall.json"
ARMS = ("fused", "reference")


def products_only(batch: int, num_entities: int, width: int, repeats: int = 2) -> dict:
    """GFLOP/s of the three products of one fused step alone (same kernels and layouts, no loss)."""
    q, e = torch.randn(batch, width), torch.randn(num_entities, width)
    grad = torch.randn(num_entities, batch).t()  # [B, N] entity-major, like the fused gradient

    def step() -> None:
        (e @ q.t()).t()  # MatmulNT's forward
        grad @ e  # dQ
        grad.t() @ q  # dE

    return gflops(step, 6 * batch * num_entities * width, repeats)


def _make(kg, model_name: str, dim: int, args: dict, fused: bool):
    torch.manual_seed(0)
    model = build_kge_model(
        model_name, kg.num_entities, kg.num_relations, dim, reciprocal=args["reciprocal"]
    )
    loss = loss_resolver.make(args["loss"])
    regularizer = (
        regularizer_resolver.make(args["regularizer"], weight=args["regularizer_weight"])
        if args["regularizer"]
        else None
    )
    loop = KvsAllLoop(
        model, kg.train, kg.num_relations, loss, batch_size=args["batch"],
        reciprocal=args["reciprocal"], label_smoothing=args["label_smoothing"],
        regularizer=regularizer, fused=fused,
    )  # fmt: skip
    optimizer = optimizer_resolver.make(
        args["optimizer"], {"lr": args["lr"]}, params=model.parameters()
    )
    return model, loop, optimizer


def _run_steps(model, loop, optimizer, batches, fused: bool) -> dict[str, float]:
    """Train on ``batches``; seconds in total and per phase (forward+loss, backward, optimiser)."""
    gemm.USE_TRAINING_PRODUCT = fused
    generator = torch.Generator().manual_seed(0)
    phases = {"forward_loss": 0.0, "backward": 0.0, "optimizer": 0.0}
    start, cpu_start = time.perf_counter(), time.process_time()
    for indices in batches:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loop.batch_loss(indices, generator)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        model.post_step()
        loss.item()
        t3 = time.perf_counter()
        phases["forward_loss"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["optimizer"] += t3 - t2
    gemm.USE_TRAINING_PRODUCT = True
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"seconds": seconds, "cpu_seconds": cpu, **phases}


def measure(
    dataset: str = "fb15k-237",
    model: str = "complex",
    dim: int = 200,
    batch: int = 1000,
    steps: int | None = 10,
    threads: int = 1,
    *,
    loss: str = "crossentropy",
    optimizer: str = "adagrad",
    lr: float = 0.1,
    label_smoothing: float = 0.0,
    reciprocal: bool = True,
    regularizer: str | None = "n3",
    regularizer_weight: float = 0.05,
    repeats: int = 3,
    arms: tuple[str, ...] = ARMS,
) -> dict:
    """KvsAll training GFLOP/s (fused and reference) and the matmul peak, measured in one run.

    The defaults are ``configs/fb15k-237/complex.yaml``'s training (batch 1000, cross-entropy,
    Adagrad, N3, reciprocal). ``steps=None`` times a full epoch.

    Returns:
        A dict with ``peak_gflops`` (``torch``/``onednn``), ``products_gflops`` (the three products
        alone), and per arm (``arms``) ``gflops`` (best of ``repeats``), ``ratio_to_peak`` (to the
        better peak), per-phase seconds; ``gflops`` / ``ratio_to_peak`` at the top level are the
        first arm's, ``speedup`` is reference seconds / fused seconds; plus the setup and the FLOP
        count convention (``flops_note``).
        Every GFLOP/s figure comes as ``{"wall": ..., "cpu": ...}`` (elapsed vs CPU time).
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kg = load_dataset(dataset)
        setup = {
            "batch": batch, "loss": loss, "optimizer": optimizer, "lr": lr, "reciprocal": reciprocal,
            "label_smoothing": label_smoothing, "regularizer": regularizer,
            "regularizer_weight": regularizer_weight,
        }  # fmt: skip
        built = {arm: _make(kg, model, dim, setup, fused=arm == "fused") for arm in arms}
        first_model = next(iter(built.values()))[0]
        width = first_model.representations()[0].shape[1]  # D: entity representation width
        epoch = list(
            next(iter(built.values()))[1].batches(torch.Generator().manual_seed(0))
        )  # same batches for every arm
        batches = epoch if not steps else epoch[:steps]
        flops = sum(6 * len(b) * kg.num_entities * width for b in batches)
        runs: dict[str, list[dict]] = {arm: [] for arm in arms}
        peaks, products = [], []
        for _ in range(repeats):  # interleaved: every repeat sees the same machine load
            peaks.append(matmul_peak())
            products.append(products_only(batch, kg.num_entities, width))
            for arm, (m, loop, opt) in built.items():
                load = os.getloadavg()[0]
                timing = _run_steps(m, loop, opt, batches, fused=arm == "fused")
                runs[arm].append({**timing, "load_avg_1min_before": load})
        clocks = ("wall", "cpu")
        peak = {k: {c: max(p[k][c] for p in peaks) for c in clocks} for k in peaks[0]}
        best_peak = {c: max(v[c] for v in peak.values()) for c in clocks}
        result = {
            "dataset": dataset, "model": model, "embedding_dim": dim, "entity_width": width,
            "num_entities": kg.num_entities, "threads": threads, "steps": len(batches),
            "full_epoch_steps": len(epoch), "queries": sum(len(b) for b in batches),
            **setup,
            "flops": flops,
            "flops_note": "3 products x 2 x B x N x D per step (forward Q @ E.T, dQ = G @ E, "
            "dE = G.T @ Q); the loss, optimiser and regulariser count as overhead",
            "peak_gflops": peak,
            "best_peak_gflops": best_peak,
            "products_gflops": {c: max(p[c] for p in products) for c in clocks},
            "clocks_note": "wall: elapsed time; cpu: this process's CPU time (with one thread, the "
            "time it actually ran: robust to other processes taking the cores, not to their "
            "cache and memory traffic)",
            "load_avg_1min": os.getloadavg()[0],
            "arms": {},
        }  # fmt: skip
        for arm, arm_runs in runs.items():
            best = min(arm_runs, key=lambda r: r["seconds"])
            gflops = {
                "wall": flops / best["seconds"] / 1e9,
                "cpu": flops / min(r["cpu_seconds"] for r in arm_runs) / 1e9,
            }
            result["arms"][arm] = {
                "gflops": gflops,
                "ratio_to_peak": {c: gflops[c] / best_peak[c] for c in clocks},
                "ratio_to_torch_peak": {c: gflops[c] / peak["torch"][c] for c in clocks},
                "best": best,
                "seconds_all": [r["seconds"] for r in arm_runs],
                "cpu_seconds_all": [r["cpu_seconds"] for r in arm_runs],
            }
        main = result["arms"][arms[0]]  # the headline numbers: the first arm (fused by default)
        result["gflops"], result["ratio_to_peak"] = main["gflops"], main["ratio_to_peak"]
        if "fused" in runs and "reference" in runs:
            result["speedup"] = (
                result["arms"]["reference"]["best"]["seconds"]
                / result["arms"]["fused"]["best"]["seconds"]
            )
        return result
    finally:
        torch.set_num_threads(previous_threads)


def table(result: dict) -> str:
    peak = result["peak_gflops"]
    lines = [
        f"{result['dataset']} {result['model']} d={result['embedding_dim']} (D={result['entity_width']}), "
        f"batch {result['batch']}, {result['loss']}, {result['optimizer']}, {result['steps']} steps "
        f"(epoch: {result['full_epoch_steps']}), {result['threads']} thread(s)",
        f"load average {result['load_avg_1min']:.1f}; GFLOP/s by wall time / by CPU time",
        "matmul 4096^2 peak: "
        + ", ".join(f"{k} {v['wall']:.1f} / {v['cpu']:.1f}" for k, v in peak.items())
        + "; the three products alone: "
        + f"{result['products_gflops']['wall']:.1f} / {result['products_gflops']['cpu']:.1f}",
        "",
        "| arm | GFLOP/s wall / CPU | / peak wall / CPU | best s | forward+loss s | backward s "
        "| optimizer s | all runs s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, r in result["arms"].items():
        b, g, q = r["best"], r["gflops"], r["ratio_to_peak"]
        runs = ", ".join(f"{s:.2f}" for s in r["seconds_all"])
        lines.append(
            f"| {arm} | {g['wall']:.1f} / {g['cpu']:.1f} | {q['wall']:.0%} / {q['cpu']:.0%} | "
            f"{b['seconds']:.2f} | {b['forward_loss']:.2f} | {b['backward']:.2f} | "
            f"{b['optimizer']:.2f} | {runs} |"
        )
    if "speedup" in result:
        lines.append(f"\nfused vs reference: {result['speedup']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--model", default="complex")
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10, help="0: a full epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loss", default="crossentropy")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--optimizer", default="adagrad")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = measure(
        args.dataset, args.model, args.dim, args.batch, args.steps or None, args.threads,
        loss=args.loss, optimizer=args.optimizer, lr=args.lr,
        label_smoothing=args.label_smoothing, repeats=args.repeats, arms=tuple(args.arms),
    )  # fmt: skip
    result.update(
        torch=torch.__version__, python=platform.python_version(), cpu_count=os.cpu_count(),
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        command="python benchmarks/kvsall.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )  # fmt: skip
    print(table(result))
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
