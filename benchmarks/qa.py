"""Question answering with the KG: MetaQA (multi-hop KGQA) and CommonsenseQA + ConceptNet, every arm
against LM-only in one run per task.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/qa.py [--tasks metaqa commonsenseqa] \
        [--budget small|full] [--seeds 0 1 2] [--threads 2] [--set-metaqa KEY=VALUE ...] \
        [--set-commonsenseqa KEY=VALUE ...] [--quick]

Each task is its shipped config (``configs/tasks/metaqa.yaml``, ``configs/tasks/commonsenseqa.yaml``):
its ``variants`` are the arms (same candidates or choices, head, data, data order, seeds and budget), run
by the engine. ``--budget full`` is the config as shipped (hours on CPU: see each config's header);
``small`` (the default) caps the training and test examples so that both tasks fit in about an hour on
2 CPU cores, and says so in the table. Reported per arm: the task's metrics as mean ± sample std over
seeds, a paired bootstrap 95% interval of the difference to ``lm`` (the same test questions per seed;
one resample of the questions shared by the seeds), training seconds per run; published anchors beside them (trained
on full data with larger models: context, not a target at this budget). Writes
``benchmarks/results/qa.{json,md}``; runs go to ``--out`` (default ``runs/qa``).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from common import comparison_parser, header, run_arms, write_results

from gnnlm.train.variants import paired_bootstrap, summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

TASKS = {
    "metaqa": {
        "config": ROOT / "configs" / "tasks" / "metaqa.yaml",
        "metrics": ["hits@1", "hits@1_1hop", "hits@1_2hop"],
        "small": ["data.max_train=1000", "data.max_valid=200", "data.max_test=600"],
        "quick": ["model.lm=tiny-bert", "data.max_train=32", "data.max_valid=16",
                  "data.max_test=32", "data.max_nodes=32", "seeds=[0, 1]"],
        "anchors": "Hits@1 1-hop / 2-hop, full training split: EmbedKGQA 97.5 / 98.8, NSM 97.1 / 99.9, "
                   "GraftNet 97.0 / 94.8, KV-Mem 96.2 / 82.7",
    },
    "commonsenseqa": {
        "config": ROOT / "configs" / "tasks" / "commonsenseqa.yaml",
        "metrics": ["accuracy"],
        "small": ["data.num_train=1000", "data.num_valid=200", "data.num_test=500"],
        "quick": ["model.lm=tiny-bert", "data.num_train=16", "data.num_valid=8",
                  "data.num_test=16", "seeds=[0, 1]"],
        "anchors": "in-house test accuracy, RoBERTa-large: LM-only 68.7, QA-GNN 73.4, GreaseLM 74.2; "
                   "DRAGON 76.2",
    },
}  # fmt: skip


def run_task(name: str, args: argparse.Namespace) -> dict:
    spec = TASKS[name]
    budget = list(spec["quick"] if args.quick else spec["small"] if args.budget == "small" else [])
    ran = run_arms(
        spec["config"], budget + getattr(args, f"set_{name}"), argparse.Namespace(
            **{**vars(args), "out": args.out / name})
    )  # fmt: skip
    config, overrides, seeds, runs = ran.config, ran.overrides, ran.seeds, ran.runs
    reference = "lm" if "lm" in runs else next(iter(runs))
    correct = {arm: [r[s]["test"]["correct"] for s in seeds] for arm, r in runs.items()}
    arms = {}
    for arm, r in runs.items():
        arms[arm] = {
            "overrides": config.variants.get(arm),
            "test": {m: summarize([r[s]["test"][m] for s in seeds])
                     for m in spec["metrics"] if m in r[seeds[0]]["test"]},
            "valid": {m: summarize([r[s]["valid"][m] for s in seeds])
                      for m in spec["metrics"] if m in r[seeds[0]].get("valid", {})},
            f"vs_{reference}": None if arm == reference else paired_bootstrap(
                correct[arm], correct[reference], rounds=args.bootstrap),
            "train_seconds": [r[s]["train_seconds"] for s in seeds],
            "counts": r[seeds[0]]["test"].get("counts"),
            "num_test": r[seeds[0]]["test"].get("num_examples"),
        }  # fmt: skip
    rules, ceiling = ({}, None) if args.quick else RULES[name](config, reference, seeds)
    kg_arm = next((a for a in ("fused", "both") if a in correct), None)
    for rule in rules.values():  # a rule's expected hits are the same for every seed
        expected = [rule.pop("expected")] * len(seeds)
        rule[f"vs_{reference}"] = paired_bootstrap(
            expected, correct[reference], rounds=args.bootstrap
        )
        rule["kg_arm"] = kg_arm
        rule["kg_arm_vs_rule"] = (
            None
            if kg_arm is None
            else paired_bootstrap(correct[kg_arm], expected, rounds=args.bootstrap)
        )
    return {
        "overrides": overrides, "seeds": seeds, "reference": reference, "arms": arms,
        "rules": rules, "ceiling": ceiling, "anchors": spec["anchors"], "metrics": spec["metrics"],
        "wall_seconds": ran.seconds,
    }  # fmt: skip


def _set_up(task_class, config):
    task = task_class(config)
    task.validate()
    task.setup()
    return task


def metaqa_rules(config, arm: str, seeds: list[int]) -> tuple[dict, dict]:
    """MetaQA's baselines with no parameters on the same test questions and subgraphs
    (:mod:`gnnlm.tasks.metaqa.rule`): the hop rule, and with ``data.pruning: question`` the path rule
    (the retrieval's own best path at the hop distance); and the test counts (the ceiling)."""
    from gnnlm.tasks.metaqa import MetaQATask
    from gnnlm.tasks.metaqa.rule import hop_rule

    task = _set_up(MetaQATask, config.variant(arm, seeds[0]))
    rules = {"hop rule": hop_rule(task, "test")}
    if task.config.data.pruning == "question":
        rules["path rule"] = hop_rule(task, "test", scored=True)
    return rules, task.counts["test"]


def multiple_choice_rules(config, arm: str, seeds: list[int]) -> tuple[dict, None]:
    """CommonsenseQA's baselines with no parameters on the same subgraphs
    (:mod:`gnnlm.tasks.multiple_choice.rule`): "is there a path?" and "how many question concepts
    does the choice connect to?" (the data is shared with the runs of this process)."""
    from gnnlm.tasks.multiple_choice import MultipleChoiceTask
    from gnnlm.tasks.multiple_choice.rule import rule_baselines

    task = _set_up(MultipleChoiceTask, config.variant(arm, seeds[0]))
    return {f"{k} rule": v for k, v in rule_baselines(task, "test").items()}, None


RULES = {"metaqa": metaqa_rules, "commonsenseqa": multiple_choice_rules}
RULE_NOTES = {
    "metaqa": "a uniformly random node at the question's hop distance in its subgraph (it reads the hop "
    "count, which no model sees); the path rule keeps only those on the best-scored path of the "
    "question-aware pruning.",
    "commonsenseqa": "a uniformly random choice among those whose subgraph joins the question to the "
    "choice (path) or connects the most question concepts (links); chance is .20.",
}


def _diff(d: dict | None) -> str:
    return "—" if d is None else f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def _cell(s: dict | None) -> str:
    return "—" if s is None else f"{s['mean']:.4f} ± {s['std']:.4f}"


def markdown(record: dict) -> str:
    lines = []
    for name, t in record["tasks"].items():
        metrics, ref = t["metrics"], t["reference"]
        budget = ", ".join(t["overrides"]) or "the shipped config"
        lines += [
            f"### {name} ({budget}; seeds {t['seeds']})",
            "",
            "| arm | "
            + " | ".join(f"test {m}" for m in metrics)
            + f" | vs {ref} (test, 95% paired bootstrap CI) | train s/run |",
            "|---" * (len(metrics) + 3) + "|",
        ]
        for arm, a in t["arms"].items():
            diff = a[f"vs_{ref}"]
            ci = (
                "—"
                if diff is None
                else (f"{diff['mean']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}]")
            )
            cells = " | ".join(_cell(a["test"].get(m)) for m in metrics)
            lines.append(f"| {arm} | {cells} | {ci} | {statistics.fmean(a['train_seconds']):.0f} |")
        rules, counts = t.get("rules", {}), t.get("ceiling")
        for rule, r in rules.items():
            cells = " | ".join(f"{r[m]:.4f}" if r.get(m) is not None else "—" for m in metrics)
            lines.append(f"| {rule} (no parameters) | {cells} | {_diff(r[f'vs_{ref}'])} | 0 |")
        if rules:
            lines += ["", f"Rules: {RULE_NOTES[name]} {next(iter(rules.values()))['kg_arm']} "
                      "against each rule (95% paired bootstrap CI): "
                      + "; ".join(f"{rule} {_diff(r['kg_arm_vs_rule'])}" for rule, r in rules.items())
                      + "."]  # fmt: skip
        if counts:
            inside = [f"{k} {counts[k]['answers_in_subgraph'] / counts[k]['num_questions']:.4f}"
                      for k in counts if k.endswith("hop") and isinstance(counts[k], dict)]  # fmt: skip
            lines += [
                "",
                "Ceiling (a gold answer in the budgeted subgraph): " + ", ".join(inside) + ".",
            ]
        lines += ["", f"Published anchors: {t['anchors']}.",
                  f"Wall clock: {t['wall_seconds'] / 60:.1f} min.", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(__doc__, name="qa", threads=2, quick="tiny-bert, a few questions")
    # the task order of --tasks is the order they run (and the table's)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--budget", choices=("small", "full"), default="small")
    for name in TASKS:
        parser.add_argument(f"--set-{name}", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    record = {**header(argv, args.threads), "budget": "quick" if args.quick else args.budget,
              "tasks": {}}  # fmt: skip
    for name in args.tasks:
        record["tasks"][name] = run_task(name, args)
        # written after each task: a long run keeps what it measured
        write_results(args.results, record, markdown(record), echo=False)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
