"""Does knowledge injection help? An ablation of triple classification with every arm held equal.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/injection.py [--lm minilm] [--seeds 0 1 2] \
        [--num-train 1000] [--epochs 1] [--threads 2] [--kge-epochs 20] [--quick]
    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/injection.py --task metaqa [...]

``--task metaqa`` runs the same ablation on MetaQA question answering instead
(``benchmarks/injection_metaqa.py``, which documents its own flags).

One task (triple classification on WN18RR, matched negatives: connected in their subgraph exactly when
their positive is, so the connectivity rule scores 0.5; each triple's own edge and its symmetric twin
left out of its subgraph), one head for every arm (the same
``Linear(hidden + node_channels, 1)``, initialised from the seed alone; an input an arm does not read is
zeros), the same seeds, data, data order and budget. The arms are variants of one config, run by the
engine (``gnnlm.train.variants``):

* ``lm``: the LM alone (no GNN; the head reads the text);
* ``gnn``: the GNN alone (the head reads the linked entities' GNN states; injection held at zero);
* ``late``: late fusion only (the head reads text and graph; injection held at zero);
* ``inject``: injection only (graph injection; the head reads the text only);
* ``both``: injection and late fusion;
* ``both_text``: ``both`` with the GNN's input node states from the text (``node_features: text``, the
  LM's pooled encoding of each entity's name and description) instead of a learned random table: the
  measurement behind the default of ``node_features``;
* ``inject_text``: ``inject`` with text node features;
* ``inject_closed``: ``inject`` with the earlier initialisation (zero gates, ``gate_init: closed``)
  instead of zero output projections behind open gates.

Beside them, two baselines on the same test examples: the connectivity rule with no parameters ("true
iff head and tail are connected in the example's subgraph") and a KGE model trained with a shipped
config (``configs/wn18rr/<model>.yaml``, ``--kge-epochs``) that calls a triple true when its score
passes a threshold chosen per relation on the validation examples (Socher et al., 2013).

Reported per arm: test accuracy mean ± sample std over seeds, and a paired bootstrap 95% confidence
interval of its difference to ``lm`` (the test examples are the same for every arm of a seed: resample
examples within each seed, average the per-seed differences); the gates' values over training as a plot
(``injection_gates.png``, needs matplotlib); wall-clock per run. Writes ``benchmarks/results/injection.json``
and ``injection.md``; the runs themselves go to ``--out`` (default ``runs/injection-ablation``).
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

from gnnlm.train.variants import paired_bootstrap

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

ARMS = {
    "lm": {"model.injection": [], "model.head_inputs": ["text"]},
    "gnn": {"model.injection": ["graph"], "model.freeze_injection": True, "model.head_inputs": ["graph"]},
    "late": {"model.injection": ["graph"], "model.freeze_injection": True, "model.head_inputs": ["text", "graph"]},
    "inject": {"model.injection": ["graph"], "model.head_inputs": ["text"]},
    "both": {"model.injection": ["graph"], "model.head_inputs": ["text", "graph"]},
    "both_text": {"model.injection": ["graph"], "model.head_inputs": ["text", "graph"],
                  "model.node_features": "text"},
    "inject_text": {"model.injection": ["graph"], "model.head_inputs": ["text"],
                    "model.node_features": "text"},
    "inject_closed": {"model.injection": ["graph"], "model.head_inputs": ["text"],
                      "model.gate_init": "closed"},
}  # fmt: skip
#: further paired comparisons (arm, against).
PAIRS = [("both", "late"), ("both_text", "both"), ("inject", "inject_closed"),
         ("inject_text", "inject")]  # fmt: skip


def _mean_std(values: list[float]) -> dict:
    """``{"mean", "std"}`` (sample std over seeds) from the engine's comparison summary."""
    from gnnlm.train.variants import summarize

    summary = summarize(values)
    return {"mean": summary["mean"], "std": summary["std"]}


def kge_baseline(args: argparse.Namespace, config, quiet: bool) -> dict:
    """A shipped KGE config trained on the same graph; per-relation thresholds on valid examples."""
    from gnnlm.tasks.triple_classification import TripleClassificationTask
    from gnnlm.train import TrainConfig, Trainer

    path = ROOT / "configs" / args.dataset / f"{args.kge}.yaml"
    kge_config = TrainConfig.load(
        path, [f"training.epochs={args.kge_epochs}", "evaluation.frequency=0"]
    )
    run = args.out / "kge"
    done = run / "metrics.json"
    if args.resume and done.is_file() and TrainConfig.load(run / "config.yaml") == kge_config:
        from gnnlm.data import load_dataset
        from gnnlm.train.pretrained import from_pretrained

        kg = load_dataset(kge_config.dataset, **kge_config.dataset_kwargs)
        model, metrics = from_pretrained(run / "model", kg=kg).eval(), json.loads(done.read_text())
        seconds = metrics["train_seconds"]
    else:  # trained into --out/kge, so that --resume reuses it
        start = time.perf_counter()
        result = Trainer(kge_config, run_dir=run, quiet=quiet).fit(overwrite=True)
        seconds = time.perf_counter() - start
        model, kg, metrics = result.model.eval(), result.kg, result.metrics
    out = {"config": str(path.relative_to(ROOT)), "epochs": args.kge_epochs, "train_seconds": seconds,
           "link_prediction_test_mrr": metrics["test"]["mrr"], "seeds": {}}  # fmt: skip
    for seed in config.seeds or [config.seed]:
        task = TripleClassificationTask(config.variant(None, seed), data=kg)
        task.setup()

        rel_v, score_v, label_v = _scored(model, task.examples["valid"])
        rel_t, score_t, label_t = _scored(model, task.examples["test"])
        threshold = {}
        for r in rel_t.unique().tolist():
            mask = rel_v == r
            pool_s, pool_l = (
                (score_v[mask], label_v[mask]) if mask.sum() >= 4 else (score_v, label_v)
            )
            candidates = pool_s.sort().values
            accuracy = [((pool_s >= c).float() == pool_l).float().mean() for c in candidates]
            threshold[r] = float(candidates[int(torch.stack(accuracy).argmax())])
        guess = torch.tensor(
            [score >= threshold[r] for r, score in zip(rel_t.tolist(), score_t.tolist())]
        )
        correct = (guess.float() == label_t).int().tolist()
        out["seeds"][str(seed)] = {"accuracy": sum(correct) / len(correct), "correct": correct}
    return out


def _scored(model, examples: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(relations, KGE scores, labels)`` of triple-classification examples."""
    triples = torch.stack([ex.exclude[0] for ex in examples])
    labels = torch.tensor([ex.label for ex in examples])
    with torch.no_grad():
        scores = model.score_hrt(triples).view(-1)
    return triples[:, 1], scores, labels


def windowed(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """``(step, mean of key over the steps since the previous logged row)`` from the engine's rows,
    whose ``train_*`` values are running means since the epoch began (they restart each epoch)."""
    points, start, previous = [], 0, None
    for row in rows:
        if key not in row:
            continue
        n = row["step"] - start  # steps of this epoch so far
        if previous is None:
            points.append((row["step"], row[key]))
        else:
            m, k = previous
            if n > k:
                points.append((row["step"], (n * row[key] - k * m) / (n - k)))
        previous = (row[key], n)
        if "loss" in row:  # the epoch's last row: the next epoch's means restart
            start, previous = row["step"], None
    return points


def gate_plot(runs: dict, path: Path) -> bool:
    """Gate values and output-projection norms over training, one line per (arm, seed, layer)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for (arm, seed), rows in sorted(runs.items()):
        for prefix, ax in (("train_gate_", axes[0]), ("train_output_norm_", axes[1])):
            for key in sorted({k for r in rows for k in r if k.startswith(prefix)}):
                points = windowed(rows, key)
                if points:
                    steps, values = zip(*points)
                    label = f"{arm} s{seed} {key[len(prefix) :]}"
                    ax.plot(steps, values, label=label, lw=1)
    axes[0].set_ylabel("tanh(gate)")
    axes[0].set_title("Injection gates (mean over each logging window)")
    axes[1].set_ylabel("sum of output-projection norms")
    axes[1].set_title("Injection output projections")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> int:
    task = argparse.ArgumentParser(add_help=False)
    task.add_argument("--task", choices=("triple_classification", "metaqa"))
    known, rest = task.parse_known_args(argv)
    if known.task == "metaqa":  # the same ablation on MetaQA: its own arms and baseline
        from injection_metaqa import main as metaqa_main

        return metaqa_main(rest)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--task",
        choices=("triple_classification", "metaqa"),
        default="triple_classification",
        help="metaqa: benchmarks/injection_metaqa.py (its own flags)",
    )
    parser.add_argument("--dataset", default="wn18rr")
    parser.add_argument("--lm", default="minilm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--num-train", type=int, default=1000, help="training positives (as many negatives)"
    )
    parser.add_argument("--num-eval", type=int, default=250, help="valid and test positives each")
    parser.add_argument(
        "--negatives", default="matched", choices=("matched", "neighbourhood", "uniform")
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--log-steps", type=int, default=5)
    parser.add_argument("--kge", default="complex")
    parser.add_argument("--kge-epochs", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "injection-ablation")
    parser.add_argument("--results", type=Path, default=RESULTS / "injection.json")
    parser.add_argument("--resume", action="store_true", help="keep finished runs in --out")
    parser.add_argument(
        "--quick", action="store_true", help="tiny-bert, 32 positives, 2 seeds: a smoke run"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.lm, args.num_train, args.num_eval, args.seeds, args.kge_epochs = (
            "tiny-bert",
            32,
            16,
            [0, 1],
            1,
        )
    torch.set_num_threads(args.threads)
    from gnnlm.config import apply_overrides
    from gnnlm.tasks.triple_classification import TripleClassificationConfig
    from gnnlm.train.variants import run_variants

    overrides = {
        "dataset": args.dataset, "model.lm": args.lm, "data.num_train": args.num_train,
        "data.num_valid": args.num_eval, "data.num_test": args.num_eval, "data.negatives": args.negatives,
        "training.epochs": args.epochs, "training.log_steps": args.log_steps,
        "training.checkpoint_frequency": 0, "evaluation.frequency": 0, "variants": ARMS, "seeds": args.seeds,
    }  # fmt: skip
    config = apply_overrides(TripleClassificationConfig(), overrides)
    config = apply_overrides(config, args.set)
    start = time.perf_counter()
    run_variants(config, args.out, quiet=args.quiet, resume=args.resume, overwrite=not args.resume)
    arms_seconds = time.perf_counter() - start
    runs, logs = {}, {}
    for arm in ARMS:
        for seed in args.seeds:
            folder = args.out / "runs" / arm / f"seed-{seed}"
            runs[arm, seed] = json.loads((folder / "metrics.json").read_text())
            logs[arm, seed] = [
                json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()
            ]
    kge = kge_baseline(args, config, args.quiet)
    record = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        },  # fmt: skip
        "config": config.to_dict(),
        "arms": {},
        "baselines": {},
        "wall_seconds": {"arms": arms_seconds},
    }
    test = {arm: [runs[arm, s]["test"]["correct"] for s in args.seeds] for arm in ARMS}
    for arm in ARMS:
        acc = [runs[arm, s]["test"]["accuracy"] for s in args.seeds]
        record["arms"][arm] = {
            "overrides": ARMS[arm],
            "test_accuracy": acc,
            **_mean_std(acc),
            "valid_accuracy": [runs[arm, s]["valid"]["accuracy"] for s in args.seeds],
            "vs_lm": paired_bootstrap(test[arm], test["lm"], rounds=args.bootstrap)
            if arm != "lm"
            else None,
            "train_seconds": [runs[arm, s]["train_seconds"] for s in args.seeds],
            "final_gates": [runs[arm, s]["test"].get("gates") for s in args.seeds],
        }
    record["pairs"] = {
        f"{a} - {b}": paired_bootstrap(test[a], test[b], rounds=args.bootstrap) for a, b in PAIRS
    }
    rule = [runs["lm", s]["test"]["connectivity_rule_accuracy"] for s in args.seeds]
    record["baselines"]["connectivity_rule"] = {"test_accuracy": rule, **_mean_std(rule)}
    kge_acc = [kge["seeds"][str(s)]["accuracy"] for s in args.seeds]
    kge_correct = [kge["seeds"][str(s)]["correct"] for s in args.seeds]
    record["baselines"]["kge"] = {
        **{k: v for k, v in kge.items() if k != "seeds"},
        "test_accuracy": kge_acc, **_mean_std(kge_acc),
        "vs_lm": paired_bootstrap(kge_correct, test["lm"], rounds=args.bootstrap),
    }  # fmt: skip
    record["wall_seconds"]["total"] = time.perf_counter() - start
    plot = args.results.with_name("injection_gates.png")
    record["gate_plot"] = plot.name if gate_plot(logs, plot) else None
    table = markdown(record, args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    from gnnlm.utils.atomic import atomic_write_text

    atomic_write_text(args.results, json.dumps(record, indent=2) + "\n")
    atomic_write_text(args.results.with_suffix(".md"), table)
    print(table)
    return 0


def markdown(record: dict, args: argparse.Namespace) -> str:
    n = len(args.seeds)
    lines = [
        f"Triple classification, {args.dataset}, {args.negatives} negatives, {args.lm}, "
        f"{args.num_train} train positives, {args.epochs} epoch(s), seeds {args.seeds} "
        f"({n} runs per arm)",
        "",
        "| arm | test accuracy (mean ± std) | vs lm: mean diff [95% paired bootstrap CI] | train s/run |",
        "|---|---|---|---|",
    ]
    for arm, r in record["arms"].items():
        diff = r["vs_lm"]
        cell = (
            "—"
            if diff is None
            else f"{diff['mean']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}]"
        )
        lines.append(
            f"| {arm} | {r['mean']:.4f} ± {r['std']:.4f} | {cell} | {statistics.fmean(r['train_seconds']):.0f} |"
        )
    rule, kge = record["baselines"]["connectivity_rule"], record["baselines"]["kge"]
    lines.append(
        f"| connectivity rule (no parameters) | {rule['mean']:.4f} ± {rule['std']:.4f} | | 0 |"
    )
    d = kge["vs_lm"]
    lines.append(f"| KGE ({kge['config']}, {kge['epochs']} epochs, per-relation thresholds) | "
                 f"{kge['mean']:.4f} ± {kge['std']:.4f} | {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] | "
                 f"{kge['train_seconds']:.0f} |")  # fmt: skip
    lines += ["", "| paired difference | mean [95% paired bootstrap CI] |", "|---|---|"]
    lines += [
        f"| {k} | {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] |"
        for k, d in record["pairs"].items()
    ]
    lines += ["", f"{n} seeds; std is the sample standard deviation over seeds. Wall clock: "
              f"{record['wall_seconds']['total'] / 60:.1f} min in all."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
