"""Step time (forward + backward) and peak memory of LM-only against each knowledge-injection mode.

The issue's yardstick: batch 32, sequence 64, subgraphs of ~50 nodes from a real KG (FB15k-237, four
linked entities per text), all-MiniLM-L6-v2 on CPU, fusion after the top 2 of its 6 layers, a 2-layer
CompGCN with 64 channels (``--encoder rgcn`` for R-GCN):

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/fusion.py [--threads 1] [--rounds 5]

Timing: every variant is built in one process around the *same* LM weights and timed on the same batch,
round-robin (a fresh random order each round), so a change of machine load hits all variants alike; the
table gives the median *CPU time* of a step (``time.process_time``; with the default single thread it is
the work done, which other processes' load does not inflate the way it inflates wall-clock time), the
median wall-clock step and the median of the per-round wall-clock ratios to LM-only. Memory: each variant runs one step in its own child process, which resets the kernel's peak-RSS
mark after loading (``/proc/self/clear_refs``) and reports the step's peak resident memory and its
growth over the loaded model and batch (activations, gradients). Writes ``benchmarks/results/fusion.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "lm": [],
    "graph": ["graph"],
    "entity(gnn)": ["entity"],
    "entity(learned)": ["entity"],
    "relation": ["relation"],
    "memory": ["memory"],
    "dual_tower": ["dual_tower"],
    "graph+adaptive": ["graph", "adaptive"],
    "graph+entity+relation": ["graph", "entity", "relation"],
}
KWARGS = {
    "entity(gnn)": {"entity": {"source": "gnn"}},
    "entity(learned)": {"entity": {"source": "learned"}},
    "graph+entity+relation": {"entity": {"source": "gnn"}},
}


def _status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of this process from ``/proc/self/status``, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset the peak-RSS high-water mark (Linux >= 4.0), so it measures only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def make_batch(args: argparse.Namespace):
    """The benchmark batch and the KG (same seed -> same batch in every process)."""
    import torch

    from gnnlm.data import load_dataset
    from gnnlm.fusion import SubgraphSampler, TextGraphCollator, TextGraphExample
    from gnnlm.lm import load_tokenizer

    kg = load_dataset(args.dataset)
    names = [kg.entity_label(i) for i in range(kg.num_entities)]
    generator = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(args.batch_size):
        # Four linked entities per text, then filler words past the sequence length.
        ids = torch.randint(kg.num_entities, (4,), generator=generator).tolist()
        text, mentions = "", []
        for e in ids:
            mentions.append((len(text), len(text) + len(names[e]), e))
            text += names[e] + " is related to "
        text += " ".join(["and so on"] * args.seq_len)
        examples.append(TextGraphExample(text, mentions))
    sampler = SubgraphSampler(
        kg.homogeneous(add_inverse=True),
        num_hops=2,
        max_nodes=args.max_nodes,
        inverse_offset=kg.num_relations,
    )
    collate = TextGraphCollator(load_tokenizer(args.lm), sampler, max_length=args.seq_len)
    start = time.perf_counter()
    batch = collate(examples)
    return kg, batch, 1000 * (time.perf_counter() - start)


def make_model(variant: str, kg, lm, args: argparse.Namespace):
    """``(module, loss_fn)`` of one variant around the shared ``lm``."""
    from gnnlm.fusion import FusedLM, FusionConfig

    modes = VARIANTS[variant]
    config = FusionConfig(
        lm=args.lm,
        injection=modes,
        injection_kwargs=KWARGS.get(variant, {}),
        num_fused_layers=2,
        encoder=args.encoder,
        encoder_kwargs={"batch_norm": False} if args.encoder == "compgcn" else {"num_bases": 4},
        node_channels=64,
        num_entities=kg.num_entities,
        num_relations=2 * kg.num_relations,
    )
    model = FusedLM(config, lm=lm).train()

    def loss_fn(batch):
        out = model(batch)
        loss = out.pooled_output.square().mean()
        return loss + out.contrastive_loss if out.contrastive_loss is not None else loss

    return model, loss_fn


def memory_child(args: argparse.Namespace) -> dict:
    """One step of one variant in a fresh process: peak RSS and its growth over the loaded model."""
    import torch

    from gnnlm.lm import load_lm

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kg, batch, _ = make_batch(args)
    lm = load_lm(
        args.lm, attn_implementation="eager" if "relation" in VARIANTS[args.variant] else None
    )
    model, loss_fn = make_model(args.variant, kg, lm, args)
    del kg
    gc.collect()
    reset = _reset_peak_rss()
    base = _status_mb("VmRSS")
    loss_fn(batch).backward()
    peak = (
        _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "peak_rss_mb": round(peak, 1),
        "step_rss_growth_mb": round(peak - base, 1),
        "peak_is_step_only": reset,
    }


def timing(args: argparse.Namespace) -> tuple[dict, dict]:
    import torch

    from gnnlm.lm import load_lm

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kg, batch, collate_ms = make_batch(args)
    # Eager attention for everyone: relation injection needs an additive mask, and the LM-only
    # baseline must run the same kernels.
    lm = load_lm(args.lm, attn_implementation="eager")
    models = {v: make_model(v, kg, lm, args) for v in args.variants}
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    cpu_times: dict[str, list[float]] = {v: [] for v in args.variants}
    rng = random.Random(0)
    for round_ in range(args.warmup + args.rounds):
        order = list(args.variants)
        rng.shuffle(order)
        for variant in order:
            model, loss_fn = models[variant]
            start, cpu_start = time.perf_counter(), time.process_time()
            loss_fn(batch).backward()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            model.zero_grad(set_to_none=True)
            if round_ >= args.warmup:
                times[variant].append(elapsed)
                cpu_times[variant].append(cpu)
        print(f"round {round_ + 1}/{args.warmup + args.rounds} done", file=sys.stderr, flush=True)
    info = {
        "collate_ms": round(collate_ms, 1),
        "seq_len": int(batch.input_ids.size(1)),
        "nodes_per_subgraph": round(batch.graph.num_nodes / batch.batch_size, 1),
        "edges_per_subgraph": round(batch.graph.num_edges / batch.batch_size, 1),
        "parameters": {v: sum(p.numel() for p in m.parameters()) for v, (m, _) in models.items()},
    }
    return times, cpu_times, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--lm", default="minilm")
    parser.add_argument("--encoder", default="compgcn", help="compgcn (default) or rgcn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-nodes", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="1: CPU time = single-thread work")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant memory runs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fusion.json"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # memory child mode
    args = parser.parse_args()
    if "lm" not in args.variants:
        args.variants.insert(0, "lm")
    if args.variant:
        print(json.dumps(memory_child(args)))
        return

    load_before = os.getloadavg()
    times, cpu_times, info = timing(args)
    memory = {}
    for variant in [] if args.no_memory else args.variants:
        cmd = [sys.executable, __file__, "--variant", variant]
        for key in ("dataset", "lm", "encoder", "batch_size", "seq_len", "max_nodes", "threads"):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"memory run of {variant} failed:\n{result.stderr[-3000:]}")
        memory[variant] = json.loads(result.stdout.strip().splitlines()[-1])

    records = []
    cpu_lm = statistics.median(cpu_times["lm"])
    for variant in args.variants:
        ts, cpu = times[variant], cpu_times[variant]
        ratios = [t / base for t, base in zip(ts, times["lm"])]
        records.append(
            {
                "variant": variant,
                "injection": VARIANTS[variant],
                "cpu_ms": round(1000 * statistics.median(cpu), 1),
                "cpu_ratio_to_lm": round(statistics.median(cpu) / cpu_lm, 3),
                "cpu_ms_all": [round(1000 * t, 1) for t in cpu],
                "step_ms": round(1000 * statistics.median(ts), 1),
                "step_ms_all": [round(1000 * t, 1) for t in ts],
                "ratio_to_lm": round(statistics.median(ratios), 3),
                "parameters": info["parameters"][variant],
                **memory.get(variant, {}),
            }
        )
    print(
        f"\n{'variant':>24} | {'CPU ms':>7} | {'x LM':>5} | {'wall ms':>7} | {'x LM':>5} | "
        f"{'peak MB':>7} | {'step +MB':>8}"
    )
    print("-" * 84)
    for r in records:
        peak = f"{r['peak_rss_mb']:7.0f}" if "peak_rss_mb" in r else f"{'-':>7}"
        grow = f"{r['step_rss_growth_mb']:8.0f}" if "step_rss_growth_mb" in r else f"{'-':>8}"
        print(
            f"{r['variant']:>24} | {r['cpu_ms']:7.0f} | {r['cpu_ratio_to_lm']:5.2f} | {r['step_ms']:7.0f} | "
            f"{r['ratio_to_lm']:5.2f} | {peak} | {grow}"
        )
    print(
        f"\nseq {info['seq_len']}, {info['nodes_per_subgraph']} nodes / {info['edges_per_subgraph']} edges "
        f"per subgraph, collate {info['collate_ms']:.0f} ms"
    )
    payload = {
        "benchmark": "fusion step time (forward + backward) and peak memory",
        "command": "python benchmarks/fusion.py " + " ".join(sys.argv[1:]),
        "dataset": args.dataset,
        "lm": args.lm,
        "encoder": args.encoder,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        **info,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": (
            "shared machine: wall-clock timings are noisy (ratio_to_lm = median of per-round ratios); "
            "cpu_ms is the process CPU time of the step (median), less sensitive to other load"
        ),
        "records": records,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
