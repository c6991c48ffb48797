"""Few-shot relation classification on FewRel (val_wiki.json, 6 meta-train / 10 meta-test relations):
the prototypical network's arms against episodic training alone, on the same fixed test episodes.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/fewrel_bench.py [--quick] [--seeds 0 1 2] \
        [--arms proto kg reptile fomaml] [--threads 2] [--set KEY=VALUE ...]

The arms are the ``variants`` of ``configs/tasks/fewrel.yaml`` (same seeds, data order, optimizer steps
and evaluation episodes), run by the engine; ``untrained`` is the same encoder with no training (MiniLM's
marker states as they come), evaluated once on the same episodes (its weights do not depend on the
seed; with ``--quick``'s random tiny-bert the first seed's). Reported per arm and setting (5-way 1-shot,
5-way 5-shot, 10-way 1-shot): episode accuracy as mean over seeds ± the 95% normal interval over
episodes (its half-width averaged over seeds) and the standard deviation over seeds; a paired bootstrap
95% interval of the difference to ``proto`` (episodes resampled, one resample shared by the seeds: every arm sees the
same episodes); training seconds per run; the share of head/tail mentions that link to FB15k-237.
Writes ``benchmarks/results/fewrel.{json,md}``; runs go to ``--out/fewrel`` (default ``runs/bench``).
``benchmarks/re.py --tasks fewrel`` calls :func:`run_fewrel` and :func:`fewrel_markdown`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import comparison_parser, header, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "tasks" / "fewrel.yaml"
REFERENCE = "proto"
QUICK = [
    "model.lm=tiny-bert", "model.temperature=16.0", "model.freeze_lm_layers=0",
    "model.node_features=learned", "data.train_per_relation=20",
    "data.test_per_relation=12", "evaluation.episodes=50", "evaluation.queries=2",
    "training.batch_size=20", "seeds=[0, 1]",
]  # fmt: skip
ANCHORS = (
    "official FewRel 1.0 test set (64 training relations, 20 hidden test relations; BERT-base), as "
    "reported by the FewRel papers and leaderboard, quoted from memory and not re-verified here: "
    "Proto (CNN) 69.20 / 84.79 / 56.44 (Han et al., 2018); Proto (BERT) 80.68 / 89.60 / 71.48 and "
    "BERT-PAIR 88.32 / 93.22 / 80.63 (Gao et al., 2019), 5w1s / 5w5s / 10w1s accuracy %. Not "
    "comparable: this split trains on 6 relations of the public validation file and tests on its 10 others."
)


def untrained_metrics(config) -> dict:
    """The test metrics of the encoder before any training (built as the engine builds it)."""
    from gnnlm.train.trainer import make_task, seed_everything

    single = config.variant(REFERENCE if REFERENCE in config.variants else None, config.seeds[0])
    task = make_task(single)
    task.validate()
    task.setup()
    seed_everything(single.seed)
    model = task.build_model().eval()
    start = time.perf_counter()
    with torch.no_grad():
        metrics = task.evaluate(model, "test")
    metrics["eval_seconds"] = time.perf_counter() - start
    return metrics


def run_fewrel(args: argparse.Namespace) -> dict:
    """Run the FewRel arms (see the module docstring) and return the record ``fewrel_markdown`` prints.

    ``args``: ``seeds`` (list or None), ``quick``, ``quiet``, ``out`` (runs root), ``bootstrap``
    (rounds); optional ``arms`` (subset of the config's variants), ``set_fewrel`` (``KEY=VALUE``
    overrides) and ``resume``.
    """
    from gnnlm.tasks.loading import load_config
    from gnnlm.train.variants import paired_bootstrap, run_variants, summarize

    overrides = list(QUICK if args.quick else []) + list(getattr(args, "set_fewrel", None) or [])
    if args.seeds:
        overrides.append(f"seeds={list(args.seeds)}")
    config = load_config(CONFIG, overrides)
    arms = getattr(args, "arms", None)
    if arms:
        config.variants = {a: config.variants[a] for a in arms}
    seeds = list(config.seeds) or [config.seed]
    config.seeds = seeds
    start = time.perf_counter()
    reference = untrained_metrics(config)
    resume = bool(getattr(args, "resume", False))
    comparison = run_variants(
        config, Path(args.out) / "fewrel", quiet=args.quiet, resume=resume, overwrite=not resume
    )
    runs = {arm: [a["runs"][str(s)] for s in seeds] for arm, a in comparison.arms.items()}
    settings = list(reference["episode_accuracy"])
    episodes = {arm: [r["test"]["episode_accuracy"] for r in rs] for arm, rs in runs.items()}
    episodes["untrained"] = [reference["episode_accuracy"]] * len(seeds)
    base = REFERENCE if REFERENCE in episodes else None
    record_arms = {}
    for arm in ["untrained", *runs]:
        tests = [reference] if arm == "untrained" else [r["test"] for r in runs[arm]]
        entry = {
            "overrides": config.variants.get(arm) if arm != "untrained" else "no training",
            "settings": {},
            "train_seconds": [r["train_seconds"] for r in runs[arm]] if arm in runs else [0.0],
            "links": tests[0].get("links"),
        }
        for name in settings:
            entry["settings"][name] = {
                "accuracy": summarize([t[f"accuracy_{name}"] for t in tests]),
                "episode_ci95": statistics.fmean(t[f"ci95_{name}"] for t in tests),
                f"vs_{base}": None
                if base is None or arm == base
                else paired_bootstrap(
                    [e[name] for e in episodes[arm]],
                    [e[name] for e in episodes[base]],
                    rounds=args.bootstrap,
                ),
            }
        record_arms[arm] = entry
    first = next(iter(runs.values()))[0]
    return {
        "overrides": overrides,
        "seeds": seeds,
        "reference": base,
        "settings": settings,
        "split": first["split"],
        "instances": first["instances"],
        "links": first.get("links"),
        "episodes": reference["episodes"],
        "queries": reference["queries"],
        "steps": first["steps"],
        "arms": record_arms,
        "anchors": ANCHORS,
        "wall_seconds": time.perf_counter() - start,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def fewrel_markdown(record: dict) -> str:
    """The table of a :func:`run_fewrel` record."""
    settings, base = record["settings"], record["reference"]
    budget = ", ".join(record["overrides"]) or "the shipped config"
    lines = [
        f"### FewRel val_wiki, 6 meta-train / 10 meta-test relations ({budget}; seeds "
        f"{record['seeds']}; {record['steps']} optimizer steps; {record['episodes']} fixed episodes per "
        f"setting, {record['queries']} queries per class)",
        "",
        "| arm | " + " | ".join(settings) + f" | vs {base}: " + " / ".join(settings)
        + " (paired bootstrap 95% CI) | train s/run |",
        "|---" * (len(settings) + 3) + "|",
    ]  # fmt: skip
    for arm, a in record["arms"].items():
        cells = []
        diffs = []
        for name in settings:
            s = a["settings"][name]
            acc = s["accuracy"]
            cells.append(f"{_pct(acc['mean'])} ± {_pct(s['episode_ci95'])} (sd {_pct(acc['std'])})")
            d = s.get(f"vs_{base}")
            if d is not None:
                diffs.append(
                    f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
                )
        diff = " / ".join(diffs) if diffs else "—"
        seconds = statistics.fmean(a["train_seconds"])
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {diff} | {seconds:.0f} |")
    links = (record.get("links") or {}).get("test") or {}
    train_links = (record.get("links") or {}).get("train") or {}
    lines += [
        "",
        "Episode accuracy %: mean over seeds ± half-width of the 95% normal interval over episodes "
        "(sd: standard deviation over seeds). `untrained`: the encoder before any training (one "
        "evaluation; the same weights for every seed).",
    ]
    if links:
        lines.append(
            f"KG links (Wikidata id -> FB15k-237): test {links['head_linked']} heads and "
            f"{links['tail_linked']} tails of {links['instances']} instances "
            f"({_pct(links['mention_share'])}% of mentions; {links['either_linked']} instances with "
            f"one link or more); train {_pct(train_links.get('mention_share', 0.0))}% of mentions."
        )
    split = record.get("split") or {}
    lines += [
        f"Relations: meta-train {', '.join(split.get('train', []))}; meta-test "
        f"{', '.join(split.get('test', []))}.",
        f"Anchors (context only): {record['anchors']}",
        f"Wall clock: {record['wall_seconds'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(
        __doc__, name="fewrel", runs="bench", threads=2, quick="tiny-bert, tiny budget"
    )
    parser.add_argument("--arms", nargs="+", default=None, help="a subset of the config's variants")
    parser.add_argument(
        "--set", dest="set_fewrel", action="append", default=[], metavar="KEY=VALUE"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    record = {**header(argv, args.threads), "fewrel": run_fewrel(args)}
    write_results(args.results, record, fewrel_markdown(record["fewrel"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
