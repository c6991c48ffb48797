"""Peak-memory probe of one process at millions of entities, run by ``test_scale.py`` in a child process.

``python -m tests.scale.probe NUM_ENTITIES DIM MMAP_DIR`` prints one JSON object: for each phase, the
rise of the process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) above its RSS
before the phase, in bytes, and what the phase computed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

from gnnlm.data.filter_index import FilterIndex
from gnnlm.eval import RankBasedEvaluator
from gnnlm.kge import build_kge_model, resolve_interaction
from gnnlm.kge.mmap import MemmapRepresentation
from gnnlm.train.kvsall_fused import KvsAllTargets, sliced_side_loss
from gnnlm.train.loops import SLCWALoop
from gnnlm.train.losses import BCELoss, SoftplusLoss
from gnnlm.train.negative_sampling import UniformNegativeSampler
from gnnlm.train.sparse import RowAdagrad
from gnnlm.utils.memory import peak_rise

NUM_RELATIONS, NUM_TRAIN, NUM_TEST, KVSALL_BATCH = 5, 2000, 12, 32


def triples(num_entities: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    n = NUM_TRAIN + NUM_TEST
    return torch.stack(
        [torch.randint(num_entities, (n,), generator=g),
         torch.randint(NUM_RELATIONS, (n,), generator=g),
         torch.randint(num_entities, (n,), generator=g)], dim=1,
    )  # fmt: skip


def training_steps(model, train: torch.Tensor, *, sparse: bool, steps: int = 2) -> float:
    """Peak-measured sLCWA steps after one warm-up step (which allocates the optimizer state)."""
    sampler = UniformNegativeSampler(train, model.num_entities, num_negatives=4)
    loop = SLCWALoop(model, train, sampler, SoftplusLoss(), batch_size=256, sparse=sparse)
    params = list(model.parameters())
    optimizer = RowAdagrad(params, lr=0.1) if sparse else torch.optim.Adagrad(params, lr=0.1)
    g = torch.Generator().manual_seed(1)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loop.batch_loss(torch.arange(256), g)
        loss.backward()
        optimizer.step()
        model.post_step()
        return float(loss.detach())

    step()
    return peak_rise(lambda: [step() for _ in range(steps)][-1])


def main(num_entities: int, dim: int, mmap_dir: str) -> dict[str, Any]:
    import time

    torch.set_num_threads(1)
    clock = time.perf_counter()
    data = triples(num_entities)
    train, test = data[:NUM_TRAIN], data[NUM_TRAIN:]
    out: dict[str, Any] = {"table_bytes": num_entities * dim * 4}
    torch.manual_seed(0)
    model = build_kge_model("transe", num_entities, NUM_RELATIONS, dim)
    (_, out["sparse_step"]) = training_steps(model, train, sparse=True)
    (_, out["dense_step"]) = training_steps(model, train, sparse=False)

    del model

    torch.manual_seed(0)
    distmult = build_kge_model("distmult", num_entities, NUM_RELATIONS, dim)
    with torch.no_grad():  # small integers: exact scores in any summation order, and ties
        for weight in (
            distmult.representation.entity.weight,
            distmult.representation.relation.weight,
        ):
            weight.copy_(torch.randint(-1, 2, weight.shape))
    index = FilterIndex(data, num_entities, NUM_RELATIONS)
    evaluator = RankBasedEvaluator(index)
    out["evaluation_sliced"] = evaluator.sliced(distmult, num_entities)
    ranks, out["evaluation"] = peak_rise(lambda m=distmult: evaluator.ranks(m, test))
    rows = RankBasedEvaluator(index, slice_entities=False).ranks(distmult, test)
    out["ranks_equal_rows_path"] = all(torch.equal(ranks[s], rows[s]) for s in ranks)
    out["ranks_in_range"] = all(
        bool(((r >= 1) & (r <= num_entities)).all()) for r in ranks.values()
    )

    batch = train[:KVSALL_BATCH]
    targets = KvsAllTargets(torch.arange(len(batch)), batch[:, 2], len(batch), num_entities)

    def kvsall_step(m=distmult) -> float:
        reps = m.representations()
        loss = sliced_side_loss(m, BCELoss(), reps, batch[:, 0], batch[:, 1], 0, targets)
        loss.backward()
        return float(loss.detach())

    out["kvsall_loss"], out["kvsall"] = peak_rise(kvsall_step)
    out["kvsall_grad_rows"] = int((distmult.representation.entity.weight.grad != 0).any(1).sum())
    del distmult

    inter = resolve_interaction("transe", dim)
    torch.manual_seed(0)
    table = MemmapRepresentation.for_interaction(
        inter, num_entities, NUM_RELATIONS, dim, directory=mmap_dir
    )
    mapped = build_kge_model(inter, num_entities, NUM_RELATIONS, dim, representation=table)
    out["memmap_loss"], out["memmap_step"] = training_steps(mapped, train, sparse=True)
    out["seconds"] = time.perf_counter() - clock
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])))
