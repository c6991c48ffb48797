"""Entity linking to FB15k-237 (ELEVANT benchmarks, in-KB disambiguation of gold mentions): the alias
prior, the LM-only bi-encoder and the bi-encoder + KG coherence re-ranker, in one run.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/el.py [--budget small|full] [--seeds 0 1 2] \
        [--threads 1] [--set KEY=VALUE ...] [--quick]

The arms are the ``variants`` of ``configs/tasks/entity_linking.yaml`` (``lm``, ``kg``: same candidates,
features, data, data order, seeds and budget), run by the engine; the alias prior (no parameters: the
first candidate) is read from the same runs' ``prior_*`` metrics. ``--budget full`` is the config as
shipped; ``small`` (the default) trains fewer epochs so that the whole benchmark fits about half an hour
on a shared 2-core CPU, and says so in the table. Reported per arm and test file: in-KB accuracy and
micro precision / recall / F1 over gold mentions (``gnnlm/tasks/entity_linking/metrics.py``) as mean ±
sample std over seeds; a paired bootstrap 95% interval of the in-KB accuracy difference to ``lm`` (the
same in-KB test mentions under every seed, one resample shared by the seeds) over all test files and per file;
candidate recall@1/4/16 and the in-KB share per file; training seconds per run; published anchors (a
full Wikipedia/Wikidata KB, trained on far more data, mostly end-to-end: context, not a target). Writes
``benchmarks/results/el.{json,md}``; runs go to ``--out`` (default ``runs/el``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from common import comparison_parser, header, run_arms, write_results

from gnnlm.train.variants import paired_bootstrap, summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "tasks" / "entity_linking.yaml"
METRICS = ("accuracy", "precision", "recall", "f1")
SMALL = ["training.epochs=4"]
QUICK = [
    "model.lm=tiny-bert",
    "model.entity_max_length=16",
    "data.generated=50",
    "data.max_train_documents=20",
    "data.test=[kore50]",
    "training.epochs=1",
    "seeds=[0, 1]",
]
ANCHORS = (
    "ReFinED (Ayoola et al. 2022; Wikidata/Wikipedia KB, trained on all of Wikipedia; GERBIL InKB micro "
    "F1, end-to-end with its own mention detection): KORE50 65.9, MSNBC 71.8, OKE-2015 65.0, OKE-2016 "
    "59.5, Derczynski 50.7; MSNBC disambiguation of gold mentions (ED) micro F1 94.4 (paperswithcode "
    "listing of the ReFinED paper). Not comparable: our KB is the 14.5k FB15k-237 entities, we score "
    "only gold mentions whose entity is in it, and train on ~1k real mentions"
)  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    budget = list(QUICK if args.quick else SMALL if args.budget == "small" else [])
    ran = run_arms(CONFIG, budget + args.set, args)
    config, overrides, seeds, runs = ran.config, ran.overrides, ran.seeds, ran.runs
    reference = "lm" if "lm" in runs else next(iter(runs))
    first = runs[reference][seeds[0]]["test"]
    files = list(dict.fromkeys(first["datasets"]))
    # the prior is deterministic: the same in every run, read from the reference arm
    rows = {"prior": {s: _prior_view(runs[reference][s]["test"]) for s in seeds}}
    rows.update({arm: {s: r[s]["test"] for s in seeds} for arm, r in runs.items()})
    arms = {}
    for arm, by_seed in rows.items():
        tests = [by_seed[s] for s in seeds]
        record = {
            "overrides": config.variants.get(arm, "no parameters: the first candidate"),
            "test": {f"{m}{suffix}": summarize([t[f"{m}{suffix}"] for t in tests])
                     for m in METRICS for suffix in ["", *[f"_{f}" for f in files]]},
            "train_seconds": (None if arm == "prior"
                              else [runs[arm][s]["train_seconds"] for s in seeds]),
        }  # fmt: skip
        if arm != reference:
            ref = [rows[reference][s] for s in seeds]
            record[f"vs_{reference}"] = {
                name: paired_bootstrap(
                    [_select(t["correct"], t["datasets"], name) for t in tests],
                    [_select(t["correct"], t["datasets"], name) for t in ref],
                    rounds=args.bootstrap,
                )
                for name in ["all", *files]
            }
        arms[arm] = record
    counts = first["counts"]
    return {
        "overrides": overrides, "seeds": seeds, "reference": reference, "files": files,
        "arms": arms, "counts": {f: counts[f] for f in [*files, "all"]},
        "train_counts": runs[reference][seeds[0]].get("data_counts"),
        "anchors": ANCHORS, "wall_seconds": ran.seconds,
    }  # fmt: skip


def _prior_view(test: dict) -> dict:
    """The alias prior's metrics of a run, under the names of the model's."""
    view = {k.removeprefix("prior_"): v for k, v in test.items() if k.startswith("prior_")}
    view["correct"] = test["prior_correct"]
    view["datasets"] = test["datasets"]
    return view


def _select(correct: list[int], datasets: list[str], name: str) -> list[int]:
    return [c for c, d in zip(correct, datasets) if name == "all" or d == name]


def _cell(s: dict | None) -> str:
    return "—" if s is None or s["mean"] is None else f"{s['mean']:.3f} ± {s['std']:.3f}"


def _ci(diff: dict | None) -> str:
    return "—" if diff is None else f"{diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"


def _training_line(counts: dict | None) -> str:
    if not counts:
        return ""
    train, generated = counts["train"], counts["generated"]
    real = sum(f["documents"] for name, f in counts["files"].items() if "train" in name)
    return (
        f"Training: {train['mentions']} gold mentions ({train['in_kb']} in KB, "
        f"{train['scored_mentions']} with the gold entity among the candidates, the ones trained on) "
        f"in the OKE train files' {real} documents less the held-out valid share plus "
        f"{generated['documents']} documents generated from FB15k-237's names and descriptions "
        f"({generated['own_name_mentions']} own-name and {generated['description_mentions']} "
        f"description mentions; {generated['ambiguous_or_unrelated']} names in descriptions left "
        "unlinked)."
    )


def markdown(record: dict) -> str:
    r = record["result"]
    ref, files = r["reference"], r["files"]
    budget = ", ".join(r["overrides"]) or "the shipped config"
    lines = [
        f"### Entity linking to FB15k-237 ({budget}; seeds {r['seeds']})",
        "",
        "All test files together (in-KB mentions: accuracy = recall; precision counts predictions on "
        "out-of-KB gold mentions as errors):",
        "",
        f"| arm | accuracy | precision | recall | F1 | vs {ref} (accuracy, 95% paired bootstrap CI) "
        "| train s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, a in r["arms"].items():
        seconds = (
            "0" if a["train_seconds"] is None else f"{statistics.fmean(a['train_seconds']):.0f}"
        )
        cells = " | ".join(_cell(a["test"][m]) for m in METRICS)
        vs = a.get(f"vs_{ref}")
        lines.append(f"| {arm} | {cells} | {_ci(vs['all'] if vs else None)} | {seconds} |")
    lines += ["", "Per test file: in-KB accuracy / micro F1 (mean ± std over seeds), and the "
              f"accuracy difference to {ref}:", ""]  # fmt: skip
    header = "| file | in-KB / mentions | recall@1 / @4 / @16 |"
    for arm in r["arms"]:
        header += f" {arm} accuracy | {arm} F1 |"
        if arm != ref:
            header += f" {arm} vs {ref} |"
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for f in files:
        c = r["counts"][f]
        row = (f"| {f} | {c['in_kb']} / {c['mentions']} ({c['in_kb_share']:.1%}) | "
               f"{c['recall@1']:.3f} / {c['recall@4']:.3f} / {c['recall@16']:.3f} |")  # fmt: skip
        for arm, a in r["arms"].items():
            row += f" {_cell(a['test'][f'accuracy_{f}'])} | {_cell(a['test'][f'f1_{f}'])} |"
            if arm != ref:
                row += f" {_ci(a[f'vs_{ref}'][f])} |"
        lines.append(row)
    c = r["counts"]["all"]
    lines += [
        "",
        f"In KB: {c['in_kb']} of {c['mentions']} gold test mentions ({c['in_kb_share']:.1%}); "
        f"{c['out_of_kb_qid']} have a Wikidata id outside FB15k-237, {c['nil']} are NIL and "
        f"{c['no_mapping']} have no mapping. Candidate recall over in-KB mentions: @1 "
        f"{c['recall@1']:.3f} (= the alias prior's accuracy), @4 {c['recall@4']:.3f}, @16 "
        f"{c['recall@16']:.3f} (the ceiling of every arm).",
        _training_line(r["train_counts"]),
        "",
        f"Published anchors: {r['anchors']}.",
        f"Wall clock: {r['wall_seconds'] / 60:.1f} min (entity and mention encodings already "
        "cached; the first run ever adds ~10 min of MiniLM encoding on a busy 2-core CPU).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(__doc__, name="el", threads=1, quick="tiny-bert, a few documents")
    parser.add_argument("--budget", choices=("small", "full"), default="small")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the .md from the --results JSON, no runs"
    )
    args = parser.parse_args(argv)
    if args.render:
        from gnnlm.utils.atomic import atomic_write_text

        text = markdown(json.loads(args.results.read_text()))
        atomic_write_text(args.results.with_suffix(".md"), text)
        print(text)
        return 0
    # one thread: on a busy 2-core machine, two threads spin and run the GNN 50x slower (measured)
    torch.set_num_threads(args.threads)
    record = {**header(argv, args.threads), "budget": "quick" if args.quick else args.budget}
    record["result"] = run(args)
    write_results(args.results, record, markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
