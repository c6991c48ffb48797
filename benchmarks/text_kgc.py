"""Text-aware KG completion (issue 15): text-only, text + graph, KGE-only and the hybrids, one table.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/text_kgc.py [--datasets wn18rr fb15k-237] \
        [--budget small|full] [--out runs/text_kgc] [--threads 1] [--quick] [--merge-only]

Per dataset:

1. KGE-only: the shipped ComplEx config (``configs/<dataset>/complex.yaml``), ``--kge-epochs`` epochs
   at the small budget (the config's 200 with early stopping at ``full``).
2. The text arms of ``configs/tasks/text_kgc_<dataset>.yaml`` (``text``, ``text_graph``) with
   ``hybrid.kge_run`` pointing at step 1's run: every evaluation ranks the same triples with the
   text model, the KGE model alone and the ensemble (weight chosen on validation), all through the
   same filtered evaluator (both sides, filter = train + valid + test, realistic ties).

The table's rows: text, text + graph, KGE-only, hybrid (text + KGE), hybrid (text + graph + KGE),
with filtered MRR / Hits@1,3,10 on the evaluated test triples, MRR on all test triples with an
entity unseen in training (WN18RR: 210, FB15k-237: 28; the split ``test_unseen``), and the published
anchors (full data, full models: context, not a target at a CPU budget). ``--budget small`` (the
default) is what fits in about 30 minutes per dataset on a shared 2-core CPU: frozen keys, the
bottom 3 query-encoder layers frozen, 32 tokens, a seeded sample of training triples, one epoch,
seeded samples of valid and test (the sizes are in the table).
``--budget full`` runs the configs as shipped (a GPU job: ``benchmarks/text_kgc_gpu.sh``).

Each dataset writes ``<out>/<dataset>/record.json``; the results
``benchmarks/results/text_kgc.{json,md}`` are rebuilt from every record in ``--out``
(``--merge-only`` rebuilds them without running), so the two datasets can run as two processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

DATASETS = {
    "wn18rr": {
        "kge_config": ROOT / "configs" / "wn18rr" / "complex.yaml",
        "text_config": ROOT / "configs" / "tasks" / "text_kgc_wn18rr.yaml",
        "small": ["data.max_train=1200", "data.max_valid=200", "data.max_test=600"],
        "kge_epochs": 1,
        "anchors": {"SimKGC": 0.666, "RotatE": 0.476, "CompGCN": 0.479, "NBFNet": 0.551},
    },
    "fb15k-237": {
        "kge_config": ROOT / "configs" / "fb15k-237" / "complex.yaml",
        "text_config": ROOT / "configs" / "tasks" / "text_kgc_fb15k237.yaml",
        "small": ["data.max_train=1200", "data.max_valid=200", "data.max_test=600"],
        "kge_epochs": 2,
        "anchors": {"SimKGC": 0.336, "RotatE": 0.338, "CompGCN": 0.355, "NBFNet": 0.415},
    },
}

#: the CPU budget of the text arms, on top of each dataset's sample sizes.
SMALL_TEXT = [
    "model.key_encoder=frozen",
    "model.max_length=32",
    "model.graph_channels=64",
    "finetuning.freeze_lm_layers=3",
    "training.epochs=1",
    "training.batch_size=64",
    "training.warmup_steps=3",
    # a few dozen steps: the LM and the zero-initialised gates move faster than in the full recipe
    "training.param_groups.lm.lr=1.0e-4",
    "training.param_groups.gates.lr=5.0e-2",
    "training.log_steps=5",
    "evaluation.batch_size=128",
    "seeds=[0]",
]
QUICK_TEXT = [
    "dataset=umls",
    "model.lm=tiny-bert",
    "model.key_encoder=frozen",
    "model.max_length=16",
    "model.graph_channels=16",
    "training.epochs=1",
    "training.batch_size=16",
    "training.warmup_steps=0",
    "data.max_train=64",
    "data.max_valid=32",
    "data.max_test=32",
    "seeds=[0]",
]
ROWS = (
    ("text", "text", "text (bi-encoder)"),
    ("text_graph", "text", "text + graph tower"),
    ("text", "kge", "KGE only (ComplEx)"),
    ("text", "hybrid", "hybrid: text + KGE"),
    ("text_graph", "hybrid", "hybrid: text + graph + KGE"),
)
HEADLINE = ("mrr", "hits@1", "hits@3", "hits@10")


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    from gnnlm.data import load_dataset
    from gnnlm.tasks.link_prediction.config import LinkPredictionConfig
    from gnnlm.tasks.loading import load_config
    from gnnlm.train import Trainer
    from gnnlm.train.variants import run_variants

    spec, out = DATASETS[name], args.out / name
    start = time.perf_counter()
    kg = load_dataset("umls" if args.quick else name)
    # 1. KGE-only: the shipped config, few epochs at the small budget
    epochs = args.kge_epochs or (
        1 if args.quick else spec["kge_epochs"] if args.budget == "small" else None
    )
    kge_overrides = ["evaluation.frequency=0"] if epochs else []
    kge_overrides += ([f"training.epochs={epochs}"] if epochs else []) + list(args.kge_set)
    kge_config_path = (
        ROOT / "configs" / "umls" / "complex.yaml" if args.quick else spec["kge_config"]
    )
    kge_dir = out / "kge"
    if not (args.resume and (kge_dir / "metrics.json").is_file()):
        config = LinkPredictionConfig.load(kge_config_path, kge_overrides)
        Trainer(config, run_dir=kge_dir, data=kg, quiet=args.quiet).fit(overwrite=True)
    kge_metrics = json.loads((kge_dir / "metrics.json").read_text())
    # 2. the text arms, each also ranking with the KGE run and the ensemble
    overrides = (
        list(QUICK_TEXT) if args.quick
        else spec["small"] + SMALL_TEXT if args.budget == "small" else []
    )  # fmt: skip
    overrides += [f"hybrid.kge_run={kge_dir}", *args.set]
    config = load_config(spec["text_config"], overrides)
    comparison = run_variants(
        config, out / "text", data=kg, quiet=args.quiet, resume=args.resume,
        overwrite=not args.resume,
    )  # fmt: skip
    runs = {arm: a["runs"][str(config.seeds[0] if config.seeds else config.seed)]
            for arm, a in comparison.arms.items()}  # fmt: skip
    rows = []
    for arm, part, label in ROWS:
        test, unseen = runs[arm]["test"], runs[arm].get("test_unseen")
        metrics = test if part == "text" else test[part]
        count = unseen["num_triples"] if unseen else 0
        if unseen is not None:  # every test triple with an unseen entity (not the sample's)
            unseen = unseen if part == "text" else unseen[part]
        rows.append({
            "row": label, "arm": arm, "part": part,
            **{m: metrics[m] for m in HEADLINE},
            "unseen_mrr": unseen["mrr"] if unseen else None,
            "unseen_triples": count,
            "weight": metrics.get("weight"),
            # a hybrid costs both trainings
            "train_seconds": (kge_metrics["train_seconds"] if part != "text" else 0.0)
            + (runs[arm]["train_seconds"] if part != "kge" else 0.0),
        })  # fmt: skip
    inductive = _inductive(args, spec, overrides, out, kg) if args.inductive else None
    text_run = runs["text"]
    return {
        "inductive": inductive,
        "dataset": name if not args.quick else "umls (quick)",
        "budget": "quick" if args.quick else args.budget,
        "text_overrides": [o for o in overrides if not o.startswith("hybrid.kge_run=")],
        "kge_config": str(kge_config_path.relative_to(ROOT)),
        "kge_overrides": kge_overrides,
        "kge_full_test": {m: kge_metrics["test"][m] for m in HEADLINE},
        "test_triples": text_run["test"]["num_triples"],
        "test_triples_in_split": len(kg.test),
        "train_triples": text_run["counts"]["train_triples"],
        "valid_triples": text_run["valid"]["num_triples"],
        "hybrid_curves": {arm: r["valid"].get("hybrid_curve") for arm, r in runs.items()},
        "gates": _gates(out / "text" / "runs" / "text_graph"),
        "rows": rows,
        "anchors": spec["anchors"],
        # a resumed run read finished runs back: its wall clock is not the benchmark's
        "wall_seconds": None if args.resume else time.perf_counter() - start,
        "eval_seconds": {arm: r["eval_seconds"] for arm, r in runs.items()},
    }


def _inductive(args: argparse.Namespace, spec: dict, overrides: list[str], out: Path, kg) -> dict:
    """The text arm on an inductive split (``data.inductive_fraction``): test triples touch an
    entity that no training triple has; no KGE (it has no vector for such an entity)."""
    from gnnlm.tasks.loading import load_config
    from gnnlm.train import Trainer

    extra = [o for o in overrides if not o.startswith("hybrid.")]
    extra += [f"data.inductive_fraction={args.inductive}", "data.inductive_seed=0"]
    config = load_config(spec["text_config"], extra)
    single = config.variant("text", config.seeds[0] if config.seeds else config.seed)
    result = Trainer(single, run_dir=out / "inductive", data=kg, quiet=args.quiet).fit(
        overwrite=True
    )
    test = result.metrics["test"]
    return {
        "fraction": args.inductive,
        **{m: test[m] for m in HEADLINE},
        "test_triples": test["num_triples"],
        "counts": result.metrics["counts"],
        "train_seconds": result.metrics["train_seconds"],
    }


def _gates(arm_dir: Path) -> dict[str, float] | None:
    """``tanh`` of the trained graph gates (key, query) of the text + graph arm's saved model."""
    from safetensors.torch import load_file

    path = next(iter(sorted(arm_dir.glob("seed-*/model/model.safetensors"))), None)
    if path is None:
        return None
    tensors = load_file(str(path))
    return {
        side: float(torch.tanh(tensors[f"graph.{side}_gate"]))
        for side in ("key", "query")
        if f"graph.{side}_gate" in tensors
    }


def _compute_minutes(rec: dict) -> float:
    """Training and evaluation time of a record's runs (KGE, both text arms, the inductive arm)."""
    rows = {(r["arm"], r["part"]): r["train_seconds"] for r in rec["rows"]}
    seconds = rows[("text", "kge")] + rows[("text", "text")] + rows[("text_graph", "text")]
    seconds += sum(sum(e.values()) for e in (rec.get("eval_seconds") or {}).values())
    seconds += (rec.get("inductive") or {}).get("train_seconds", 0.0)
    return seconds / 60


def markdown(records: list[dict]) -> str:
    lines = ["## Text-aware KG completion (issue 15)", ""]
    for rec in records:
        anchors = ", ".join(f"{k} {v:.3f}" for k, v in rec["anchors"].items())
        lines += [
            f"### {rec['dataset']} (budget: {rec['budget']})",
            "",
            f"Trained on {rec['train_triples']:,} training triples (x2 with inverses), one seed; "
            f"test: {rec['test_triples']:,} of {rec['test_triples_in_split']:,} triples (seeded "
            f"sample), both sides, filtered, realistic ties; the ensemble weight chosen on "
            f"{rec['valid_triples']:,} valid triples. Text overrides: "
            f"`{' '.join(rec['text_overrides'])}`. KGE: `{rec['kge_config']}` with "
            f"`{' '.join(rec['kge_overrides'])}`.",
            "",
            "| model | MRR | Hits@1 | Hits@3 | Hits@10 | MRR, all test triples with an unseen entity (n) | weight | "
            "train s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rec["rows"]:
            weight = "—" if r["weight"] is None else f"{r['weight']:g}"
            unseen = (
                f"{r['unseen_mrr']:.3f} ({r['unseen_triples']})" if r["unseen_triples"] else "— (0)"
            )
            lines.append(
                f"| {r['row']} | {r['mrr']:.3f} | {r['hits@1']:.3f} | {r['hits@3']:.3f} | "
                f"{r['hits@10']:.3f} | {unseen} | {weight} | "
                f"{r['train_seconds']:.0f} |"
            )
        ind = rec.get("inductive")
        if ind:
            info = ind["counts"].get("inductive", {})
            lines += [
                "",
                f"Inductive split ({ind['fraction']:.0%} of the entities held out of training, "
                f"seed 0: {info.get('held_out_entities', '?'):,} entities; test = triples with "
                f"one of them, {ind['test_triples']:,} evaluated; same text budget): text MRR "
                f"{ind['mrr']:.3f}, Hits@1 {ind['hits@1']:.3f}, Hits@3 {ind['hits@3']:.3f}, "
                f"Hits@10 {ind['hits@10']:.3f}.",
            ]
        full = rec["kge_full_test"]
        gates = rec.get("gates") or {}
        lines += [
            "",
            "Graph tower gates after training (tanh; 0 = text only): "
            + (", ".join(f"{k} {v:+.3f}" for k, v in gates.items()) or "—")
            + ".",
            f"KGE on the full test split: MRR {full['mrr']:.3f}, Hits@10 {full['hits@10']:.3f}. "
            f"Published test MRR (full data and training): {anchors}.",
            f"Wall clock: {rec['wall_seconds'] / 60:.1f} min."
            if rec.get("wall_seconds") is not None
            else "Wall clock: not measured (finished runs read back by --resume); training + "
            f"evaluation of the runs: {_compute_minutes(rec):.0f} min.",
            "",
        ]
    return "\n".join(lines)


def merge(out: Path, results: Path) -> list[dict]:
    from gnnlm.utils.atomic import atomic_write_text

    order = {name: i for i, name in enumerate(DATASETS)}
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/record.json"))]
    records.sort(key=lambda r: order.get(r["dataset"], len(order)))
    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},
        "records": records,
    }  # fmt: skip
    results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(results.with_suffix(".md"), markdown(records))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--budget", choices=("small", "full"), default="small")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the text config (every dataset)")  # fmt: skip
    parser.add_argument("--kge-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the KGE config (e.g. training.device=cuda)")  # fmt: skip
    parser.add_argument("--kge-epochs", type=int, default=None,
                        help="KGE epochs (default: per dataset at --budget small, the config's at full)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "text_kgc")
    parser.add_argument("--results", type=Path, default=RESULTS / "text_kgc.json")
    parser.add_argument("--resume", action="store_true", help="keep finished runs in --out")
    parser.add_argument("--quick", action="store_true", help="UMLS, tiny-bert: a smoke run")
    parser.add_argument("--inductive", type=float, default=0.0, metavar="FRACTION",
                        help="also run the text arm on an inductive split holding out this share "
                             "of the entities (0: not)")  # fmt: skip
    parser.add_argument("--merge-only", action="store_true", help="rebuild the results only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.merge_only:
        for name in args.datasets:
            record = run_dataset(name, args)
            record["command"] = " ".join(
                [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
            )
            path = args.out / name / "record.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2) + "\n")
            merge(args.out, args.results)  # after each dataset: a long run keeps what it has
    print(markdown(merge(args.out, args.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
