"""Negative-sampling training throughput against PyKEEN and PyG, and the MRR of sparse vs dense updates.

    pip install -e ".[bench]"        # PyKEEN (PyG is a core dependency)
    python benchmarks/throughput.py                       # throughput + mrr (+ kvsall if present)
    python benchmarks/throughput.py --only throughput --models complex distmult --steps 30
    python benchmarks/throughput.py --only mrr            # sparse vs dense final MRR on a small KG
    python benchmarks/throughput.py --only kvsall         # item 3, benchmarks/kvsall.py's measure()

**throughput** (issue 9, items 1-2): FB15k-237 from ``$GNNLM_DATA_DIR``, ``d = 200`` (complex models:
200 complex coordinates, 400 reals, in every library), batch 1024, 1 negative per positive, one
thread. Every arm does the same work per step: draw one corrupted head-or-tail per positive, score the
positives and negatives, the loss, backward, the optimizer step, the library's post-step constraint.

* ``ours-dense``: :class:`~gnnlm.train.loops.SLCWALoop` with ``sparse=False`` and ``torch.optim.Adam``
  (whole tables, dense gradients, exact Adam; what ``training.sparse_updates`` auto runs for Adam).
* ``ours-sparse``: ``training.sparse_updates: true``: row-sparse gradients and
  :class:`~gnnlm.train.sparse.LazyAdam` (lazy Adam, see :mod:`gnnlm.train.sparse`; with
  ``--optimizer adagrad`` :class:`~gnnlm.train.sparse.RowAdagrad`, exact, auto's choice there).
  Both arms score with the interaction's ``score_pairs`` kernel.
* ``pykeen``: a hand loop over PyKEEN's model, doing what ``SLCWATrainingLoop._process_batch_static``
  does (``BasicNegativeSampler``, ``model.score_hrt`` on positives and negatives,
  ``loss.process_slcwa_scores``, ``collect_regularization_term``) plus ``optimizer.step()`` and
  ``model.post_parameter_update()`` as its ``train`` does. A hand loop, not ``train()``, so that the
  arms are timed step by step on the same batches, without PyKEEN's epoch bookkeeping, progress bars
  and stopper. Regularisers are off (``regularizer=None``) and DistMult's default entity
  normalisation too, as in the other libraries.
* ``pyg``: ``torch_geometric.nn.kge`` models with ``model.loss(h, r, t)`` (its own sampler, 1 negative)
  and ``torch.optim.Adam``, as in PyG's ``examples/kge_fb15k_237.py``.
* ``pyg-sparse``: the same with ``sparse=True`` embeddings and ``torch.optim.SparseAdam`` (PyG's own
  sparse option, for reference; not what its example runs).

Losses follow PyG's built-in ones so that every library computes the same loss: margin ranking
(margin 1) for TransE, binary cross-entropy with logits averaged over positives and negatives for
DistMult/ComplEx/RotatE. Adam with ``lr = 1e-3`` everywhere (``--optimizer adagrad`` runs Adagrad, whose
sparse form is exact, in every arm; ``pyg-sparse`` then uses sparse ``Adagrad``). Each arm builds its
optimizer as its library's training loop does: ours-dense as the trainer does (torch's optimizer with
``fused=True``, the same update in one pass), PyKEEN and PyG with torch's default (``fused`` off; pass it
to them and their optimizer step would shrink the same way). Known differences:
TransE's unit-norm entities are a post-step projection in ours and PyKEEN's, a normalisation inside
the score in PyG's; RotatE's relations are phases in ours and PyG's, unit complex numbers projected
after each step in PyKEEN's.

After ``--warmup`` steps of each arm, ``--steps`` steps are timed round robin (one step of each arm in
turn, so that all arms see the same load on a shared machine); triples/s is the batch size over the
median step time (the 10th percentile is recorded too). ``--clock cpu`` times the thread's CPU time
instead of the wall clock (written to the ``throughput_cpu`` section): on a machine shared with
other jobs it leaves out the time the core ran something else (caches and memory bandwidth are
still shared). The median forward (sampling, scoring, loss),
backward and optimizer (step + constraint) times are recorded as well (item 2).

**mrr** ("equal final MRR after the same epochs"): each model is trained with the
:class:`~gnnlm.train.Trainer` on a small KG (``--mrr-dataset``, UMLS by default) twice per seed
(``--seeds``, 3 by default), with ``training.sparse_updates`` false and true, same seed and epochs;
the test MRRs of every seed and their mean and standard deviation are reported.
Batches are small (``--mrr-batch-size 16``, 1 negative: 64 entity ids for UMLS's 135 entities), so
that a batch touches a minority of the rows and lazy Adam really differs from Adam (on a table this
small auto would stay dense for speed; the comparison is about the optimizer's semantics).

**kvsall** (item 3): runs ``measure()`` from ``benchmarks/kvsall.py`` when that file exists.

Results: a table on stdout and ``benchmarks/results/throughput.json`` (atomic write). A section that
is measured again replaces the stored one, which moves to the JSON's ``history`` list (with the
``--note`` given, and its machine record), so earlier runs stay comparable.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gnnlm.utils.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("transe", "distmult", "complex", "rotate")
ARMS = ("ours-dense", "ours-sparse", "pykeen", "pyg", "pyg-sparse")
PEERS = ("pykeen", "pyg", "pyg-sparse")


#: the step timer: wall clock (default) or this thread's CPU time (``--clock cpu``: one thread per
#: arm, so CPU time is the work done, without the time other processes held the core)
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
_clock = CLOCKS["wall"]


# -- one arm: a function ``step(batch [B, 3]) -> {"forward": s, "backward": s, "optimizer": s}`` ----
def _timed(loss_fn, optimizer, post=None):
    def step(batch):
        t0 = _clock()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(batch)
        t1 = _clock()
        loss.backward()
        t2 = _clock()
        optimizer.step()
        if post is not None:
            post()
        t3 = _clock()
        return {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2}

    return step


def ours(model_name: str, kg, dim: int, sparse: bool, optimizer: str, lr: float):
    from gnnlm.kge import build_kge_model
    from gnnlm.train.loops import SLCWALoop
    from gnnlm.train.losses import BCELoss, MarginRankingLoss
    from gnnlm.train.negative_sampling import UniformNegativeSampler
    from gnnlm.train.sparse import LazyAdam, RowAdagrad

    kwargs = {"p": 1} if model_name == "transe" else {}
    model = build_kge_model(
        model_name, kg.num_entities, kg.num_relations, dim, interaction_kwargs=kwargs
    )
    loss = MarginRankingLoss(1.0) if model_name == "transe" else BCELoss()
    sampler = UniformNegativeSampler(kg.train, kg.num_entities, num_negatives=1)
    loop = SLCWALoop(model, kg.train, sampler, loss, batch_size=1 << 30, sparse=sparse)
    if sparse:
        opt = (LazyAdam if optimizer == "adam" else RowAdagrad)(model.parameters(), lr=lr)
    else:  # what the trainer builds: torch's optimizer with its fused kernel (make_optimizer)
        from gnnlm.train.config import TrainingConfig
        from gnnlm.train.sparse import make_optimizer

        training = TrainingConfig(optimizer=optimizer, lr=lr)
        opt = make_optimizer(training, model.parameters(), sparse=False)
    generator = torch.Generator().manual_seed(0)

    def loss_fn(batch):
        # SLCWALoop draws indices into its triples: hand it the batch as its own triples
        loop.triples = batch
        return loop.batch_loss(torch.arange(len(batch)), generator)

    return _timed(loss_fn, opt, model.post_step)


def pykeen_arm(model_name: str, kg, dim: int, optimizer: str, lr: float):
    from pykeen import losses, models
    from pykeen.sampling import BasicNegativeSampler
    from pykeen.triples import CoreTriplesFactory

    factory = CoreTriplesFactory.create(kg.train, kg.num_entities, kg.num_relations)
    cls = {"transe": models.TransE, "distmult": models.DistMult, "complex": models.ComplEx,
           "rotate": models.RotatE}[model_name]  # fmt: skip
    kwargs: dict[str, Any] = {"embedding_dim": dim, "random_seed": 0}
    if model_name == "transe":
        kwargs["scoring_fct_norm"] = 1
        loss = losses.MarginRankingLoss(margin=1.0)
    else:
        loss = losses.BCEWithLogitsLoss()
    if model_name in ("distmult", "complex"):
        kwargs["regularizer"] = None
    if model_name == "distmult":
        kwargs["entity_constrainer"] = None
    model = cls(triples_factory=factory, loss=loss, **kwargs)
    sampler = BasicNegativeSampler(
        mapped_triples=kg.train, num_entities=kg.num_entities, num_negs_per_pos=1
    )
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.Adagrad)(
        model.parameters(), lr=lr
    )

    def loss_fn(batch):
        negatives, _ = sampler.sample(batch)  # [B, 1, 3]
        pos = model.score_hrt(batch)  # [B, 1]
        neg = model.score_hrt(negatives.view(-1, 3)).view(*negatives.shape[:-1])  # [B, 1]
        return (
            model.loss.process_slcwa_scores(
                positive_scores=pos, negative_scores=neg, num_entities=kg.num_entities
            )
            + model.collect_regularization_term()
        )

    return _timed(loss_fn, opt, model.post_parameter_update)


def pyg_arm(model_name: str, kg, dim: int, sparse: bool, optimizer: str, lr: float):
    from torch_geometric.nn import kge

    cls = {"transe": kge.TransE, "distmult": kge.DistMult, "complex": kge.ComplEx,
           "rotate": kge.RotatE}[model_name]  # fmt: skip
    kwargs = {"p_norm": 1.0} if model_name == "transe" else {}
    model = cls(kg.num_entities, kg.num_relations, dim, sparse=sparse, **kwargs)
    if optimizer == "adam":
        opt_cls = torch.optim.SparseAdam if sparse else torch.optim.Adam
    else:
        opt_cls = torch.optim.Adagrad
    opt = opt_cls(list(model.parameters()), lr=lr)

    def loss_fn(batch):
        return model.loss(batch[:, 0], batch[:, 1], batch[:, 2])

    return _timed(loss_fn, opt)


def make_arm(arm: str, model_name: str, kg, args) -> Callable:
    if arm.startswith("ours"):
        return ours(model_name, kg, args.dim, arm == "ours-sparse", args.optimizer, args.lr)
    if arm == "pykeen":
        return pykeen_arm(model_name, kg, args.dim, args.optimizer, args.lr)
    return pyg_arm(model_name, kg, args.dim, arm == "pyg-sparse", args.optimizer, args.lr)


def measure_throughput(args, kg) -> list[dict[str, Any]]:
    records = []
    order = torch.randperm(len(kg.train), generator=torch.Generator().manual_seed(0))
    batches = kg.train[order].split(args.batch_size)
    batches = [b for b in batches if len(b) == args.batch_size]
    for model_name in args.models:
        arms = {}
        for arm in args.arms:
            try:
                arms[arm] = make_arm(arm, model_name, kg, args)
            except ImportError as err:
                print(f"skip {arm}: {err} (pip install -e '.[bench]')", file=sys.stderr)
        # Round robin, one step of each arm in turn, so that every arm sees the same machine load;
        # the median step counts (and the 10th percentile, the step least disturbed by other work).
        for i in range(args.warmup):
            for step in arms.values():
                step(batches[i % len(batches)])
        times: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
        for i in range(args.warmup, args.warmup + args.steps):
            for arm, step in arms.items():
                times[arm].append(step(batches[i % len(batches)]))
        summary = {}
        for arm, steps in times.items():
            total = sorted(sum(s.values()) for s in steps)
            med = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
            summary[arm] = statistics.median(total)
            records.append({
                "model": model_name, "arm": arm,
                "triples_per_second": args.batch_size / summary[arm],
                "ms_per_step": 1e3 * summary[arm],
                "p10_ms_per_step": 1e3 * total[len(total) // 10],
                "forward_ms": 1e3 * med["forward"],
                "backward_ms": 1e3 * med["backward"],
                "optimizer_ms": 1e3 * med["optimizer"],
            })  # fmt: skip
        line = ", ".join(f"{a} {1e3 * t:.1f} ms" for a, t in summary.items())
        print(f"{model_name} (median step): {line}", flush=True)
    add_ratios(records)
    return records


def add_ratios(records: list[dict[str, Any]]) -> None:
    """``speedup_vs_<peer>`` and ``speedup_vs_best_peer`` on every record of our arms."""
    by_model: dict[str, dict[str, float]] = {}
    for r in records:
        by_model.setdefault(r["model"], {})[r["arm"]] = r["triples_per_second"]
    for r in records:
        if not r["arm"].startswith("ours"):
            continue
        speeds = by_model[r["model"]]
        peers = {p: speeds[p] for p in PEERS if p in speeds}
        for peer, value in peers.items():
            r[f"speedup_vs_{peer}"] = r["triples_per_second"] / value
        if peers:
            r["speedup_vs_best_peer"] = r["triples_per_second"] / max(peers.values())


def throughput_table(records: list[dict[str, Any]]) -> str:
    head = ("| model | arm | triples/s | ms/step | forward ms | backward ms | optimizer ms | "
            "x PyKEEN | x PyG | x best peer |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in records:
        ratio = [r.get(k) for k in ("speedup_vs_pykeen", "speedup_vs_pyg", "speedup_vs_best_peer")]
        cells = " | ".join(f"{x:.2f}" if x is not None else "-" for x in ratio)
        lines.append(
            f"| {r['model']} | {r['arm']} | {r['triples_per_second']:,.0f} | {r['ms_per_step']:.1f} | "
            f"{r['forward_ms']:.1f} | {r['backward_ms']:.1f} | {r['optimizer_ms']:.1f} | {cells} |"
        )
    return "\n".join(lines)


# -- final MRR, dense vs sparse ---------------------------------------------------------------------
MRR_SETUPS = {
    "transe": ["model.interaction_kwargs={p: 1}", "training.loss=margin",
               "training.loss_kwargs={margin: 1.0}"],
    "distmult": ["training.loss=bce"],
    "complex": ["training.loss=bce"],
    "rotate": ["model.interaction_kwargs={margin: 6.0}", "training.loss=softplus",
               "training.adversarial_temperature=1.0"],
}  # fmt: skip


def measure_mrr(args) -> list[dict[str, Any]]:
    from gnnlm.data import load_dataset
    from gnnlm.train import TrainConfig, Trainer
    from gnnlm.train.config import apply_overrides

    kg = load_dataset(args.mrr_dataset)
    records = []
    seeds = list(range(args.seeds))
    for model_name in args.models:
        base = [f"dataset={args.mrr_dataset}", f"model.interaction={model_name}",
                "model.embedding_dim=64", "training.loop=slcwa", "training.num_negatives=1",
                f"training.epochs={args.mrr_epochs}", f"training.batch_size={args.mrr_batch_size}",
                f"training.optimizer={args.optimizer}", "training.lr=0.01",
                "evaluation.frequency=0", *MRR_SETUPS[model_name]]  # fmt: skip
        row: dict[str, Any] = {"model": model_name, "dataset": args.mrr_dataset,
                               "epochs": args.mrr_epochs, "optimizer": args.optimizer,
                               "batch_size": args.mrr_batch_size, "num_negatives": 1,
                               # share of the entity ids a batch reads, of all entities
                               "ids_per_entity": 4 * args.mrr_batch_size / kg.num_entities}  # fmt: skip
        row["seeds"] = seeds
        for sparse in (False, True):
            key = "sparse" if sparse else "dense"
            mrrs, seconds = [], []
            for seed in seeds:
                overrides = [*base, f"training.sparse_updates={sparse}", f"seed={seed}"]
                result = Trainer(apply_overrides(TrainConfig(), overrides), kg=kg, quiet=True).fit()
                mrrs.append(result.metrics["test"]["mrr"])
                seconds.append(result.metrics["train_seconds"])
            row[f"{key}_mrrs"] = mrrs
            row[f"{key}_mrr"] = statistics.mean(mrrs)
            row[f"{key}_mrr_std"] = statistics.stdev(mrrs) if len(mrrs) > 1 else 0.0
            row[f"{key}_train_seconds"] = statistics.mean(seconds)
        print(f"{model_name}: MRR dense {_pm(row, 'dense')}, sparse {_pm(row, 'sparse')}",
              flush=True)  # fmt: skip
        records.append(row)
    return records


def _pm(row: dict[str, Any], key: str) -> str:
    """``mean ± std`` of a record's MRR (``key``: dense or sparse)."""
    return f"{row[f'{key}_mrr']:.4f} ± {row.get(f'{key}_mrr_std', 0.0):.4f}"


def mrr_table(records: list[dict[str, Any]]) -> str:
    lines = ["| model | dataset | epochs | optimizer | seeds | MRR dense | MRR sparse | "
             "train s dense | train s sparse |", "|" + "---|" * 9]  # fmt: skip
    for r in records:
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['epochs']} | {r['optimizer']} | "
            f"{len(r.get('seeds', [0]))} | {_pm(r, 'dense')} | {_pm(r, 'sparse')} | "
            f"{r['dense_train_seconds']:.1f} | {r['sparse_train_seconds']:.1f} |"
        )
    return "\n".join(lines)


# -- item 3: KvsAll GFLOP/s (benchmarks/kvsall.py, written separately) -------------------------------
def measure_kvsall(args) -> dict[str, Any] | None:
    """Run ``benchmarks/kvsall.py``'s ``measure()`` if the file exists (``None`` otherwise)."""
    path = ROOT / "benchmarks" / "kvsall.py"
    if not path.exists():
        print(f"skip kvsall: {path.relative_to(ROOT)} does not exist yet", file=sys.stderr)
        return None
    spec = importlib.util.spec_from_file_location("gnnlm_bench_kvsall", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "measure"):
        print(f"skip kvsall: {path.relative_to(ROOT)} has no measure()", file=sys.stderr)
        return None
    kwargs = (
        {"threads": args.threads}
        if "threads" in inspect.signature(module.measure).parameters
        else {}
    )
    result = module.measure(**kwargs)
    print(f"kvsall: {json.dumps(result)[:500]}")
    return result


def machine(args, load_before: tuple[float, float, float] | None) -> dict[str, Any]:
    """Where and when a section ran; other processes skew every absolute number (load averages)."""
    info = {
        "threads": args.threads, "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_1_5_15min": os.getloadavg(),
    }  # fmt: skip
    if load_before is not None:
        info["load_average_1_5_15min_before"] = load_before
    return info


def _retire(out: dict[str, Any], key: str, machine_key: str) -> None:
    """Move ``out[key]`` (and its machine record) to ``out["history"]`` before it is replaced."""
    if key not in out:
        return
    entry = {key: out.pop(key)}
    if machine_key in out:
        entry["machine"] = out.pop(machine_key)
    note = entry[key].get("note") if isinstance(entry[key], dict) else None
    note = note or entry.get("machine", {}).get("note")
    measured = entry.get("machine", {}).get("date", "?")
    entry["note"] = (
        note or f"{key} measured {measured}, replaced {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    out.setdefault("history", []).insert(0, entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=("throughput", "mrr", "kvsall"),
                        default=["throughput", "mrr", "kvsall"])  # fmt: skip
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--mrr-dataset", default="umls")
    parser.add_argument("--seeds", type=int, default=3, help="mrr: seeds per arm (mean ± std)")
    parser.add_argument("--note", default="", help="kept with this run's sections in the history")
    parser.add_argument("--mrr-epochs", type=int, default=20)
    parser.add_argument(
        "--mrr-batch-size", type=int, default=16, help="small, so that a batch touches few rows"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--clock", choices=tuple(CLOCKS), default="wall",
        help="throughput timer; cpu (thread CPU time, --threads 1 only) is written to the "
        "throughput_cpu section",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu times one thread: use --threads 1")
    global _clock
    _clock = CLOCKS[args.clock]
    section = "throughput" if args.clock == "wall" else "throughput_cpu"

    out: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "throughput" in args.only:
        from gnnlm.data import load_dataset

        kg = load_dataset(args.dataset)
        load_before = os.getloadavg()
        records = measure_throughput(args, kg)
        print(throughput_table(records))
        _retire(out, section, f"{section}_machine")
        out[section] = {
            "dataset": args.dataset, "dim": args.dim, "batch_size": args.batch_size,
            "num_negatives": 1, "optimizer": args.optimizer, "lr": args.lr,
            "steps": args.steps, "warmup": args.warmup, "clock": args.clock,
            "statistic": "median step time", "note": args.note, "records": records,
        }  # fmt: skip
        out[f"{section}_machine"] = machine(args, load_before)
    if "mrr" in args.only:
        load_before = os.getloadavg()
        records = measure_mrr(args)
        print(mrr_table(records))
        _retire(out, "mrr", "mrr_machine")
        out["mrr"] = records
        out["mrr_machine"] = {**machine(args, load_before), "note": args.note}
    if "kvsall" in args.only:
        result = measure_kvsall(args)
        if result is not None:
            out["kvsall"] = result
    out["machine"] = machine(args, None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
