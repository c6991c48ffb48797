"""Decoder LMs with a KG (issue 16): the cost of each graph path, and the three knowledge styles on
MetaQA answered by generation.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/decoder.py [--seeds 0 1 2] \
        [--lm tiny-gpt2] [--lm-kwargs '{"hidden_size": 64, ...}'] [--device cpu|cuda] \
        [--max-train 2400] [--max-test 400] [--styles text triples prompt] [--lora-r 0] \
        [--cost-only] [--out runs/decoder]

1. **Cost**: seconds of one training step (forward + backward, median of ``--repeats``) and the
   activation memory saved for backward (the sum of the tensors autograd keeps, a device-independent
   proxy of training memory; on CUDA also the peak allocated memory) of the decoder alone and with each
   graph path: ``xattn`` (gated cross-attention to the subgraph's nodes after every layer), ``prompt``
   (graph soft prompts), both; on a batch of real MetaQA prompts with their 64-node subgraphs, for the
   small decoder of the accuracy runs and a 4x wider one.
2. **Accuracy**: ``task: generative_qa`` (``configs/tasks/generative_qa.yaml``) with the arms
   ``text`` (question only), ``triples`` (verbalised subgraph in the prompt) and ``prompt`` (graph soft
   prompts), each trained by the engine with every seed, at a small budget: 1-hop questions,
   ``--max-train`` training and ``--max-test`` test questions, one epoch, 2-hop subgraphs of at most 64
   nodes around the topic, generation constrained to the names of the question's subgraph
   (``data.constrain: subgraph``; the chance row is the expected hits@1 of a uniform pick among those
   names: many 1-hop questions have several answers among few neighbours, so chance is far from 0). No decoder weights can be downloaded here: the decoder is a
   GPT-2 built from its config (``--lm tiny-gpt2``, sizes ``--lm-kwargs``) and trained on the task's
   text only, an honest stand-in, not a pretrained LLM. ``benchmarks/decoder_gpu.sh`` runs the same with
   a 0.5-1B checkpoint on a GPU.

Writes ``benchmarks/results/decoder.{json,md}`` (``--tag`` appends to the name).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STYLES = ("text", "triples", "prompt")
COST_ARMS = {
    "plain": [],
    "xattn": ["xattn"],
    "prompt": ["prompt"],
    "xattn+prompt": ["xattn", "prompt"],
}


def small_overrides(args: argparse.Namespace) -> dict:
    """The small budget of the accuracy runs (dotted config keys)."""
    values = {
        "model.lm": args.lm,
        "model.lm_kwargs": json.loads(args.lm_kwargs) if args.lm.startswith("tiny-") else {},
        "model.num_prompt_tokens": 4,
        "data.hops": [1],
        "data.max_train": args.max_train,
        "data.max_valid": args.max_valid,
        "data.max_test": args.max_test,
        "data.num_hops": 2,
        "data.max_nodes": 64,
        "data.max_length": 80,
        "data.triple_budget": 48,
        "data.max_answer_length": 12,
        "data.constrain": "subgraph",
        "training.epochs": args.epochs,
        "training.batch_size": 32,
        "training.lr": args.lr,
        "training.device": args.device,
        "training.log_steps": 10,
        "evaluation.frequency": 0,
        "evaluation.batch_size": 64,
        "seeds": list(args.seeds),
    }
    if args.lora_r:
        values["finetuning.lora.r"] = args.lora_r
    if not args.lm.startswith("tiny-"):  # a pretrained decoder: a gentler rate for its own weights
        lm_lr = 2e-4 if args.lora_r else 2e-5  # (the lm group holds the adapters under LoRA)
        values["training.param_groups"] = {"lm": {"lr": lm_lr}, "gates": {"lr": 2e-2}}
    return values


def load_task(style: str, args: argparse.Namespace, kg, shared: dict | None = None):
    from gnnlm.config import apply_overrides
    from gnnlm.tasks.generative_qa import GenerativeQATask
    from gnnlm.tasks.loading import load_config

    config = load_config(ROOT / "configs" / "tasks" / "generative_qa.yaml")
    config = apply_overrides(config, {**small_overrides(args), "model.style": style})
    config.variants = {}
    task = GenerativeQATask(config, data=kg)
    task.validate()
    task.setup()
    if shared:  # the same tokenizer: share the tokenised names and the sampler's memo
        task._name_ids = shared.get("name_ids")
        task.sampler.memo.update(shared.get("memo", {}))
    return task


# -- 1. cost ---------------------------------------------------------------------------------------
def saved_bytes(model, batch) -> tuple[object, int]:
    """``(output, bytes of tensors saved for backward)`` of a training forward of ``model``."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(batch, logits="loss")
    return out, total


def cost(task, args: argparse.Namespace) -> list[dict]:
    from gnnlm.fusion import DecoderFusionConfig, GraphDecoder

    device = torch.device(args.device)
    kg = task.kg
    questions = [task.questions["train"][i] for i in task.train_indices[: args.cost_batch]]
    batch = task.collate([task.example(q, task.gold_names(q)[0]) for q in questions]).to(device)
    sizes = [json.loads(args.lm_kwargs)]
    if args.lm.startswith("tiny-"):
        wide = dict(sizes[0])
        wide["hidden_size"] = 4 * wide.get("hidden_size", 64)
        wide["num_layers"] = 2 * wide.get("num_layers", 2)
        wide["num_heads"] = 2 * wide.get("num_heads", 2)
        sizes.append(wide)
    rows = []
    for lm_kwargs in sizes:
        for arm, knowledge in COST_ARMS.items():
            config = DecoderFusionConfig(
                lm=args.lm, lm_kwargs=lm_kwargs if args.lm.startswith("tiny-") else {},
                knowledge=knowledge, num_prompt_tokens=4, node_channels=64,
                num_entities=kg.num_entities, num_relations=2 * kg.num_relations,
            )  # fmt: skip
            model = GraphDecoder(config).to(device).train()
            times, saved = [], 0
            for _ in range(args.repeats + 1):  # the first is a warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                out, saved = saved_bytes(model, batch)
                out.loss.backward()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
                model.zero_grad(set_to_none=True)
            row = {
                "lm": args.lm, "lm_kwargs": lm_kwargs, "arm": arm,
                "hidden": model.lm.hidden_size, "layers": model.lm.num_layers,
                "params": sum(p.numel() for p in model.parameters()),
                "graph_params": sum(p.numel() for n, p in model.named_parameters()
                                    if not n.startswith("lm.")),
                "step_seconds": statistics.median(times[1:]),
                "saved_mb": saved / 2**20,
                "peak_mb": torch.cuda.max_memory_allocated() / 2**20
                if device.type == "cuda" else None,
            }  # fmt: skip
            rows.append(row)
            print(f"cost {arm:>13} hidden={row['hidden']:>4}: {row['step_seconds']:.3f} s/step, "
                  f"{row['saved_mb']:.1f} MB saved", flush=True)  # fmt: skip
    return rows


# -- 2. accuracy -----------------------------------------------------------------------------------
def chance(task) -> dict:
    """Expected test hits@1 of a uniform pick among each question's subgraph names (topic excluded):
    ``|gold & candidates| / |candidates|``, a topic outside the KB a miss."""
    values = []
    for q in task.questions["test"]:
        if q.topic is None:
            values.append(0.0)
            continue
        names = {task.kg.entity_label(n) for n in task.sampler.node_set([q.topic]).tolist()
                 if n != q.topic}  # fmt: skip
        gold = set(q.question.answers) | set(task.gold_names(q))
        values.append(len(names & gold) / len(names) if names else 0.0)
    return {"hits@1": statistics.fmean(values), "n": len(values)}


def accuracy(kg, args: argparse.Namespace) -> dict:
    from gnnlm.train import Trainer
    from gnnlm.train.variants import paired_bootstrap, summarize

    arms, shared, record = {}, {}, {}
    out_root = Path(args.out)
    for style in args.styles:
        task = load_task(style, args, kg, shared)
        if not shared:
            shared["name_ids"] = task.name_ids()
            record["chance"] = chance(task)
            record["counts"] = task.counts["test"]
            record["num_train"] = task.num_train_examples()
        shared["memo"] = task.sampler.memo
        runs = {}
        for seed in args.seeds:
            task.config.seed = seed
            start = time.perf_counter()
            result = Trainer(task, run_dir=out_root / style / f"seed-{seed}", quiet=True).fit(
                overwrite=True
            )
            seconds = time.perf_counter() - start
            metrics = result.metrics
            runs[seed] = {"test": metrics["test"], "seconds": seconds}
            print(f"{style} seed {seed}: test hits@1 {metrics['test']['hits@1']:.4f} "
                  f"({seconds:.0f} s)", flush=True)  # fmt: skip
        arms[style] = runs
    summary = {}
    for style, runs in arms.items():
        seeds = list(runs)
        summary[style] = {
            "hits@1": summarize([runs[s]["test"]["hits@1"] for s in seeds]),
            "loss": summarize([runs[s]["test"]["loss"] for s in seeds]),
            "not_a_name": [runs[s]["test"]["not_a_name"] for s in seeds],
            "seconds": [runs[s]["seconds"] for s in seeds],
            "vs_text": None if style == "text" else paired_bootstrap(
                [runs[s]["test"]["correct"] for s in seeds],
                [arms["text"][s]["test"]["correct"] for s in seeds],
            ),
        }  # fmt: skip
    record["arms"] = summary
    return record


def markdown(record: dict) -> str:
    lines = [f"### Cost of the graph paths ({record['device']}, batch of {record['cost_batch']} "
             "MetaQA prompts + answers, 64-node subgraphs)", "",
             "| decoder | arm | params | graph params | s / training step | MB saved for backward |"
             + (" peak MB |" if record["device"] == "cuda" else ""),
             "|---|---|---|---|---|---|" + ("---|" if record["device"] == "cuda" else "")]  # fmt: skip
    for r in record["cost"]:
        name = f"{r['lm']} {r['hidden']}x{r['layers']}"
        peak = f" {r['peak_mb']:.0f} |" if r["peak_mb"] is not None else ""
        lines.append(f"| {name} | {r['arm']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['graph_params'] / 1e6:.2f}M | {r['step_seconds']:.3f} | "
                     f"{r['saved_mb']:.1f} |{peak}")  # fmt: skip
    acc = record.get("accuracy")
    if acc:
        c = record["settings"]
        lines += ["", f"### MetaQA 1-hop by generation (decoder {c['model.lm']} "
                  f"{c['model.lm_kwargs'] or ''} trained from its config on the task's text; "
                  f"{acc['num_train']} training questions, {c['training.epochs']} epoch(s), "
                  f"{acc['chance']['n']} test questions; answers constrained to the subgraph's "
                  f"names; seeds {record['seeds']})", "",
                  "| arm | test hits@1 | vs text (95% paired bootstrap CI) | test loss | "
                  "not a name | train+eval s/run |", "|---|---|---|---|---|---|"]  # fmt: skip
        lines.append(f"| chance (uniform over the subgraph's names) | "
                     f"{acc['chance']['hits@1']:.4f} | — | — | — | — |")  # fmt: skip
        for arm, a in acc["arms"].items():
            d = a["vs_text"]
            ci = "—" if d is None else f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
            h, lo = a["hits@1"], a["loss"]
            lines.append(f"| {arm} | {h['mean']:.4f} ± {h['std']:.4f} | {ci} | "
                         f"{lo['mean']:.3f} ± {lo['std']:.3f} | {sum(a['not_a_name'])} | "
                         f"{statistics.fmean(a['seconds']):.0f} |")  # fmt: skip
        lines += ["", f"Test counts: {json.dumps(acc['counts'])}."]
    lines += ["", f"Wall clock: {record['wall_seconds'] / 60:.1f} min on {record['machine']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--styles", nargs="+", default=list(STYLES), choices=[*STYLES, "inject"])
    parser.add_argument("--lm", default="tiny-gpt2")
    parser.add_argument(
        "--lm-kwargs", default='{"hidden_size": 64, "num_layers": 2, "num_heads": 2, '
        '"max_positions": 128}', help="JSON sizes of a tiny decoder",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-train", type=int, default=2400)
    parser.add_argument("--max-valid", type=int, default=64)
    parser.add_argument("--max-test", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lora-r", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cost-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cost-only", action="store_true")
    parser.add_argument("--out", default="runs/decoder")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    if not os.environ.get("GNNLM_DATA_DIR"):
        print("benchmarks/decoder.py: set GNNLM_DATA_DIR (MetaQA)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    from gnnlm.data import load_dataset

    start = time.perf_counter()
    kg = load_dataset("metaqa")
    record: dict = {
        "device": args.device, "seeds": args.seeds, "cost_batch": args.cost_batch,
        "settings": small_overrides(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
    }  # fmt: skip
    task = load_task("text", args, kg)
    record["cost"] = cost(task, args)
    if not args.cost_only:
        record["accuracy"] = accuracy(kg, args)
    record["wall_seconds"] = time.perf_counter() - start
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "decoder" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
