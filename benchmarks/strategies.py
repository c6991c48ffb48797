"""Fine-tuning and injection strategies against full fine-tuning and against the LM alone, in one run.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/strategies.py [--seeds 0 1 2] [--threads 2] \
        [--set KEY=VALUE ...] [--quick]

One task (triple classification on WN18RR with matched negatives, ``configs/tasks/strategies_wn18rr.yaml``),
one head, the same data, data order, seeds and budget (one epoch of the same steps, no early stopping)
for every arm; the arms are the config's ``variants`` (run by the engine) plus multi-task:

* ``lm``: the LM alone, fully fine-tuned (no GNN; the head reads the text);
* ``full``: the fused model (graph injection, head reads text and graph), everything trains;
* ``partial``: ``full`` with the LM's embeddings and bottom 4 of 6 layers frozen;
* ``lora``: LoRA adapters (r 8) on the LM through ``peft``; GNN, fusion and head train;
* ``staged``: GNN, fusion, gates and head for 30 steps, then everything;
* ``adversarial``: FGM on the word embeddings (epsilon 1);
* ``adaptive``: graph injection behind per-token learned gates, regularised toward openness 0.5;
* ``meta``: Reptile over relation episodes (4 episodes of 4+4 support / 4+4 query per step);
* ``two_stage``: pre-training (MLM + link prediction on the subgraph, DRAGON-style, 500 synsets) first,
  then ``full`` from its weights;
* ``multitask``: ``full`` trained together with a second triple-classification task on the same graph
  (neighbourhood negatives) sharing the fused model, one head each; its matched-negatives test is the
  same test set as the other arms'.

Reported per arm: test accuracy mean ± sample std over seeds; paired bootstrap 95% intervals of its
difference to ``full`` and to ``lm`` (same test examples under every seed: one resample shared by the seeds);
trainable parameters; training wall-clock per run. Writes ``benchmarks/results/strategies.{json,md,png}``;
the runs go to ``--out`` (default ``runs/strategies``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from common import comparison_parser

from gnnlm.train.variants import paired_bootstrap, summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "tasks" / "strategies_wn18rr.yaml"
QUICK = [
    "model.lm=tiny-bert", "data.num_train=24", "data.num_valid=8", "data.num_test=16",
    "data.max_length=24", "seeds=[0, 1]",
    "variants.two_stage.pretraining.data={num_train: 16, num_valid: 8, max_length: 24}",
    "variants.staged.finetuning.phases=[{steps: 1, trainable: [gnn, fusion, gates, head]}, {}]",
    "variants.meta.finetuning.meta={method: reptile, shots: 1, queries: 1, meta_batch_size: 2}",
]  # fmt: skip


def multitask_config(config, seed: int):
    """The ``full`` arm trained with a second task (neighbourhood negatives, half the examples) that
    shares the fused model; everything else is the base config's."""
    from gnnlm.tasks.multitask import MultitaskConfig

    own = config.variant(None, seed).to_dict()
    sub = {k: own[k] for k in ("task", "dataset", "dataset_kwargs", "model", "data")}
    other = {**sub, "data": {**sub["data"], "negatives": "neighbourhood",
                             "num_train": max(1, sub["data"]["num_train"] // 2)}}  # fmt: skip
    mapping = {
        "task": "multitask", "seed": seed, "tasks": {"matched": sub, "neighbourhood": other},
        "share": ["fused"], "sampling": "proportional", "training": own["training"],
        "evaluation": {**own["evaluation"], "metric": None},
    }  # fmt: skip
    return MultitaskConfig.from_dict(mapping, source="benchmarks/strategies.py")


def run_multitask(config, seeds: list[int], out: Path, *, resume: bool, quiet: bool) -> dict:
    from gnnlm.train import Trainer

    runs = {}
    for seed in seeds:
        folder = out / "runs" / "multitask" / f"seed-{seed}"
        if not (resume and (folder / "metrics.json").is_file()):
            Trainer(multitask_config(config, seed), run_dir=folder, quiet=quiet).fit(overwrite=True)
        metrics = json.loads((folder / "metrics.json").read_text())
        # the matched-negatives sub-task is the other arms' task: same examples, same test set
        metrics["test"] = metrics["test"]["matched"]
        runs[seed] = metrics
    return runs


def bar_plot(record: dict, path: Path) -> bool:
    """Test accuracy (mean, std over seeds as error bars) and training seconds per arm."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    arms = list(record["arms"])
    means = [record["arms"][a]["mean"] for a in arms]
    stds = [record["arms"][a]["std"] for a in arms]
    secs = [statistics.fmean(record["arms"][a]["train_seconds"]) for a in arms]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(arms) + 1.5), sharey=True)
    y = range(len(arms))
    left.barh(y, means, xerr=stds, color="tab:blue", alpha=0.8)
    left.axvline(record["arms"]["full"]["mean"], color="k", lw=0.8, ls="--", label="full")
    left.axvline(0.5, color="grey", lw=0.8, ls=":", label="chance")
    left.set_yticks(list(y), arms)
    left.invert_yaxis()
    left.set_xlim(0.4, max(m + s for m, s in zip(means, stds)) + 0.03)
    left.set_xlabel(f"test accuracy (mean ± std, {len(record['seeds'])} seeds)")
    left.legend(loc="lower right", fontsize=8)
    right.barh(y, secs, color="tab:orange", alpha=0.8)
    right.set_xlabel("training seconds per run")
    fig.suptitle(record["title"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(
        __doc__, name="strategies", threads=2, quick="tiny-bert, a few examples"
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-multitask", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from gnnlm.tasks.loading import load_config
    from gnnlm.train.variants import run_variants

    overrides = (QUICK if args.quick else []) + args.set
    if args.seeds:
        overrides.append(f"seeds={args.seeds}")
    config = load_config(args.config, overrides)
    seeds = config.seeds or [config.seed]
    start = time.perf_counter()
    comparison = run_variants(
        config, args.out, quiet=args.quiet, resume=args.resume, overwrite=not args.resume
    )
    runs = {arm: comparison.arms[arm]["runs"] for arm in comparison.arms}
    runs = {arm: {int(s): m for s, m in r.items()} for arm, r in runs.items()}
    if not args.no_multitask:
        runs["multitask"] = run_multitask(
            config, seeds, args.out, resume=args.resume, quiet=args.quiet
        )
    d = config.data
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "threads": args.threads, "torch": torch.__version__},
        "title": f"triple classification, {config.dataset}, {d.negatives} negatives, "
                 f"{config.model.lm}, {d.num_train} train positives, {config.training.epochs} "
                 f"epoch(s), {d.num_test} test positives",
        "config": config.to_dict(), "seeds": seeds, "arms": {},
    }  # fmt: skip
    correct = {arm: [r[s]["test"]["correct"] for s in seeds] for arm, r in runs.items()}
    for arm, r in runs.items():
        accuracy = [r[s]["test"]["accuracy"] for s in seeds]
        summary = summarize(accuracy)
        record["arms"][arm] = {
            "overrides": config.variants.get(arm, "multitask"),
            "test_accuracy": accuracy,
            "mean": summary["mean"], "std": summary["std"], "t_ci95": summary["ci95"],
            "vs_full": None if arm == "full" else paired_bootstrap(
                correct[arm], correct["full"], rounds=args.bootstrap),
            "vs_lm": None if arm == "lm" else paired_bootstrap(
                correct[arm], correct["lm"], rounds=args.bootstrap),
            "train_seconds": [r[s]["train_seconds"] for s in seeds],
            "trainable_parameters": r[seeds[0]].get("trainable_parameters", {}).get("trainable"),
            "total_parameters": r[seeds[0]].get("trainable_parameters", {}).get("total"),
        }  # fmt: skip
    rule = [runs["full"][s]["test"]["connectivity_rule_accuracy"] for s in seeds]
    record["connectivity_rule"] = {"test_accuracy": rule, **summarize(rule)}
    record["wall_seconds"] = time.perf_counter() - start
    plot = args.results.with_suffix(".png")
    record["plot"] = plot.name if bar_plot(record, plot) else None
    table = markdown(record)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    from gnnlm.utils.atomic import atomic_write_text

    atomic_write_text(args.results, json.dumps(record, indent=2) + "\n")
    atomic_write_text(args.results.with_suffix(".md"), table)
    print(table)
    return 0


def _interval(d: dict | None) -> str:
    return "—" if d is None else f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def markdown(record: dict) -> str:
    n = len(record["seeds"])
    lines = [
        f"Strategies: {record['title']}; seeds {record['seeds']} ({n} runs per arm)",
        "",
        "| arm | test accuracy (mean ± std) | vs full [95% paired bootstrap CI] | vs lm [95% CI] "
        "| trainable params | train s/run |",
        "|---|---|---|---|---|---|",
    ]
    for arm, r in record["arms"].items():
        params = r["trainable_parameters"]
        lines.append(
            f"| {arm} | {r['mean']:.4f} ± {r['std']:.4f} | {_interval(r['vs_full'])} | "
            f"{_interval(r['vs_lm'])} | {params:,} | {statistics.fmean(r['train_seconds']):.0f} |"
            if params is not None
            else f"| {arm} | {r['mean']:.4f} ± {r['std']:.4f} | {_interval(r['vs_full'])} | "
            f"{_interval(r['vs_lm'])} | ? | {statistics.fmean(r['train_seconds']):.0f} |"
        )
    rule = record["connectivity_rule"]
    lines.append(f"| connectivity rule (no parameters) | {rule['mean']:.4f} ± {rule['std']:.4f} "
                 "| | | 0 | 0 |")  # fmt: skip
    lines += [
        "",
        f"std: sample standard deviation over {n} seeds. two_stage's seconds are the fine-tuning "
        f"stage's (its pre-training ran before). Wall clock: {record['wall_seconds'] / 60:.1f} min "
        "in all.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
