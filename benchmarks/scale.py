"""KGs with millions of entities (issue 17): step time and memory when the entity count grows 10x.

    MALLOC_MMAP_THRESHOLD_=1048576 python benchmarks/scale.py    # 250k and 2.5M entities
    python benchmarks/scale.py --sizes 100000 1000000 --steps 10 --models transe

A synthetic KG with few triples (``--triples``, 200k; uniform random heads, relations and tails) and
``--sizes`` entities; the same model at every size (``--dim``: TransE d=32, RotatE d=16 complex = 32
reals, so that 2.5M entities fit next to the other workers' memory). Arms, built once and timed
round robin (one step of each in turn, so that all see the same machine load), ``--steps`` timed
steps after ``--warmup``:

* ``sparse``: sLCWA (batch ``--batch-size``, ``--negatives`` uniform negatives, softplus loss) with
  row-sparse updates (:mod:`gnnlm.train.sparse`, :class:`~gnnlm.train.sparse.RowAdagrad`): only the
  batch's rows are read and written.
* ``dense``: the same with the dense reference (whole-table gradient, ``torch.optim.Adagrad`` with
  its fused kernel): every step walks every row.
* ``memmap``: ``sparse`` with the tables in memory-mapped files (:mod:`gnnlm.kge.mmap`), in
  ``--mmap-dir`` (a temporary folder by default).

Per arm: median step time (and the 10th percentile), the tensors it keeps (tables + optimizer
state, MiB), and a step's *transient* peak: the rise of the process's peak RSS (``VmHWM``, reset
through ``/proc/self/clear_refs`` before each arm's steps) over its RSS before them. A fixed glibc
mmap threshold (``MALLOC_MMAP_THRESHOLD_``, recorded) makes every block over 1 MiB a fresh mapping, so
a phase's allocations show instead of reusing memory an earlier phase freed. ``ratio`` is the
largest size's median over the smallest's.

Then, at every size, the filtered evaluation of ``--test-triples`` test triples on both sides
against every entity (:class:`~gnnlm.eval.RankBasedEvaluator`, default budget: entity slices when
fewer than 16 rows of scores fit in 2^23 floats and the interaction is a matrix product; the
``rows`` arm forces whole rows, ``sliced`` forces slices), and one 1-N
(KvsAll) step of ``--kvsall-batch`` queries with DistMult scored in bounded candidate slices
(:func:`~gnnlm.train.kvsall_fused.sliced_side_loss`, 2^23-float slices); the unsliced fused step
would hold ``batch x N`` floats (reported, and run only where it stays under ``--max-dense-mib``).

Results: a table on stdout, ``benchmarks/results/scale.json`` and ``.md`` (atomic writes), with the
load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_results  # noqa: E402

from gnnlm.data.filter_index import FilterIndex  # noqa: E402
from gnnlm.eval import RankBasedEvaluator  # noqa: E402
from gnnlm.kge import build_kge_model, resolve_interaction  # noqa: E402
from gnnlm.kge.mmap import MemmapRepresentation  # noqa: E402
from gnnlm.train.kvsall_fused import (  # noqa: E402
    KvsAllTargets,
    fused_kvsall_loss,
    sliced_side_loss,
)
from gnnlm.train.loops import SLCWALoop  # noqa: E402
from gnnlm.train.losses import BCELoss, SoftplusLoss  # noqa: E402
from gnnlm.train.negative_sampling import UniformNegativeSampler  # noqa: E402
from gnnlm.train.sparse import RowAdagrad  # noqa: E402
from gnnlm.utils.memory import proc_status_bytes, reset_peak_rss  # noqa: E402

MIB = 2**20
DIMS = {"transe": 32, "rotate": 16}


# -- memory ----------------------------------------------------------------------------------------
#: the process's peak RSS over all resets (``clear_refs`` also resets ``getrusage``'s maximum).
_PEAK = {"bytes": 0}


def process_peak() -> int:
    """The highest RSS of this process so far, in bytes."""
    _PEAK["bytes"] = max(_PEAK["bytes"], proc_status_bytes("VmHWM"))
    return _PEAK["bytes"]


def reset_peak() -> int:
    """Reset the peak RSS to the current RSS (``clear_refs``); returns the current RSS."""
    process_peak()
    if not reset_peak_rss():
        raise OSError("cannot reset the peak RSS: /proc/self/clear_refs is not writable")
    return proc_status_bytes("VmRSS")


def peak_rise(run: Callable[[], Any]) -> tuple[Any, int]:
    """``(run(), bytes by which the peak RSS rose above the RSS before it)``."""
    before = reset_peak()
    out = run()
    return out, max(0, proc_status_bytes("VmHWM") - before)


def tensor_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes of the model's parameters and the optimizer's state tensors."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if optimizer is not None:
        for state in optimizer.state.values():
            total += sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
    return total


# -- data and arms ---------------------------------------------------------------------------------
def synthetic_triples(num_entities: int, num: int, num_relations: int, seed: int) -> torch.Tensor:
    """``[num, 3]`` uniformly random (h, r, t) triples."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        [
            torch.randint(num_entities, (num,), generator=g),
            torch.randint(num_relations, (num,), generator=g),
            torch.randint(num_entities, (num,), generator=g),
        ],
        dim=1,
    )


class Arm:
    """One model training with one update path; :meth:`step` runs one sLCWA step."""

    def __init__(self, name: str, model_name: str, size: int, train: torch.Tensor, args) -> None:
        self.name, self.model_name, self.size = name, model_name, size
        inter = resolve_interaction(model_name, DIMS[model_name])
        torch.manual_seed(0)
        representation = None
        if name == "memmap":
            directory = Path(args.mmap_dir) / f"{model_name}-{size}"
            representation = MemmapRepresentation.for_interaction(
                inter, size, args.relations, DIMS[model_name], directory=directory
            )
        self.model = build_kge_model(
            inter, size, args.relations, DIMS[model_name], representation=representation
        )
        sampler = UniformNegativeSampler(train, size, num_negatives=args.negatives)
        sparse = name != "dense"
        self.loop = SLCWALoop(
            self.model, train, sampler, SoftplusLoss(), batch_size=args.batch_size, sparse=sparse
        )
        params = self.model.parameters()
        self.optimizer = (
            RowAdagrad(params, lr=0.1)
            if sparse
            else torch.optim.Adagrad(params, lr=0.1, fused=True)
        )
        self.generator = torch.Generator().manual_seed(1)
        self.times: list[float] = []
        self.peak = 0

    def step(self) -> float:
        indices = torch.randint(
            len(self.loop.triples), (self.loop.batch_size,), generator=self.generator
        )
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loop.batch_loss(indices, self.generator)
        loss.backward()
        self.optimizer.step()
        self.model.post_step()
        seconds = time.perf_counter() - start
        # free the gradient now: the next step's peak then counts the gradient it allocates
        self.optimizer.zero_grad(set_to_none=True)
        return seconds


def measure_training(args, data: dict[int, dict]) -> list[dict[str, Any]]:
    """Every model in turn (memory: one model's arms at a time), its arms round robin."""
    rows = []
    for model in args.models:
        arms = [Arm(name, model, size, data[size]["train"], args)
                for size in args.sizes for name in args.arms]  # fmt: skip
        rows += _time_arms(arms, args)
        del arms
    return rows


def _time_arms(arms: list[Arm], args) -> list[dict[str, Any]]:
    for arm in arms:
        for _ in range(args.warmup):  # also allocates the optimizer state
            arm.step()
    for _ in range(args.steps):
        for arm in arms:
            seconds, rise = peak_rise(arm.step)
            arm.times.append(seconds)
            arm.peak = max(arm.peak, rise)
    rows = []
    for arm in arms:
        times = sorted(arm.times)
        rows.append({
            "model": arm.model_name, "arm": arm.name, "entities": arm.size,
            "median_ms": 1000 * statistics.median(times),
            "p10_ms": 1000 * times[len(times) // 10],
            "kept_mib": tensor_bytes(arm.model, arm.optimizer) / MIB,
            "step_peak_mib": arm.peak / MIB,
        })  # fmt: skip
    return rows


def measure_evaluation(args, data: dict[int, dict]) -> list[dict[str, Any]]:
    rows = []
    for size, model_name in [(s, m) for s in args.sizes for m in args.eval_models]:
        torch.manual_seed(0)
        model = build_kge_model(model_name, size, args.relations, DIMS["transe"])
        d = data[size]
        index = FilterIndex(torch.cat([d["train"], d["test"]]), size, args.relations)
        for name, sliced in (("rows", False), ("sliced", True)):
            evaluator = RankBasedEvaluator(index, slice_entities=sliced)
            start = time.perf_counter()
            ranks, rise = peak_rise(lambda ev=evaluator, m=model, t=d["test"]: ev.ranks(m, t))
            rows.append({
                "entities": size, "model": model_name, "evaluator": name,
                "sliced": evaluator.sliced(model, size), "seconds": time.perf_counter() - start,
                "peak_mib": rise / MIB, "mean_rank": float(torch.cat(list(ranks.values())).mean()),
            })  # fmt: skip
    return rows


def _kvsall_step(model, anchors, relations, targets, sliced: bool) -> None:
    """One 1-N step (tail queries, BCE) with the sliced or the unsliced fused loss."""
    model.zero_grad(set_to_none=True)
    if sliced:
        reps = model.representations()
        loss = sliced_side_loss(model, BCELoss(), reps, anchors, relations, 0, targets)
    else:
        scores = model.score_t(torch.stack([anchors, relations], 1))  # [B, N]
        loss = fused_kvsall_loss(BCELoss(), scores, targets)
    loss.backward()


def measure_kvsall(args, data: dict[int, dict]) -> list[dict[str, Any]]:
    rows = []
    b = args.kvsall_batch
    for size in args.sizes:
        torch.manual_seed(0)
        model = build_kge_model("distmult", size, args.relations, DIMS["transe"])
        train = data[size]["train"][:b]
        targets = KvsAllTargets(torch.arange(b), train[:, 2], b, size)
        dense_mib = b * size * 4 / MIB
        for sliced in (True, False):
            if not sliced and dense_mib > args.max_dense_mib:
                continue
            start = time.perf_counter()
            _, rise = peak_rise(
                lambda m=model, t=train, y=targets, s=sliced: _kvsall_step(
                    m, t[:, 0], t[:, 1], y, s
                )
            )
            rows.append({
                "entities": size, "kvsall": "sliced" if sliced else "unsliced", "batch": b,
                "seconds": time.perf_counter() - start, "peak_mib": rise / MIB,
                "dense_scores_mib": dense_mib,
            })  # fmt: skip
    return rows


# -- report ----------------------------------------------------------------------------------------
def table(record: dict) -> str:
    sizes = record["config"]["sizes"]
    lines = [
        "| model | arm | "
        + " | ".join(f"{s:,} ms (p10)" for s in sizes)
        + f" | ratio {sizes[-1] // sizes[0]}x entities | kept MiB at {sizes[-1]:,} "
        f"| step peak MiB at {sizes[-1]:,} |",
        "|---|---|" + "---|" * (len(sizes) + 3),
    ]
    by = {(r["model"], r["arm"], r["entities"]): r for r in record["training"]}
    for model in record["config"]["models"]:
        for arm in record["config"]["arms"]:
            cells = [f"{by[model, arm, s]['median_ms']:.1f} ({by[model, arm, s]['p10_ms']:.1f})"
                     for s in sizes]  # fmt: skip
            last, first = by[model, arm, sizes[-1]], by[model, arm, sizes[0]]
            lines.append(
                f"| {model} | {arm} | "
                + " | ".join(cells)
                + f" | {last['median_ms'] / first['median_ms']:.2f} | {last['kept_mib']:.0f} "
                f"| {last['step_peak_mib']:.1f} |"
            )
    lines += ["", "| entities | model (d=32) | evaluator | sliced | seconds | peak MiB | mean rank |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in record["evaluation"]:
        lines.append(
            f"| {r['entities']:,} | {r['model']} | {r['evaluator']} | {r['sliced']} "
            f"| {r['seconds']:.2f} "
            f"| {r['peak_mib']:.0f} | {r['mean_rank']:.1f} |"
        )
    lines += ["", "| entities | 1-N step | batch | seconds | peak MiB | [batch, N] scores MiB |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in record["kvsall"]:
        lines.append(
            f"| {r['entities']:,} | {r['kvsall']} | {r['batch']} | {r['seconds']:.2f} "
            f"| {r['peak_mib']:.0f} | {r['dense_scores_mib']:.0f} |"
        )
    load = record["loadavg"]
    lines += ["", f"load average (1 min) before / after: {load['before'][0]:.2f} / "
              f"{load['after'][0]:.2f}; {record['machine']['threads']} thread(s); "
              f"{record['config']['triples']:,} training triples; process peak RSS "
              f"{record['peak_rss_mib']:.0f} MiB"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 2_500_000])
    parser.add_argument("--models", nargs="+", default=["transe", "rotate"], choices=sorted(DIMS))
    parser.add_argument("--arms", nargs="+", default=["sparse", "dense", "memmap"])
    parser.add_argument("--eval-models", nargs="+", default=["transe", "distmult"])
    parser.add_argument("--triples", type=int, default=200_000)
    parser.add_argument("--relations", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--test-triples", type=int, default=300)
    parser.add_argument("--kvsall-batch", type=int, default=256)
    parser.add_argument("--max-dense-mib", type=float, default=1024.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mmap-dir", default=None)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "scale.json"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.sizes = sorted(args.sizes)
    tmp = None
    if args.mmap_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gnnlm-scale-")
        args.mmap_dir = tmp.name
    load_before = os.getloadavg()
    data = {}
    for size in args.sizes:
        triples = synthetic_triples(size, args.triples + args.test_triples, args.relations, seed=0)
        data[size] = {"train": triples[: args.triples], "test": triples[args.triples :]}
    start = time.perf_counter()
    record: dict[str, Any] = header(argv, args.threads)
    record["config"] = {k: v for k, v in vars(args).items() if k not in ("out", "mmap_dir")}
    record["config"]["dims"] = DIMS
    record["training"] = measure_training(args, data)
    record["evaluation"] = measure_evaluation(args, data)
    record["kvsall"] = measure_kvsall(args, data)
    record["seconds"] = time.perf_counter() - start
    record["loadavg"] = {"before": load_before, "after": os.getloadavg()}
    record["malloc_mmap_threshold"] = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    record["peak_rss_mib"] = process_peak() / MIB
    write_results(args.out, record, table(record))
    if tmp is not None:
        tmp.cleanup()
    return record


if __name__ == "__main__":
    main()
