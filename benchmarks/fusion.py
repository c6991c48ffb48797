"""Step time (forward + backward) and peak memory of LM-only against each knowledge-injection mode.

The issue's yardstick: batch 32, sequence 64, subgraphs of ~50 nodes from a real KG, all-MiniLM-L6-v2 on
CPU, fusion after the top 2 of its 6 layers, a 2-layer CompGCN with 64 channels (``--encoder rgcn`` for R-GCN). Every variant runs in its own child
process (so its peak resident memory is its own), on the same batch, with the same thread count:

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/fusion.py [--threads 2] [--steps 3]

Prints a table (ms per step, ratio to LM-only, peak RSS and the step's RSS growth over the loaded model)
and writes ``benchmarks/results/fusion.json``. The machine's load average is recorded with the run: on a
shared machine timings are noisy, and the ratio is the number to read.
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


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(args: argparse.Namespace) -> dict:
    """Measure one variant (runs in a fresh process)."""
    import torch

    from gnnlm.data import load_dataset
    from gnnlm.fusion import (
        FusedLM,
        FusionConfig,
        SubgraphSampler,
        TextGraphCollator,
        TextGraphExample,
    )
    from gnnlm.lm import load_lm, load_tokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kg = load_dataset(args.dataset)
    names = [kg.entity_label(i) for i in range(kg.num_entities)]
    generator = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(args.batch_size):
        # Four linked entities per text, padded with filler words past the sequence length.
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
    collate_ms = 1000 * (time.perf_counter() - start)
    modes = VARIANTS[args.variant]
    lm = load_lm(args.lm, attn_implementation="eager" if "relation" in modes else None)
    config = FusionConfig(
        lm=args.lm,
        injection=modes or ["graph"],
        injection_kwargs=KWARGS.get(args.variant, {}),
        num_fused_layers=2,
        encoder=args.encoder,
        encoder_kwargs={"batch_norm": False} if args.encoder == "compgcn" else {"num_bases": 4},
        node_channels=64,
        num_entities=kg.num_entities,
        num_relations=2 * kg.num_relations,
    )
    if modes:
        model = FusedLM(config, lm=lm).train()

        def loss_fn():
            out = model(batch)
            loss = out.pooled_output.square().mean()
            return loss + out.contrastive_loss if out.contrastive_loss is not None else loss
    else:
        model = lm.train()

        def loss_fn():
            return (
                lm(batch.input_ids, batch.attention_mask, batch.token_type_ids)
                .mean(1)
                .square()
                .mean()
            )

    base_rss = _rss_mb()
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        loss = loss_fn()
        loss.backward()
        elapsed = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        if step >= args.warmup:
            times.append(elapsed)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "variant": args.variant,
        "injection": modes,
        "step_ms": 1000 * sorted(times)[len(times) // 2],
        "step_ms_all": [round(1000 * t, 1) for t in times],
        "peak_rss_mb": round(peak_rss, 1),
        "step_rss_growth_mb": round(peak_rss - base_rss, 1),
        "collate_ms": round(collate_ms, 1),
        "seq_len": int(batch.input_ids.size(1)),
        "nodes_per_subgraph": round(batch.graph.num_nodes / batch.batch_size, 1),
        "edges_per_subgraph": round(batch.graph.num_edges / batch.batch_size, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--lm", default="minilm")
    parser.add_argument("--encoder", default="compgcn", help="compgcn (default) or rgcn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-nodes", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fusion.json"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(child(args)))
        return

    records = []
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--variant", variant]
        for key in (
            "dataset",
            "lm",
            "encoder",
            "batch_size",
            "seq_len",
            "max_nodes",
            "threads",
            "warmup",
            "steps",
        ):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
        load = os.getloadavg()[0]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"variant {variant} failed:\n{result.stderr[-3000:]}")
        record = json.loads(result.stdout.strip().splitlines()[-1])
        record["load_average_before"] = round(load, 2)
        records.append(record)
        print(
            f"{variant:>24}: {record['step_ms']:8.0f} ms/step  peak {record['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    lm_ms = next((r["step_ms"] for r in records if r["variant"] == "lm"), None)
    print()
    print(
        f"{'variant':>24} | {'ms/step':>8} | {'x LM':>5} | {'peak MB':>8} | {'step +MB':>8} | nodes/ex"
    )
    print("-" * 80)
    for r in records:
        r["ratio_to_lm"] = round(r["step_ms"] / lm_ms, 3) if lm_ms else None
        ratio = f"{r['ratio_to_lm']:.2f}" if lm_ms else "-"
        print(
            f"{r['variant']:>24} | {r['step_ms']:8.0f} | {ratio:>5} | {r['peak_rss_mb']:8.0f} | "
            f"{r['step_rss_growth_mb']:8.0f} | {r['nodes_per_subgraph']}"
        )
    payload = {
        "benchmark": "fusion step time (forward + backward) and peak memory",
        "dataset": args.dataset,
        "lm": args.lm,
        "encoder": args.encoder,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "max_nodes": args.max_nodes,
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "note": "shared machine: timings are noisy; load_average_before is recorded per variant",
        "records": records,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
