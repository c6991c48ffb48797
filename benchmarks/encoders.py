"""Speed and memory of our R-GCN / CompGCN against stock PyG, and their link-prediction quality.

    python benchmarks/encoders.py                       # everything (stock RGCNConv takes minutes)
    python benchmarks/encoders.py --skip-stock          # only our layers
    python benchmarks/encoders.py --only speed --steps 3
    python benchmarks/encoders.py --only mrr --datasets umls
    git worktree add /tmp/before <commit>               # then time that checkout's rows next to ours:
    python benchmarks/encoders.py --only speed --skip-stock --compare-tree /tmp/before

Speed: one training step = forward of a 2-layer encoder over the *full* FB15k-237 training graph with
inverse edges (14,541 nodes, 544,230 edges, 474 edge types), a loss on all outputs, backward and an Adam
step (torch's fused kernel, as the training engine builds it, for every row). Each configuration runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its
own; "peak RSS" includes the interpreter, torch and the loaded dataset (``base RSS`` is the same process
right before the model is built). Each row also reports CPU seconds per step (``process_time``, less
disturbed than wall time by other jobs on a shared machine). R-GCN runs use dim 64 with 30 bases (or 8
blocks), CompGCN dim 200, as in the papers' FB15k-237 settings.

Stock PyG runs time one step (no warm-up) under a timeout and an address-space cap, so a layer that would
exhaust the (shared) machine is recorded as out of memory instead; their worker also volunteers as the
kernel's first out-of-memory victim (``oom_score_adj``). The stock ``RGCNConv`` basis-30 row is the
reference of the speed-up column and needs about 10.5 GiB (it keeps one ``[N, d]`` product per relation
and layer for backward), so the default cap comes from the machine's memory: 60% of ``MemTotal``, at most
85% of ``MemAvailable`` at the start (printed; ``--mem-cap-gb`` overrides). When the reference row does
not run, the table says why and how to rerun just that row (``--configs``).

``--compare-tree DIR`` also times our rows with the ``gnnlm`` of another checkout (e.g. a ``git worktree``
of an earlier commit), each right before the same row of this checkout, and prints the ratio of their
fastest steps in CPU time (``vs tree``; on a loaded machine the wall-clock ratio mostly measures the
scheduler).

Quality: trains ``configs/<dataset>/rgcn.yaml`` and ``compgcn.yaml`` with the training engine, and the
same config with ``model.encoder=null`` (a plain embedding table: the same interaction, loop and budget)
for the KGE baseline; filtered test MRR / Hits.

Prints tables and writes ``benchmarks/results/encoders.json``. The thread count is set explicitly
(``--threads``); timings depend on what else runs on the machine, and the load average at the start is
recorded next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "encoders.json"

SPEED_CONFIGS = [
    # name, implementation, dim, options
    ("ours R-GCN basis-30", "ours-rgcn", 64, {"num_bases": 30}),
    ("ours R-GCN block-8", "ours-rgcn", 64, {"num_blocks": 8}),
    ("ours R-GCN basis-30 unfused", "ours-rgcn", 64, {"num_bases": 30, "fused": False}),
    ("ours CompGCN sub", "ours-compgcn", 200, {"composition": "sub"}),
    ("ours CompGCN mult", "ours-compgcn", 200, {"composition": "mult"}),
    ("ours CompGCN corr", "ours-compgcn", 200, {"composition": "corr"}),
    ("ours CompGCN mult unfused", "ours-compgcn", 200, {"composition": "mult", "fused": False}),
    ("PyG RGCNConv basis-30", "pyg-RGCNConv", 64, {"num_bases": 30}),
    ("PyG FastRGCNConv basis-30", "pyg-FastRGCNConv", 64, {"num_bases": 30}),
    ("PyG RGCNConv block-8", "pyg-RGCNConv", 64, {"num_blocks": 8}),
    ("PyG FastRGCNConv block-8", "pyg-FastRGCNConv", 64, {"num_blocks": 8}),
]


# -- speed: one configuration per subprocess ---------------------------------------------------------
def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _meminfo_gb() -> dict[str, float]:
    """``MemTotal`` / ``MemAvailable`` in GiB (empty off Linux)."""
    path = Path("/proc/meminfo")
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            out[key] = int(rest.split()[0]) / 2**20  # kB -> GiB
    return out


def default_mem_cap_gb() -> float | None:
    """60% of ``MemTotal``, at most 85% of ``MemAvailable`` (``None`` = no cap where unknown)."""
    mem = _meminfo_gb()
    if "MemTotal" not in mem:
        return None
    cap = 0.6 * mem["MemTotal"]
    if "MemAvailable" in mem:
        cap = min(cap, 0.85 * mem["MemAvailable"])
    return round(cap, 1)


def step_loss(impl: str, dim: int, options: dict, graph, device="cpu"):
    """``(loss, params)``: a 2-layer encoder (``ours-rgcn``, ``ours-compgcn`` or ``pyg-<Conv>``) over
    the whole ``graph`` from random ``[N, dim]`` inputs, the mean square of every output as the loss
    (a closure), and every parameter to optimise (the inputs and relation features included)."""
    import torch
    from torch import nn

    device = torch.device(device)
    edge_index, edge_type = graph.edge_index.to(device), graph.edge_type.to(device)
    num_nodes, num_rel = graph.num_nodes, graph.num_relations
    x = nn.Parameter((torch.randn(num_nodes, dim) * 0.1).to(device))
    params = [x]
    if impl == "ours-rgcn":
        from gnnlm.encoders import RGCN

        enc = RGCN(dim, dim, num_rel, num_layers=2, **options)

        def loss():
            return enc(x, edge_index, edge_type).x.square().mean()

    elif impl == "ours-compgcn":
        from gnnlm.encoders import CompGCN

        enc = CompGCN(dim, dim, num_layers=2, **options)
        relation = nn.Parameter((torch.randn(num_rel, dim) * 0.1).to(device))
        params.append(relation)

        def loss():
            out = enc(x, edge_index, edge_type, None, relation)
            return out.x.square().mean() + out.relation.square().mean()

    elif impl.startswith("pyg-"):
        import torch_geometric.nn as pyg_nn

        conv = getattr(pyg_nn, impl[4:])
        enc = nn.ModuleList([conv(dim, dim, num_rel, **options) for _ in range(2)])

        def loss():
            h = enc[1](torch.relu(enc[0](x, edge_index, edge_type)), edge_index, edge_type)
            return h.square().mean()

    else:
        raise ValueError(impl)
    enc.to(device)
    return loss, params + list(enc.parameters())


def speed_worker(spec: dict) -> dict:
    """Time ``spec["steps"]`` training steps after ``spec["warmup"]`` (runs inside a subprocess)."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    if spec["impl"].startswith("pyg-"):
        try:  # if the machine runs out of memory, the kernel kills this worker first
            Path("/proc/self/oom_score_adj").write_text("1000")
        except OSError:
            pass
    import gnnlm
    from gnnlm.data import load_dataset

    kg = load_dataset("fb15k-237")
    graph = kg.homogeneous(add_inverse=True)
    base_rss = _max_rss_mb()
    if spec.get("mem_cap_gb"):
        cap = _vm_size_bytes() + int(spec["mem_cap_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    dim, opts, impl = spec["dim"], dict(spec["options"]), spec["impl"]
    device = torch.device(spec.get("device", "cpu"))
    cuda = device.type == "cuda"
    loss_fn, params = step_loss(impl, dim, opts, graph, device)
    # fused=True: the one-kernel Adam that the training engine builds (make_optimizer), for every
    # row alike; torch's default loop costs ~6x more on CPU
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    times, cpu_times = [], []
    for _ in range(spec["warmup"] + spec["steps"]):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:  # kernels run asynchronously: the step ends when the device is done
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    measured, cpu = times[spec["warmup"] :], cpu_times[spec["warmup"] :]
    return {
        "gnnlm": str(Path(gnnlm.__file__).resolve().parents[1]),
        "step_seconds": sorted(measured)[len(measured) // 2],  # median
        "step_seconds_min": min(measured),  # least disturbed by other jobs
        "step_seconds_all": [round(t, 4) for t in times],
        "cpu_seconds": sorted(cpu)[len(cpu) // 2],  # median CPU time of this process per step
        "cpu_seconds_min": min(cpu),
        "first_step_seconds": times[0],
        "peak_rss_mb": _max_rss_mb(),
        "device": str(device),
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "base_rss_mb": base_rss,
        "num_parameters": sum(p.numel() for p in params),
    }


def run_speed(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("tree"):  # another checkout's gnnlm first on the path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [spec["tree"], env.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f} s", "wall_seconds": timeout}
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return {"status": "ok", "wall_seconds": wall, **json.loads(lines[-1])}
    err = proc.stderr.strip().splitlines()
    last = err[-1] if err else f"exit code {proc.returncode}"
    oom = "alloc" in proc.stderr.lower() or "memory" in proc.stderr.lower() or proc.returncode == -9
    status = f"out of memory (cap {spec.get('mem_cap_gb')} GiB)" if oom else "error"
    return {"status": status, "error": last[-300:], "wall_seconds": wall}


def speed_table(args) -> list[dict]:
    records = []
    for name, impl, dim, opts in SPEED_CONFIGS:
        stock = impl.startswith("pyg-")
        if (stock and args.skip_stock) or (args.configs and name not in args.configs):
            continue
        spec = {
            "impl": impl,
            "dim": dim,
            "options": opts,
            "threads": args.threads,
            "warmup": 0 if stock else 1,
            "steps": args.stock_steps if stock else args.steps,
            "mem_cap_gb": args.mem_cap_gb if stock else None,
            "device": args.device,
        }
        arms = [(name, spec)]
        if args.compare_tree and not stock:  # the other checkout first, then ours
            tree = {"tree": str(args.compare_tree), "tree_commit": _commit(args.compare_tree)}
            arms.insert(0, (f"{name} {BEFORE}", {**spec, **tree}))
        for label, arm in arms:
            print(f"[speed] {label} ...", file=sys.stderr, flush=True)
            result = run_speed(arm, args.stock_timeout if stock else args.timeout)
            records.append({"name": label, **arm, **result})
            print(f"[speed] {label}: {_fmt_speed(records[-1])}", file=sys.stderr, flush=True)
    _speedups(records)
    return records


def _commit(tree: Path) -> str | None:
    """The checked-out commit of ``tree`` (``None`` outside git)."""
    proc = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or None


#: suffix of the rows timed with ``--compare-tree``
BEFORE = "[compare-tree]"
REFERENCE = "PyG RGCNConv basis-30"


def _speedups(records: list[dict]) -> None:
    reference = next(
        (r["step_seconds"] for r in records if r["name"] == REFERENCE and r["status"] == "ok"),
        None,
    )
    ok = {r["name"]: r for r in records if r.get("status") == "ok"}
    for r in records:
        r.pop("speedup_vs_pyg_rgcnconv_basis30", None)
        r.pop("speedup_vs_compare_tree", None)
        if reference and r.get("status") == "ok":
            r["speedup_vs_pyg_rgcnconv_basis30"] = reference / r["step_seconds"]
        before = ok.get(f"{r['name']} {BEFORE}")
        if before is not None and r.get("status") == "ok":  # same row, other checkout, CPU time
            r["speedup_vs_compare_tree"] = before["cpu_seconds_min"] / r["cpu_seconds_min"]


def _fmt_speed(r: dict) -> str:
    if r.get("status") != "ok":
        return r.get("status", "?")
    return f"{r['step_seconds']:.3f} s/step, peak RSS {r['peak_rss_mb'] / 1024:.2f} GiB"


# -- quality ------------------------------------------------------------------------------------------
def run_quality(dataset: str, model: str, overrides: list[str]) -> dict:
    from gnnlm.train import TrainConfig, train

    encoder_model = "rgcn" if model == "plain" else model
    path = ROOT / "configs" / dataset / f"{encoder_model}.yaml"
    extra = ["model.encoder=null", "model.encoder_kwargs={}"] if model == "plain" else []
    config = TrainConfig.load(path, [*extra, *overrides])
    start = time.perf_counter()
    result = train(config, quiet=True)
    test = result.metrics["test"]
    return {
        "dataset": dataset,
        "model": model if model != "plain" else f"plain {config.model.interaction}",
        "interaction": config.model.interaction,
        "encoder": config.model.encoder,
        "config": str(path.relative_to(ROOT)),
        "overrides": [*extra, *overrides],
        "mrr": test["mrr"],
        "hits@1": test["hits@1"],
        "hits@10": test["hits@10"],
        "epochs": result.metrics.get("epochs"),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("speed", "mrr"), default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda[:i] for the speed rows (peak_cuda_mb recorded)"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps of our layers")
    parser.add_argument("--stock-steps", type=int, default=1, help="timed steps of stock PyG")
    parser.add_argument("--skip-stock", action="store_true", help="skip stock PyG layers")
    parser.add_argument(
        "--configs", nargs="+", default=None, help="rerun only these speed rows (by name), merged"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--stock-timeout", type=float, default=900.0)
    parser.add_argument(
        "--mem-cap-gb",
        type=float,
        default=None,
        help="address-space cap of the stock rows (default: 60%% of MemTotal, at most 85%% of "
        "MemAvailable)",
    )
    parser.add_argument(
        "--compare-tree",
        type=Path,
        default=None,
        help="also time our rows with the gnnlm of this checkout (e.g. a git worktree)",
    )
    parser.add_argument("--datasets", nargs="+", default=["umls", "kinship"])
    parser.add_argument("--models", nargs="+", default=["plain", "rgcn", "compgcn"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(speed_worker(json.loads(args.worker))))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("GNNLM_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
        "note": "shared machine: other jobs ran at the same time; timings are noisy",
    }
    if args.only in (None, "speed"):
        # step times are seconds on this machine today: record how fast its GEMM is, to read them by
        from common import matmul_peak

        peak = matmul_peak()
        report["machine"]["matmul_4096_gflops"] = peak
        print(
            f"threads {args.threads}, load average {os.getloadavg()}, 4096^2 matmul "
            f"{peak['torch']['cpu']:.0f} GFLOP/s (CPU time)",
            file=sys.stderr,
        )
        if args.mem_cap_gb is None:
            args.mem_cap_gb = default_mem_cap_gb()
            mem = _meminfo_gb()
            print(
                f"stock rows: address-space cap {args.mem_cap_gb} GiB (60% of MemTotal "
                f"{mem.get('MemTotal', 0):.1f} GiB, at most 85% of MemAvailable "
                f"{mem.get('MemAvailable', 0):.1f} GiB; --mem-cap-gb overrides)",
                file=sys.stderr,
            )
        records = speed_table(args)
        if args.configs:  # merge the rerun rows into the earlier run's rows
            fresh = {r["name"]: r for r in records}
            records = [fresh.pop(r["name"], r) for r in report.get("speed", [])] + list(
                fresh.values()
            )
            _speedups(records)
        report["speed"] = records
        print("\nFull FB15k-237 graph (544,230 edges with inverses), 2 layers, one training step")
        compare = any("speedup_vs_compare_tree" in r for r in records)
        print(
            f"{'configuration':46s} {'dim':>4s} {'s/step':>8s} {'min':>7s} {'cpu s':>7s} "
            f"{'peak RSS GiB':>13s} {'speedup':>8s}" + (f" {'vs tree':>8s}" if compare else "")
        )
        for r in records:
            ok = r["status"] == "ok"
            step = (
                f"{r['step_seconds']:8.3f} {r['step_seconds_min']:7.3f} "
                + (f"{r['cpu_seconds_min']:7.3f}" if "cpu_seconds_min" in r else " " * 7)
                if ok
                else f"{r['status'][:24]:>24s}"
            )
            rss = f"{r['peak_rss_mb'] / 1024:13.2f}" if ok else " " * 13
            speedup = r.get("speedup_vs_pyg_rgcnconv_basis30")
            sp = f"{speedup:7.0f}x" if speedup else " " * 8
            vs = r.get("speedup_vs_compare_tree")
            tail = (f" {vs:7.2f}x" if vs else "") if compare else ""
            print(f"{r['name']:46s} {r['dim']:4d} {step} {rss} {sp}{tail}")
        reference = next((r for r in records if r["name"] == REFERENCE), None)
        if reference is None or reference["status"] != "ok":
            why = "was skipped" if reference is None else f"failed: {reference['status']}"
            print(
                f"(no speed-up column: the reference row {REFERENCE!r} {why}; it needs about "
                f"10.5 GiB: rerun just that row with --configs {REFERENCE!r} --mem-cap-gb 12)"
            )
        else:
            print(
                f"speed-up: {REFERENCE} s/step over the row's s/step (the reference ran "
                f"{reference['steps']} step under a {reference['mem_cap_gb']} GiB cap)"
            )
    if args.only in (None, "mrr"):
        rows = []
        for dataset in args.datasets:
            for model in args.models:
                print(f"[mrr] {dataset} {model} ...", file=sys.stderr, flush=True)
                rows.append(run_quality(dataset, model, args.overrides))
        report["quality"] = rows
        print("\nFiltered test link prediction (same loop, dimension and epochs per dataset)")
        print(f"{'dataset':9s} {'model':18s} {'MRR':>6s} {'H@1':>6s} {'H@10':>6s} {'seconds':>8s}")
        for r in rows:
            print(
                f"{r['dataset']:9s} {r['model']:18s} {r['mrr']:6.3f} {r['hits@1']:6.3f} "
                f"{r['hits@10']:6.3f} {r['seconds']:8.0f}"
            )
    from common import write_json

    write_json(args.out, report)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
