"""Data-parallel training on ``torch.distributed``: the process group, the sharding of a global batch,
the reductions, and the wrappers (DDP, FSDP, ``torch.compile``) the engine runs a training step in.

Launch any config with ``torchrun``::

    torchrun --nproc-per-node 4 -m gnnlm train configs/umls/complex.yaml --out runs/umls-ddp

Every process runs the same :class:`~gnnlm.train.trainer.Trainer`; :func:`world_from_env` reads
``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (no ``WORLD_SIZE``, or 1: one process, no process group,
the engine's single-process path unchanged). With several:

* **Data.** Every rank draws the epoch's order from the run's seeded generator, so the orders agree
  without communication; ``training.batch_size`` is the *global* batch and rank ``r`` trains on the
  ``r``-th of ``world_size`` contiguous slices of it (:func:`shard`). Each rank's loss is weighted by
  its share of the global batch times ``world_size``, so DDP's gradient *average* equals the
  gradient of the one-process batch, uneven last batch included (:func:`shard_weight`); a rank whose
  slice is empty trains on one example with weight 0 (it must still join the gradient reduction).
* **The step.** The whole ``task.training_step`` runs as the ``forward`` of a :class:`TaskStep`
  module that DDP (or FSDP) wraps: tasks keep calling any method of their *unwrapped* model (link
  prediction's loop calls ``score_t``), and DDP still sees one forward per backward.
* **Randomness.** The order generator is used for nothing else; each rank draws a step's random
  numbers (sampled negatives, dropout) from a generator and global RNGs seeded with
  :func:`rank_seed`, so ranks differ from each other and a run with random steps is not the
  one-process run (tasks whose step is a function of its batch, such as KvsAll link prediction or a
  fused LM without dropout, match it within float tolerance).
* **Rank 0** evaluates (the other ranks wait and receive its metrics), and alone writes the run
  directory; checkpoints hold every rank's RNG states (and, under FSDP, its optimizer shard), so a
  run resumes exactly with the same number of processes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gnnlm.config import ConfigError

__all__ = [
    "TaskStep",
    "World",
    "SteppedTask",
    "barrier",
    "broadcast_object",
    "full_parameters",
    "gather_objects",
    "init_process_group",
    "is_fsdp",
    "no_sync",
    "rank_seed",
    "reduce_sums",
    "shard",
    "shard_weight",
    "world_from_env",
    "wrap_step",
]


@dataclass(frozen=True)
class World:
    """Where this process sits among the ranks of a run.

    Attributes:
        rank: this process's rank, ``0 .. size - 1``.
        local_rank: its rank on this machine (its GPU index).
        size: the number of processes (1: not distributed).
    """

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that evaluates and writes the run directory."""
        return self.rank == 0


def world_from_env() -> World:
    """The :class:`World` that ``torchrun`` describes in ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``.

    Raises:
        ConfigError: a variable that is not a whole number, or a rank outside ``0 .. WORLD_SIZE-1``.
    """
    values = {}
    for name, default in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        text = os.environ.get(name, default)
        try:
            values[name] = int(text)
        except ValueError:
            raise ConfigError(
                f"environment variable {name} must be a whole number, got {text!r}"
            ) from None
    size, rank = values["WORLD_SIZE"], values["RANK"]
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(
            f"environment: RANK={rank} must lie in 0..WORLD_SIZE-1 (WORLD_SIZE={size})"
        )
    return World(rank=rank, local_rank=values["LOCAL_RANK"], size=size)


def init_process_group(world: World, device: torch.device, settings: Any) -> None:
    """Join the run's process group (once per process; a later trainer reuses it).

    Args:
        world: this process's place (:func:`world_from_env`).
        device: the device it trains on: the backend is NCCL for CUDA and gloo otherwise, unless
            ``settings.backend`` names one.
        settings: ``training.distributed`` (``backend``, ``timeout_minutes``).
    """
    if not world.distributed or dist.is_initialized():
        return
    if not dist.is_available():
        raise ConfigError("torch.distributed is not available in this torch build")
    backend = settings.backend or ("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend,
        rank=world.rank,
        world_size=world.size,
        timeout=datetime.timedelta(minutes=settings.timeout_minutes),
    )


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s step randomness: differs between ranks, fixed by ``seed``."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % 2**63


# -- sharding ------------------------------------------------------------------------------------------
def shard(indices: Tensor, world: World) -> Tensor:
    """Rank ``world.rank``'s contiguous slice of a global batch ``indices: [batch]`` (slices differ in
    length by at most one; the last ranks get the shorter ones, possibly empty)."""
    if not world.distributed:
        return indices
    return indices.tensor_split(world.size)[world.rank]


def shard_weight(local: int, step_examples: int, world: World) -> float:
    """The factor of a rank's mean loss over ``local`` examples, in an optimizer step of
    ``step_examples`` examples over all ranks and micro-batches: ``local * world_size /
    step_examples``. DDP divides the summed gradients by ``world_size``, so the result is the
    gradient of the mean over the step's examples, as one process computes it."""
    return local * world.size / step_examples


# -- communication --------------------------------------------------------------------------------------
def reduce_sums(values: Sequence[float], world: World, device: torch.device) -> list[float]:
    """Elementwise sums of ``values`` over all ranks (float64; identical on every rank)."""
    if not world.distributed:
        return list(values)
    # NCCL reduces device tensors only; gloo CPU ones
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor(list(values), dtype=torch.float64, device=where)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_object(value: Any, world: World) -> Any:
    """Rank 0's ``value`` (a picklable object) on every rank."""
    if not world.distributed:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: Any, world: World) -> list[Any] | None:
    """Every rank's ``value`` (picklable; CPU tensors), in rank order, on rank 0 (``None`` elsewhere)."""
    if not world.distributed:
        return [value]
    out: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(value, out, dst=0)
    return out


def barrier(world: World) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written files others read)."""
    if world.distributed:
        dist.barrier()


# -- the step as a module ---------------------------------------------------------------------------------
class TaskStep(nn.Module):
    """A task's training step as a module's ``forward``, for DDP, FSDP and ``torch.compile`` to wrap.

    DDP synchronises gradients only for a backward that follows its own ``forward``; tasks compute
    their loss by calling whichever methods of their model they need (link prediction's loop calls
    ``score_t`` and ``representations``, not ``forward``), so the step itself is the forward.

    Args:
        model: the task's (unwrapped) model: registered here so that the wrappers see its parameters.
        task: the :class:`~gnnlm.train.task.Task`; its ``training_step`` gets ``model`` itself.
    """

    def __init__(self, model: nn.Module, task: Any) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, indices: Tensor, generator: torch.Generator) -> Any:
        """The task's loss (or :class:`~gnnlm.train.task.StepOutput`) of examples ``indices: [batch]``."""
        return self.task.training_step(self.model, indices, generator)


class SteppedTask:
    """A task whose ``training_step`` runs through ``step`` (the wrapped :class:`TaskStep`); every
    other attribute is the task's. The engine's strategies call it in place of the task."""

    def __init__(self, task: Any, step: nn.Module) -> None:
        self._task = task
        self._step = step

    def training_step(self, model: nn.Module, indices: Tensor, generator: torch.Generator) -> Any:
        return self._step(indices, generator)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


def wrap_step(
    model: nn.Module,
    task: Any,
    *,
    world: World,
    device: torch.device,
    settings: Any,
    compile_kwargs: dict[str, Any] | None,
) -> nn.Module:
    """The module whose ``forward`` is one training step: :class:`TaskStep` in DDP or FSDP (when
    ``world`` is distributed, ``settings.strategy``), compiled with ``torch.compile(**compile_kwargs)``
    unless that is ``None`` (DDP first, then compile, as PyTorch's DDP notes advise).

    FSDP is torch's ``FullyShardedDataParallel`` with ``use_orig_params=True``: the model keeps its
    parameter objects (sharded, flat, between steps; the optimizer built before wrapping updates the
    shards) in one FSDP unit, gathered whole for each step. Units per layer would gather a layer only
    when its own ``forward`` runs, but the fused LM calls into its layers' parts
    (:meth:`gnnlm.lm.backbone.TransformerBackbone.layer_forward`), so they are not offered.
    """
    step: nn.Module = TaskStep(model, task)
    if world.distributed and settings.strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel

        step = FullyShardedDataParallel(step, use_orig_params=True, device_id=device)
    elif world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        step = DistributedDataParallel(
            step,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=settings.find_unused_parameters,
        )
    if compile_kwargs is not None:
        step = torch.compile(step, **compile_kwargs)
    return step


def _parallel(step: nn.Module) -> nn.Module:
    """The DDP / FSDP module of a (possibly compiled) step."""
    return getattr(step, "_orig_mod", step)


def is_fsdp(step: nn.Module | None) -> bool:
    """Whether ``step`` is (a compiled) FSDP module."""
    if step is None or not dist.is_available():
        return False
    from torch.distributed.fsdp import FullyShardedDataParallel

    return isinstance(_parallel(step), FullyShardedDataParallel)


def no_sync(step: nn.Module | None, skip: bool) -> contextlib.AbstractContextManager:
    """``step.no_sync()`` when ``skip`` (an accumulation micro-batch that is not the step's last: its
    gradients stay local until the last one's backward reduces their sum), else nothing."""
    parallel = _parallel(step) if step is not None else None
    if skip and parallel is not None and hasattr(parallel, "no_sync"):
        return parallel.no_sync()
    return contextlib.nullcontext()


@contextlib.contextmanager
def full_parameters(step: nn.Module | None, *, writeback: bool = False) -> Iterator[None]:
    """Under FSDP, the model's whole parameters on every rank for the block (for evaluation, state
    dicts and parameter constraints; ``writeback``: changes made in the block are kept); otherwise
    nothing. Every rank must enter it (it gathers)."""
    if not is_fsdp(step):
        yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(_parallel(step), writeback=writeback):
        yield
