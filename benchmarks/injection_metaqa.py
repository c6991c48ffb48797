"""The injection ablation on MetaQA: does injecting the graph into the LM help when the head reads text
only? (``benchmarks/injection.py --task metaqa`` runs this file.)

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/injection_metaqa.py [--seeds 0 1 2] \
        [--threads 2] [--set KEY=VALUE ...] [--quick]

The arms are the variants of ``configs/tasks/injection_ablation_metaqa.yaml`` (its header says what each
reads): ``lm`` (LM-only), ``gnn`` (a question-conditioned GNN), ``late`` (late fusion only, injection
held at zero), ``inject`` (injection only: the head reads the names and the question), ``both``,
``gnn_reads_text`` (``both`` with graph injection one way: nodes read tokens, the LM stays plain). One
head, the same candidates, questions, data order, seeds and budget for every arm, run by the engine.

Beside them, a rule with no parameters on the same test questions and subgraphs: a uniformly random
node at the question's hop distance from the topic (``gnnlm.tasks.metaqa.rule``; it reads the hop count,
which no model sees). No KGE baseline here: ranking answers with a KGE needs the question's relation
path, which is the task itself (EmbedKGQA); the triple-classification ablation has one.

Reported per arm: test hits@1 (all, 1-hop, 2-hop) mean ± sample std over seeds; a paired bootstrap 95%
interval of the difference to ``lm`` (questions resampled, one resample shared by the seeds) and of ``both - late``,
``both - inject``; the gates over training (``injection_metaqa_gates.png``); training seconds per
run. Writes ``benchmarks/results/injection_metaqa.{json,md}``; runs go to ``--out``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from common import comparison_parser, header, run_arms, write_results

from gnnlm.train.variants import paired_bootstrap, summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "tasks" / "injection_ablation_metaqa.yaml"
METRICS = ("hits@1", "hits@1_1hop", "hits@1_2hop")
#: further paired comparisons (arm, against)
PAIRS = [("both", "late"), ("both", "inject"), ("both", "gnn_reads_text"), ("inject", "gnn")]
QUICK = ["model.lm=tiny-bert", "data.max_train=32", "data.max_valid=16", "data.max_test=32",
         "data.max_nodes=32", "seeds=[0, 1]"]  # fmt: skip


def rule_baseline(config, seeds: list[int]) -> dict:
    """The hop rule's expected hits@1 on the test questions of every seed (the same questions and
    subgraphs for every seed: they depend on ``data.split_seed`` only)."""
    from gnnlm.tasks.metaqa import MetaQATask
    from gnnlm.tasks.metaqa.rule import hop_rule

    task = MetaQATask(config.variant("lm", seeds[0]))
    task.validate()
    task.setup()
    return hop_rule(task, "test")


def _diff(d: dict | None) -> str:
    return "—" if d is None else f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def markdown(record: dict) -> str:
    seeds = record["seeds"]
    lines = [
        f"MetaQA (1-hop + 2-hop), {', '.join(record['overrides']) or 'the shipped budget'}: "
        f"{record['num_train']} training questions, {record['num_test']} test questions, seeds "
        f"{seeds}",
        "",
        "| arm | head reads | test hits@1 | 1-hop | 2-hop | vs lm (95% paired bootstrap CI) "
        "| train s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    reads = {"lm": "question (LM) + names", "gnn": "question (LM) + question-conditioned GNN",
             "late": "question (LM) + GNN states, injection held at zero",
             "inject": "question (LM + injection) + names",
             "both": "question (LM + injection) + fused GNN states",
             "gnn_reads_text": "question (LM) + GNN states, nodes reading the tokens"}  # fmt: skip
    for arm, a in record["arms"].items():
        cells = " | ".join(
            f"{a['test'][m]['mean']:.4f} ± {a['test'][m]['std']:.4f}" for m in METRICS
        )
        lines.append(
            f"| {arm} | {reads.get(arm, '')} | {cells} | {_diff(a['vs_lm'])} | "
            f"{statistics.fmean(a['train_seconds']):.0f} |"
        )
    rule = record["baselines"]["hop_rule"]
    lines.append(
        "| hop rule (no parameters) | a random node at the question's hop distance | "
        + " | ".join(f"{rule[m]:.4f}" for m in METRICS)
        + f" | {_diff(rule['vs_lm'])} | 0 |"
    )
    lines += ["", "| paired difference | mean [95% paired bootstrap CI] |", "|---|---|"]
    lines += [f"| {k} | {_diff(d)} |" for k, d in record["pairs"].items()]
    lines += ["", f"{len(seeds)} seeds; std is the sample standard deviation over seeds. Wall clock: "
              f"{record['wall_seconds'] / 60:.1f} min in all."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(
        __doc__, name="injection_metaqa", runs="injection-ablation-metaqa", threads=2,
        quick="tiny-bert, 32 questions",
    )  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    arms = run_arms(CONFIG, (QUICK if args.quick else []) + args.set, args)
    config, overrides, seeds, runs = arms.config, arms.overrides, arms.seeds, arms.runs
    correct = {arm: [r[s]["test"]["correct"] for s in seeds] for arm, r in runs.items()}
    record: dict = {
        **header(argv, args.threads),
        "config": config.to_dict(), "overrides": overrides, "seeds": seeds, "arms": {},
        "num_train": runs["lm"][seeds[0]]["num_train_examples"],
        "num_test": runs["lm"][seeds[0]]["test"]["num_examples"],
    }  # fmt: skip
    for arm, r in runs.items():
        record["arms"][arm] = {
            "overrides": config.variants[arm],
            "test": {m: summarize([r[s]["test"][m] for s in seeds]) for m in METRICS},
            "valid_hits@1": [r[s]["valid"]["hits@1"] for s in seeds],
            "vs_lm": None if arm == "lm" else paired_bootstrap(
                correct[arm], correct["lm"], rounds=args.bootstrap),
            "train_seconds": [r[s]["train_seconds"] for s in seeds],
            "final_gates": [r[s]["test"].get("gates") for s in seeds],
        }  # fmt: skip
    record["pairs"] = {
        f"{a} - {b}": paired_bootstrap(correct[a], correct[b], rounds=args.bootstrap)
        for a, b in PAIRS
        if a in correct and b in correct
    }
    rule = rule_baseline(config, seeds)
    record["baselines"] = {"hop_rule": {
        **{m: rule[m] for m in METRICS},
        "vs_lm": paired_bootstrap([rule["expected"]] * len(seeds), correct["lm"],
                                  rounds=args.bootstrap),
    }}  # fmt: skip
    record["wall_seconds"] = time.perf_counter() - start
    from injection import gate_plot  # benchmarks/ is on the path of a script run from it

    logs = {
        (arm, s): [
            json.loads(line)
            for line in (args.out / "runs" / arm / f"seed-{s}" / "log.jsonl")
            .read_text()
            .splitlines()
        ]
        for arm in ("inject", "both")
        if arm in runs
        for s in seeds
    }
    plot = args.results.with_name(args.results.stem + "_gates.png")
    record["gate_plot"] = plot.name if gate_plot(logs, plot) else None
    write_results(args.results, record, markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
