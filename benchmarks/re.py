"""Relation extraction with the KG: SemEval-2010 Task 8 with WordNet (and FewRel, from
``benchmarks/fewrel_bench.py``), every KG arm against LM-only in one run.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/re.py [--tasks semeval fewrel] \
        [--budget small|full] [--seeds 0 1 2] [--threads 1] [--set KEY=VALUE ...] \
        [--set-fewrel KEY=VALUE ...] [--quick]

SemEval runs its shipped config (``configs/tasks/semeval.yaml``): its ``variants`` are the arms (the same
head, sentences, data order, seeds and budget), run by the engine. ``--budget full`` is the config as
shipped (all 7,200 training sentences and the full 2,717-sentence test file; hours on CPU); ``small``
(the default) trains on 2,000 sentences for one epoch and tests on the whole test file (see ``SMALL``)
and says so in the table. Reported per arm: the official macro-F1 and accuracy as mean ±
sample std over seeds, a paired bootstrap 95% interval of each difference to ``lm`` (the same test
sentences under every seed, one resample shared by the seeds; macro-F1 recomputed on every resample), the share of
nominals linked to a WordNet synset, and training seconds per run; the published anchors beside them
(BERT-base/large fine-tuned on all 8,000 sentences: context, not a target at this budget). ``--quick``
is a tiny-bert smoke run. Writes ``benchmarks/results/re.{json,md}``; runs go to ``--out`` (default
``runs/re``). ``--tasks fewrel`` runs ``run_fewrel(args)`` of ``benchmarks/fewrel_bench.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from common import comparison_parser, header, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "tasks" / "semeval.yaml"

#: the small budget: 2,000 training sentences (a random subset of the 7,200; 250 steps of 8), one epoch,
#: 200 validation sentences, the whole test file. Measured on the shared 2-core CPU (MiniLM, one thread,
#: layers 4-5 trained): ~3.5 min per run and ~31 min for 3 arms x 3 seeds when the machine is quiet,
#: ~13 min per run when it is saturated; then cut it, e.g. ``--set data.num_train=640 --set
#: data.num_valid=100 --set data.num_test=800`` (~9 min in all when quiet).
SMALL = ["data.num_train=2000", "data.num_valid=200", "data.num_test=0"]
QUICK = ["model.lm=tiny-bert", "model.node_features=learned", "data.num_train=64",
         "data.num_valid=32", "data.num_test=128", "seeds=[0, 1]"]  # fmt: skip
METRICS = ["macro_f1", "accuracy"]
ANCHORS = (
    "official macro-F1 on the full test set, BERT fine-tuned on all 8,000 training sentences for "
    "several epochs: R-BERT 89.25 (Wu & He 2019), KnowBERT-W+W 89.1 (Peters et al. 2019, BERT-base "
    "with WordNet and Wikipedia), matching the blanks BERT-large entity start 89.2, with MTB "
    "pre-training 89.5 (Baldini Soares et al. 2019)"
)


def run_semeval(args: argparse.Namespace) -> dict:
    """Every arm of ``configs/tasks/semeval.yaml`` with every seed; the table's record."""
    from gnnlm.tasks.loading import load_config
    from gnnlm.tasks.relation_classification.scorer import paired_bootstrap_macro_f1
    from gnnlm.train.variants import paired_bootstrap, run_variants, summarize

    overrides = list(QUICK if args.quick else SMALL if args.budget == "small" else [])
    overrides += args.set
    if args.seeds:
        overrides.append(f"seeds={args.seeds}")
    config = load_config(CONFIG, overrides)
    seeds = config.seeds or [config.seed]
    start = time.perf_counter()
    from gnnlm.data import load_dataset

    kg = load_dataset(config.dataset, **config.dataset_kwargs)  # read once, shared by every run
    comparison = run_variants(
        config, args.out / "semeval", data=kg, quiet=args.quiet, resume=args.resume,
        overwrite=not args.resume,
    )  # fmt: skip
    runs = {arm: {int(s): m for s, m in a["runs"].items()} for arm, a in comparison.arms.items()}
    reference = "lm" if "lm" in runs else next(iter(runs))
    ref = runs[reference]
    arms = {}
    for arm, r in runs.items():
        test = [r[s]["test"] for s in seeds]
        versus = None
        if arm != reference:
            versus = {
                "macro_f1": paired_bootstrap_macro_f1(
                    [t["gold"] for t in test], [t["predictions"] for t in test],
                    [ref[s]["test"]["predictions"] for s in seeds], rounds=args.bootstrap,
                ),
                "accuracy": paired_bootstrap(
                    [t["correct"] for t in test], [ref[s]["test"]["correct"] for s in seeds],
                    rounds=args.bootstrap,
                ),
            }  # fmt: skip
        arms[arm] = {
            "overrides": config.variants.get(arm),
            "test": {m: summarize([t[m] for t in test]) for m in METRICS},
            "valid": {m: summarize([r[s]["valid"][m] for s in seeds]) for m in METRICS
                      if "valid" in r[seeds[0]]},
            f"vs_{reference}": versus,
            "per_relation_f1": {rel: statistics.fmean(t["per_relation"][rel]["f1"] for t in test)
                                for rel in test[0]["per_relation"]},
            "linking": r[seeds[0]]["linking"],
            "gates": [t["gates"] for t in test],
            "train_seconds": [r[s]["train_seconds"] for s in seeds],
            "eval_seconds": [r[s].get("eval_seconds") for s in seeds],
            "num_train": r[seeds[0]]["num_train_examples"],
            "num_test": test[0]["num_examples"],
        }  # fmt: skip
    return {
        "overrides": overrides, "seeds": seeds, "reference": reference, "arms": arms,
        "anchors": ANCHORS, "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip


def _cell(s: dict | None, scale: float = 100.0) -> str:
    return "—" if s is None else f"{scale * s['mean']:.2f} ± {scale * s['std']:.2f}"


def _ci(d: dict | None, scale: float = 100.0) -> str:
    if d is None:
        return "—"
    return f"{scale * d['mean']:+.2f} [{scale * d['low']:+.2f}, {scale * d['high']:+.2f}]"


def semeval_markdown(t: dict) -> str:
    """The SemEval table (scores in percent, as the official scorer prints them)."""
    ref = t["reference"]
    budget = ", ".join(t["overrides"]) or "the shipped config"
    first = next(iter(t["arms"].values()))
    link = first["linking"]
    lines = [
        f"### SemEval-2010 Task 8 ({budget}; seeds {t['seeds']}; {first['num_train']} training "
        f"sentences, {first['num_test']} test)",
        "",
        f"| arm | test macro-F1 | test accuracy | macro-F1 vs {ref} (95% paired bootstrap CI) | "
        f"accuracy vs {ref} | valid macro-F1 | train s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, a in t["arms"].items():
        versus = a[f"vs_{ref}"] or {}
        lines.append(
            f"| {arm} | {_cell(a['test']['macro_f1'])} | {_cell(a['test']['accuracy'])} | "
            f"{_ci(versus.get('macro_f1'))} | {_ci(versus.get('accuracy'))} | "
            f"{_cell(a['valid'].get('macro_f1'))} | {statistics.fmean(a['train_seconds']):.0f} |"
        )
    shares = ", ".join(
        f"{split} {100 * c['share']:.1f}% ({c['linked']}/{c['nominals']})"
        for split, c in link.items()
    )
    lines += [
        "",
        "Scores in percent: the official (9+1)-way macro-F1 with directionality (Other excluded) and "
        "19-way accuracy; mean ± sample std over seeds; CI: paired bootstrap of the difference over "
        "test sentences (one resample shared by the seeds, averaged over seeds).",
        f"Nominals linked to a WN18RR synset: {shares}.",
        f"Published anchors: {t['anchors']}.",
        f"Wall clock: {t['wall_seconds'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def markdown(record: dict) -> str:
    parts = []
    for name, task in record["tasks"].items():
        if name == "semeval":
            parts.append(semeval_markdown(task))
        else:
            from fewrel_bench import fewrel_markdown

            parts.append(fewrel_markdown(task))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    # one thread: on a busy 2-core machine a second thread waits for the first (3x slower, measured)
    parser = comparison_parser(__doc__, name="re", threads=1, quick="tiny-bert, a few sentences")
    parser.add_argument("--tasks", nargs="+", choices=("semeval", "fewrel"),
                        default=["semeval", "fewrel"])  # fmt: skip
    parser.add_argument("--budget", choices=("small", "full"), default="small")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of configs/tasks/semeval.yaml")  # fmt: skip
    parser.add_argument("--set-fewrel", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the FewRel config (read by fewrel_bench)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    record = {**header(argv, args.threads), "budget": "quick" if args.quick else args.budget,
              "tasks": {}}  # fmt: skip
    for name in args.tasks:
        if name == "semeval":
            record["tasks"][name] = run_semeval(args)
        else:  # written by the FewRel benchmark's author; imported only when asked for
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from fewrel_bench import run_fewrel

            record["tasks"][name] = run_fewrel(args)
        # written after each task: a long run keeps what it measured
        write_results(args.results, record, markdown(record), echo=False)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
