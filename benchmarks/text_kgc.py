"""Text-aware KG completion (issue 15): text-only, text + graph, KGE-only and the hybrids, one table.

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/text_kgc.py [--datasets wn18rr fb15k-237] \
        [--budget small|full] [--seeds 0 1 2] [--out runs/text_kgc] [--threads 1] [--quick] \
        [--merge-only]

Per dataset and seed (``--seeds``, default 0 1 2):

1. KGE-only: the shipped ComplEx config (``configs/<dataset>/complex.yaml``), ``--kge-epochs`` epochs
   at the small budget (the config's 200 with early stopping at ``full``), with the run's seed.
2. The text arms of ``configs/tasks/text_kgc_<dataset>.yaml`` (``text``, ``text_graph``) with
   ``hybrid.kge_run`` pointing at that seed's KGE run: every evaluation ranks the same triples with
   the text model, the KGE model alone and the ensemble (weight chosen on validation), all through
   the same filtered evaluator (both sides, filter = train + valid + test, realistic ties).

The table's rows: the untrained text model, text, text + graph, KGE-only, hybrid (text + KGE), hybrid
(text + graph + KGE): mean ± std over seeds of filtered MRR / Hits@1,3,10 on the evaluated test
triples, MRR on all test triples with an entity unseen in training (WN18RR: 210, FB15k-237: 28; the
split ``test_unseen``); then paired bootstrap intervals of MRR differences (hybrid − KGE, hybrid −
text, ...: one resample of the test triples shared by the seeds) and the published anchors (full data, full
models: context, not a target at a CPU budget). ``--budget small`` (the default) fits both datasets
and three seeds in about an hour on a shared 2-core CPU: no LM trains (``model.query_encoder:
frozen``: the query is an adapter over the frozen MiniLM's cached encodings of head and relation
text, the keys a trained linear map of the entity table), a seeded sample of training triples, one
epoch, seeded samples of valid and test (the sizes are in the table); the KGE arm is the shipped
ComplEx at a smaller width for one epoch, and its own final evaluation runs on 100 triples (unread:
the table ranks it inside the text task with the full filter).
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

from gnnlm.train.variants import summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

DATASETS = {
    "wn18rr": {
        "kge_config": ROOT / "configs" / "wn18rr" / "complex.yaml",
        "text_config": ROOT / "configs" / "tasks" / "text_kgc_wn18rr.yaml",
        "small": ["data.max_train=40000", "data.max_valid=300", "data.max_test=500"],
        "small_kge": ["model.embedding_dim=50"],
        "kge_epochs": 1,
        "stronger_kge_epochs": 1,
        "anchors": {"SimKGC": 0.666, "RotatE": 0.476, "CompGCN": 0.479, "NBFNet": 0.551},
    },
    "fb15k-237": {
        "kge_config": ROOT / "configs" / "fb15k-237" / "complex.yaml",
        "text_config": ROOT / "configs" / "tasks" / "text_kgc_fb15k237.yaml",
        "small": ["data.max_train=40000", "data.max_valid=300", "data.max_test=500"],
        "small_kge": ["model.embedding_dim=50"],
        "kge_epochs": 1,
        "stronger_kge_epochs": 2,
        "anchors": {"SimKGC": 0.336, "RotatE": 0.338, "CompGCN": 0.355, "NBFNet": 0.415},
    },
}

#: the CPU budget of the text arms, on top of each dataset's sample sizes: no LM trains (frozen keys
#: through a trained linear map, queries through the adapter over the frozen LM's encodings of head
#: and relation text), a one-layer graph tower without dropout (it runs over the whole training graph
#: at every step), one epoch at batch 512. lr and temperature chosen on WN18RR's validation sample.
SMALL_TEXT = [
    "model.key_encoder=frozen",
    "model.query_encoder=frozen",
    "model.graph_channels=32",
    "model.graph_layers=1",
    "model.graph_dropout=0.0",
    "training.epochs=1",
    "training.batch_size=512",
    "training.warmup_steps=10",
    "training.lr=1.0e-2",
    "training.param_groups.gates.lr=5.0e-2",
    "training.log_steps=10",
    "evaluation.batch_size=256",
]
QUICK_TEXT = [
    "dataset=umls",
    "model.lm=tiny-bert",
    "model.key_encoder=frozen",
    "model.query_encoder=frozen",
    "model.max_length=16",
    "model.graph_channels=16",
    "training.epochs=1",
    "training.batch_size=16",
    "training.warmup_steps=0",
    "data.max_train=64",
    "data.max_valid=32",
    "data.max_test=32",
]
ROWS = (
    ("text", "text", "text (bi-encoder)"),
    ("text_graph", "text", "text + graph tower"),
    ("text", "kge", "KGE only (ComplEx)"),
    ("text", "hybrid", "hybrid: text + KGE"),
    ("text_graph", "hybrid", "hybrid: text + graph + KGE"),
)
HEADLINE = ("mrr", "hits@1", "hits@3", "hits@10")


def _kge_graph(kg, sample: int):
    """``kg`` with its valid and test splits cut to ``sample`` triples each: the KGE run's own final
    evaluation (which the table does not read: the text task ranks the KGE model with the full
    filter) then costs seconds, not the minutes of a full split on a shared CPU."""
    from gnnlm.data import KnowledgeGraph

    splits = {"train": kg.train, "valid": kg.valid[:sample], "test": kg.test[:sample]}
    return KnowledgeGraph(
        kg.entities, kg.relations, splits, name=kg.name, node_types=kg.node_types,
        entity_type=kg.entity_type, entity_text=kg.entity_text, relation_text=kg.relation_text,
        extra=dict(kg.extra),
    )  # fmt: skip


def _fit(config, run_dir: Path, data, args: argparse.Namespace) -> dict:
    """Train one run (or read a finished one back with ``--resume``); its ``metrics.json``."""
    from gnnlm.train import Trainer

    done = run_dir / "metrics.json"
    if args.resume and done.is_file():
        args.read_back = getattr(args, "read_back", 0) + 1
    else:
        Trainer(config, run_dir=run_dir, data=data, quiet=args.quiet).fit(overwrite=True)
    return json.loads(done.read_text())


def _untrained(config, kg) -> dict:
    """The text arm's test metrics before any step: with the frozen LM and a fresh adapter, the
    cosine of the pretrained encodings of the head's and the candidate's texts."""
    from gnnlm.tasks.text_link_prediction.task import TextLinkPredictionTask

    task = TextLinkPredictionTask(config.variant("text", config.seed), data=kg)
    task.validate()
    task.setup()
    model = task.build_model()
    model.eval()
    with torch.no_grad():
        test = task.evaluate(model, "test")
    return {m: test[m] for m in HEADLINE}


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    from gnnlm.data import load_dataset
    from gnnlm.tasks.link_prediction.config import LinkPredictionConfig
    from gnnlm.tasks.loading import load_config

    spec, out = DATASETS[name], args.out / name
    start = time.perf_counter()
    args.read_back = 0
    load = os.getloadavg()
    kg = load_dataset("umls" if args.quick else name)
    seeds = list(args.seeds)
    # 1. KGE-only: the shipped config, few epochs at the small budget, one run per seed
    epochs = args.kge_epochs or (
        1 if args.quick else spec["kge_epochs"] if args.budget == "small" else None
    )
    kge_overrides = ["evaluation.frequency=0"] if epochs else []
    kge_overrides += ([f"training.epochs={epochs}"] if epochs else []) + list(args.kge_set)
    if args.budget == "small" and not args.quick:
        kge_overrides += spec["small_kge"]
    kge_config_path = (
        ROOT / "configs" / "umls" / "complex.yaml" if args.quick else spec["kge_config"]
    )
    kge_kg = _kge_graph(kg, 100) if args.budget == "small" else kg
    kge_runs = {}
    for seed in seeds:
        config = LinkPredictionConfig.load(kge_config_path, [*kge_overrides, f"seed={seed}"])
        kge_runs[seed] = _fit(config, out / "kge" / f"seed-{seed}", kge_kg, args)
    # 2. the text arms, each also ranking with its seed's KGE run and the ensemble
    overrides = (
        list(QUICK_TEXT) if args.quick
        else spec["small"] + SMALL_TEXT if args.budget == "small" else []
    )  # fmt: skip
    overrides += list(args.set)
    runs: dict[str, dict[int, dict]] = {"text": {}, "text_graph": {}}
    for seed in seeds:
        config = load_config(
            spec["text_config"], [*overrides, f"hybrid.kge_run={out / 'kge' / f'seed-{seed}'}"]
        )
        for arm in runs:
            single = config.variant(arm, seed)
            runs[arm][seed] = _fit(single, out / "text" / arm / f"seed-{seed}", kg, args)
    untrained = _untrained(load_config(spec["text_config"], overrides), kg)
    rows = []
    for arm, part, label in ROWS:
        per_seed = [runs[arm][s]["test"] if part == "text" else runs[arm][s]["test"][part]
                    for s in seeds]  # fmt: skip
        whole = runs[arm][seeds[0]].get("test_unseen")  # its count is the split's, every part
        unseen = [runs[arm][s].get("test_unseen") for s in seeds]
        unseen = [u if u is None or part == "text" else u[part] for u in unseen]
        rows.append({
            "row": label, "arm": arm, "part": part,
            **{m: summarize([t[m] for t in per_seed]) for m in HEADLINE},
            "unseen_mrr": summarize([u["mrr"] for u in unseen]) if unseen[0] else None,
            "unseen_triples": whole["num_triples"] if whole else 0,
            "weights": [t.get("weight") for t in per_seed] if part == "hybrid" else None,
            # a hybrid costs both trainings
            "train_seconds": summarize([
                (kge_runs[s]["train_seconds"] if part != "text" else 0.0)
                + (runs[arm][s]["train_seconds"] if part != "kge" else 0.0)
                for s in seeds
            ]),
        })  # fmt: skip
    inductive = _inductive(args, spec, overrides, out, kg) if args.inductive else None
    stronger = _stronger_kge(args, spec, overrides, out, kg) if args.stronger_kge else None
    text_run = runs["text"][seeds[0]]
    return {
        "inductive": inductive,
        "stronger_kge": stronger,
        "dataset": name if not args.quick else "umls (quick)",
        "budget": "quick" if args.quick else args.budget,
        "seeds": seeds,
        "text_overrides": overrides,
        "kge_config": str(kge_config_path.relative_to(ROOT)),
        "kge_overrides": kge_overrides,
        "test_triples": text_run["test"]["num_triples"],
        "test_triples_in_split": len(kg.test),
        "train_triples": text_run["counts"]["train_triples"],
        "train_triples_in_split": len(kg.train),
        "valid_triples": text_run["valid"]["num_triples"],
        "untrained_text": untrained,
        "differences": _differences(runs, seeds),
        "hybrid_curves": {
            arm: {s: r[s]["valid"].get("hybrid_curve") for s in seeds} for arm, r in runs.items()
        },  # fmt: skip
        "gates": {s: _gates(out / "text" / "text_graph" / f"seed-{s}") for s in seeds},
        "rows": rows,
        "anchors": spec["anchors"],
        # with --resume, runs read back cost nothing here: the wall clock is then not the budget's
        "wall_seconds": time.perf_counter() - start,
        "runs_read_back": args.read_back,
        "trained_wall_seconds": _trained_wall(out, args),
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "eval_seconds": {arm: {s: r[s]["eval_seconds"] for s in seeds} for arm, r in runs.items()},
        # training + evaluation of every run (KGE and text), read from their metrics
        "compute_seconds": sum(
            m["train_seconds"] + sum((m.get("eval_seconds") or {}).values())
            for m in [*kge_runs.values(), *(r[s] for r in runs.values() for s in seeds)]
        ),
    }


#: the paired differences reported: (label, (arm, part), (arm, part)).
DIFFERENCES = (
    ("hybrid (text + KGE) − KGE", ("text", "hybrid"), ("text", "kge")),
    ("hybrid (text + KGE) − text", ("text", "hybrid"), ("text", "text")),
    ("hybrid (text + graph + KGE) − KGE", ("text_graph", "hybrid"), ("text", "kge")),
    (
        "hybrid (text + graph + KGE) − text + graph",
        ("text_graph", "hybrid"),
        ("text_graph", "text"),
    ),
    ("text + graph − text", ("text_graph", "text"), ("text", "text")),
)


def _differences(runs: dict[str, dict[int, dict]], seeds: list[int]) -> list[dict]:
    """Test MRR differences with a paired bootstrap 95% interval: test triples resampled within
    each seed (both models of a seed ranked the same triples), averaged over the seeds."""
    from gnnlm.train.variants import paired_bootstrap

    def outcomes(arm: str, part: str) -> list[list[float]]:
        tests = [runs[arm][s]["test"] for s in seeds]
        return [(t if part == "text" else t[part])["per_triple_rr"] for t in tests]

    out = []
    for label, a, b in DIFFERENCES:
        out.append({"label": label, **paired_bootstrap(outcomes(*a), outcomes(*b))})
    return out


def _inductive(args: argparse.Namespace, spec: dict, overrides: list[str], out: Path, kg) -> dict:
    """The text arm on an inductive split (``data.inductive_fraction``): test triples touch an
    entity that no training triple has; no KGE (it has no vector for such an entity)."""
    from gnnlm.tasks.loading import load_config

    extra = [o for o in overrides if not o.startswith("hybrid.")]
    extra += [f"data.inductive_fraction={args.inductive}", "data.inductive_seed=0"]
    config = load_config(spec["text_config"], extra)
    single = config.variant("text", args.seeds[0])
    metrics = _fit(single, out / "inductive", kg, args)
    test = metrics["test"]
    return {
        "fraction": args.inductive,
        **{m: test[m] for m in HEADLINE},
        "test_triples": test["num_triples"],
        "counts": metrics["counts"],
        "train_seconds": metrics["train_seconds"],
    }


def _trained_wall(out: Path, args: argparse.Namespace) -> float | None:
    """The wall clock of the invocation that trained this dataset's table runs: this one's, or with
    ``--resume`` that of the previous record when it read nothing back (else unknown)."""
    previous = out / "record.json"
    if not args.read_back:
        return None  # this invocation's own wall_seconds
    if previous.is_file():
        old = json.loads(previous.read_text())
        if not old.get("runs_read_back"):
            return old.get("wall_seconds")
        return old.get("trained_wall_seconds")
    return None


def _stronger_kge(
    args: argparse.Namespace, spec: dict, overrides: list[str], out: Path, kg
) -> dict:
    """A check of the first seed against a stronger KGE arm: the shipped ComplEx at its own width
    (200) for ``spec["stronger_kge_epochs"]`` epochs, and both text arms again with it as the
    hybrids' KGE run (the text models train exactly as in the table; only the KGE differs)."""
    from gnnlm.tasks.link_prediction.config import LinkPredictionConfig
    from gnnlm.tasks.loading import load_config
    from gnnlm.train.variants import paired_bootstrap

    seed, root = args.seeds[0], out / "stronger_kge"
    kge_overrides = [
        "evaluation.frequency=0", f"training.epochs={spec['stronger_kge_epochs']}", f"seed={seed}",
        *args.kge_set,
    ]  # fmt: skip
    path = ROOT / "configs" / "umls" / "complex.yaml" if args.quick else spec["kge_config"]
    kge = _fit(
        LinkPredictionConfig.load(path, kge_overrides), root / "kge", _kge_graph(kg, 100),
        args,
    )  # fmt: skip
    config = load_config(spec["text_config"], [*overrides, f"hybrid.kge_run={root / 'kge'}"])
    record: dict = {
        "seed": seed,
        "kge_overrides": kge_overrides,
        "kge_train_seconds": kge["train_seconds"],
    }
    for arm in ("text", "text_graph"):
        test = _fit(config.variant(arm, seed), root / "text" / arm, kg, args)["test"]
        record[arm] = {
            "text": test["mrr"], "kge": test["kge"]["mrr"], "hybrid": test["hybrid"]["mrr"],
            "weight": test["hybrid"]["weight"],
            "hybrid_minus_kge": paired_bootstrap(
                [test["hybrid"]["per_triple_rr"]], [test["kge"]["per_triple_rr"]]
            ),
            "hybrid_minus_text": paired_bootstrap(
                [test["hybrid"]["per_triple_rr"]], [test["per_triple_rr"]]
            ),
        }  # fmt: skip
    return record


def _gates(run_dir: Path) -> dict[str, float] | None:
    """``tanh`` of the trained graph gates (key, query) of a text + graph run's saved model."""
    from safetensors.torch import load_file

    path = run_dir / "model" / "model.safetensors"
    if not path.is_file():
        return None
    tensors = load_file(str(path))
    return {
        side: float(torch.tanh(tensors[f"graph.{side}_gate"]))
        for side in ("key", "query")
        if f"graph.{side}_gate" in tensors
    }


def _pm(summary: dict) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def markdown(records: list[dict]) -> str:
    lines = ["## Text-aware KG completion (issue 15)", ""]
    for rec in records:
        anchors = ", ".join(f"{k} {v:.3f}" for k, v in rec["anchors"].items())
        seeds = rec["seeds"]
        lines += [
            f"### {rec['dataset']} (budget: {rec['budget']})",
            "",
            f"Seeds {', '.join(map(str, seeds))} (mean ± sample std over seeds). Text arms trained "
            f"on {rec['train_triples']:,} of {rec['train_triples_in_split']:,} training triples "
            f"(x2 with inverses); test: {rec['test_triples']:,} of "
            f"{rec['test_triples_in_split']:,} triples (seeded sample, the same for every arm and "
            f"seed), ranked against all entities, both sides, filtered by train + valid + test, "
            f"realistic ties; the ensemble weight chosen per seed on {rec['valid_triples']:,} "
            f"valid triples. Text overrides: `{' '.join(rec['text_overrides'])}`. KGE: "
            f"`{rec['kge_config']}` with `{' '.join(rec['kge_overrides'])}`.",
            "",
            "| model | MRR | Hits@1 | Hits@3 | Hits@10 | MRR, all test triples with an unseen "
            "entity (n) | text weight w per seed | train s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        u = rec["untrained_text"]
        lines.append(
            f"| text, untrained (no step) | {u['mrr']:.3f} | {u['hits@1']:.3f} | "
            f"{u['hits@3']:.3f} | {u['hits@10']:.3f} | — | — | 0 |"
        )
        for r in rec["rows"]:
            weight = "—" if not r["weights"] else ", ".join(f"{w:g}" for w in r["weights"])
            unseen = (
                f"{_pm(r['unseen_mrr'])} ({r['unseen_triples']})"
                if r["unseen_triples"]
                else "— (0)"
            )
            lines.append(
                f"| {r['row']} | {_pm(r['mrr'])} | {_pm(r['hits@1'])} | {_pm(r['hits@3'])} | "
                f"{_pm(r['hits@10'])} | {unseen} | {weight} | {r['train_seconds']['mean']:.0f} |"
            )
        lines += [
            "",
            "Paired differences of test MRR (one resample of the test triples shared by the seeds, 10,000 "
            "rounds; the interval excludes 0: a difference, else a tie):",
            "",
            "| difference | MRR Δ | 95% CI |",
            "|---|---|---|",
        ]
        for d in rec["differences"]:
            lines.append(
                f"| {d['label']} | {d['mean']:+.3f} | [{d['low']:+.3f}, {d['high']:+.3f}] |"
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
        strong = rec.get("stronger_kge")
        if strong:
            lines += [
                "",
                f"Check against a stronger KGE arm (seed {strong['seed']}, one run): "
                f"ComplEx with `{' '.join(strong['kge_overrides'])}` (width 200, "
                f"{strong['kge_train_seconds']:.0f} s of training), the text arms as above:",
            ]
            for arm, label in (("text", "text + KGE"), ("text_graph", "text + graph + KGE")):
                r = strong[arm]
                d, t = r["hybrid_minus_kge"], r["hybrid_minus_text"]
                lines.append(
                    f"- {label}: text {r['text']:.3f}, KGE {r['kge']:.3f}, hybrid {r['hybrid']:.3f} "
                    f"(weight {r['weight']:g}); hybrid − KGE {d['mean']:+.3f} "
                    f"[{d['low']:+.3f}, {d['high']:+.3f}], hybrid − text {t['mean']:+.3f} "
                    f"[{t['low']:+.3f}, {t['high']:+.3f}]."
                )  # fmt: skip
        gates = [
            f"seed {s}: " + ", ".join(f"{k} {v:+.3f}" for k, v in g.items())
            for s, g in (rec.get("gates") or {}).items()
            if g
        ]
        load = rec.get("load_average_at_start")
        lines += [
            "",
            "Graph tower gates after training (tanh; 0 = text only): "
            + ("; ".join(gates) or "—")
            + ".",
            f"Published test MRR (full data and training): {anchors}.",
            (f"Wall clock: {rec['wall_seconds'] / 60:.1f} min" if not rec.get("runs_read_back")
             else f"Wall clock of the invocation that trained the table's runs: "
             f"{rec['trained_wall_seconds'] / 60:.1f} min" if rec.get("trained_wall_seconds")
             else f"Wall clock: not measured ({rec['runs_read_back']} finished runs read back by "
             "--resume)")
            + f"; training + evaluation of the runs: {rec['compute_seconds'] / 60:.1f} min"
            + (f"; 1-min load average {load[0]:.1f} at the start, "
               f"{rec['load_average_at_end'][0]:.1f} at the end (a 2-core machine shared with "
               "other jobs)." if load else "."),
            "",
        ]  # fmt: skip
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
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
    parser.add_argument("--stronger-kge", action="store_true",
                        help="also check the first seed against the shipped ComplEx at width 200 "
                             "(1 epoch on WN18RR, 2 on FB15k-237) as the KGE arm")  # fmt: skip
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
