"""The training engine: one loop for every task (link prediction, LM fine-tuning, a user's own).

:class:`Trainer` runs a :class:`~gnnlm.train.task.Task` as its config describes::

    config = TrainConfig.load("configs/umls/complex.yaml")     # task: link_prediction (the default)
    result = Trainer(config, run_dir="runs/umls-complex").fit()
    result.metrics["test"]["mrr"]

The engine owns everything that is not the task's: a seeded data order, optimizer parameter groups,
gradient accumulation and clipping, learning-rate schedules (per epoch, or per step with warmup),
``bf16`` autocast, evaluation every N epochs or steps, early stopping on the task's selection metric,
progress bars, logs and checkpoints. It imports no task: a config's ``task:`` is resolved through
:mod:`gnnlm.tasks` only when a config (not a task) is given.

A run directory ends up with ``config.yaml`` (the resolved config it ran with), ``metrics.csv`` /
``log.jsonl`` (one row per epoch, and per step-level evaluation), ``checkpoint.safetensors`` (resumable
state, see :mod:`gnnlm.train.checkpoint`), ``model/`` (the best weights, :meth:`Task.save_model`) and
``metrics.json`` (``{"valid": {...}, "test": {...}, "best_epoch", ...}``). ``fit(resume=True)``
continues from the checkpoint, at an epoch end or mid-epoch (``training.checkpoint_steps``), and
reproduces the uninterrupted run bit for bit on CPU: weights, optimizer, scheduler, every RNG, the
position in the epoch's data order, the early-stopping state and the best weights are all restored.

Launched by ``torchrun --nproc-per-node N``, every process runs this engine: the model is wrapped in
DDP (or FSDP, ``training.distributed.strategy``), each global batch is sharded across the ranks,
logged metrics are reduced, rank 0 evaluates and alone writes the run directory
(:mod:`gnnlm.train.distributed`). ``training.compile`` runs each training step under
``torch.compile``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from gnnlm.strategies.partial import apply_partial, has_lora, merge_lora
from gnnlm.train.checkpoint import (
    CheckpointError,
    load_module_tensors,
    load_optimizer_state,
    load_rng_state,
    load_tensors,
    module_tensors,
    optimizer_state,
    rng_state,
    save_tensors,
)
from gnnlm.train.config import (
    ConfigError,
    RunConfig,
    check_values,
    check_writable_dir,
    config_diff,
)
from gnnlm.train.distributed import (
    SteppedTask,
    barrier,
    broadcast_object,
    full_parameters,
    gather_objects,
    init_process_group,
    is_fsdp,
    no_sync,
    rank_seed,
    reduce_sums,
    shard,
    shard_weight,
    world_from_env,
    wrap_step,
)
from gnnlm.train.optim import check_training, make_scheduler, param_group_dicts
from gnnlm.train.run_dir import open_run_dir
from gnnlm.train.run_log import MetricsLogger
from gnnlm.train.sparse import make_optimizer
from gnnlm.train.strategies import Strategies
from gnnlm.train.task import StepOutput, Task, init_shared_weights
from gnnlm.utils.atomic import atomic_write_json
from gnnlm.utils.modules import eval_mode
from gnnlm.utils.progress import progress

if TYPE_CHECKING:
    from gnnlm.train.variants import Comparison

CHECKPOINT_NAME = "checkpoint.safetensors"
# Settings a resumed run may change: a longer schedule, and whether the checkpoint outlives the run.
FREE_ON_RESUME = frozenset({"training.epochs", "training.keep_checkpoint"})
INIT_FROM_NAME = "init_from.json"


def resume_mismatch(saved: RunConfig, config: RunConfig) -> str:
    """``"key: old -> new, ..."`` for every key where a run's saved config and ``config`` differ,
    except those free on resume (:data:`FREE_ON_RESUME`); ``""`` when they are the same experiment."""
    diff = config_diff(saved, config)
    return ", ".join(
        f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items() if k not in FREE_ON_RESUME
    )


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        model: the trained model (best validation weights when early stopping evaluated), in eval mode.
        config: the config it ran with.
        metrics: ``{"valid": {...}, "test": {...}, "best_epoch", "epochs", "train_seconds", ...}``, as
            written to ``metrics.json``.
        history: one dict per logged row (as in ``log.jsonl``).
        run_dir: the run directory, or ``None``.
        task: the task it ran.
    """

    model: nn.Module
    config: RunConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    task: Task | None = field(default=None, repr=False)

    @property
    def kg(self) -> Any:
        """The graph of a task that has one (link prediction), else ``None``."""
        return getattr(self.task, "kg", None)

    @property
    def pretrained_config(self) -> Any:
        """What a link-prediction ``save_pretrained`` writes as ``config.json`` (else ``None``)."""
        make = getattr(self.task, "pretrained_config", None)
        return make() if make is not None else None

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the trained model as the task saves it (link prediction: config, weights, vocab)."""
        directory = Path(directory)
        self.task.save_model(self.model, directory)
        return directory


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN/inf. The best weights so far and the metrics were saved first.

    Attributes:
        result: the :class:`TrainResult` of the best weights so far (``metrics["diverged"]`` holds the
            reason), or ``None`` when no finite weights were ever kept.
    """

    def __init__(self, message: str, result: TrainResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class _EarlyStopping:
    """State of early stopping; ``best`` is the selection metric signed so that larger is better."""

    best: float = -math.inf
    best_epoch: int = 0
    best_step: int = 0
    bad_evaluations: int = 0
    stopped: bool = False


@dataclass
class _EpochState:
    """Where the engine is inside an epoch (saved by mid-epoch checkpoints)."""

    batches_done: int = 0  # micro-batches of this epoch already trained
    loss_sum: float = 0.0  # sum of loss * examples over them
    count: int = 0  # examples over them
    seconds: float = 0.0  # training time spent on them
    logs: dict[str, float] = field(default_factory=dict)  # sums of the task's extra logs


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch's global generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Turn on ``torch.use_deterministic_algorithms`` (warn-only) for a block, then restore the setting."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def make_task(config: RunConfig, data: Any = None) -> Task:
    """The task ``config.task`` names (a registered name, class, instance or ``pkg.mod:Class``)."""
    from gnnlm.tasks.registry import make_task as make

    return make(config.task, config, data=data)


class Trainer:
    """Trains a task as its config describes.

    Args:
        config: the run's config (its ``task`` is resolved through :mod:`gnnlm.tasks`), or a
            :class:`~gnnlm.train.task.Task` instance (its ``config`` is the run's).
        run_dir: where logs, checkpoints and the final model go (``None``: nothing is written).
        data: the task's data, if already loaded (e.g. a :class:`~gnnlm.data.KnowledgeGraph`).
        kg: the same as ``data`` (the name link prediction always used).
        quiet: no progress bars.
        callbacks: functions ``callback(trainer, row)`` called after every epoch (after its checkpoint is
            written) with the epoch's log row; raising from one interrupts training.
        step_callbacks: functions ``callback(trainer)`` called after every optimizer step (after a
            step checkpoint is written); raising from one interrupts training mid-epoch. Both kinds
            also run in the pre-training stage of a two-stage run (``trainer.config.task`` tells
            which stage is calling).
    """

    def __init__(
        self,
        config: RunConfig | Task,
        *,
        run_dir: str | Path | None = None,
        data: Any = None,
        kg: Any = None,
        quiet: bool = False,
        callbacks: Sequence[Callable[[Trainer, dict[str, Any]], None]] = (),
        step_callbacks: Sequence[Callable[[Trainer], None]] = (),
    ) -> None:
        data = data if data is not None else kg
        self.task = config if isinstance(config, Task) else make_task(config, data)
        self.config = self.task.config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        #: this process among ``torchrun``'s (one process: rank 0 of 1, nothing distributed)
        self.world = world_from_env()
        self.quiet = quiet or not self.world.is_main  # progress bars and notes from rank 0 only
        self.callbacks = list(callbacks)
        self.step_callbacks = list(step_callbacks)
        # everything that can be checked before the data loads: ranges, component names and their
        # keyword arguments, and that run_dir can be written (a read-only --out fails now, not after
        # training)
        check_values(self.config)
        check_training(self.config)
        self.task.validate()
        if self._writes is not None:
            check_writable_dir(self.run_dir)
        self.metric, self.maximize = self.task.selection_metric
        self.task.setup()
        e = self.config.evaluation
        if (e.frequency or e.steps) and not self.task.has_split("valid"):
            raise ConfigError(
                f"{self.config.dataset or 'the data'} has no validation examples: set "
                "evaluation.frequency=0 (and evaluation.steps=0): no early stopping"
            )

    @property
    def _writes(self) -> Path | None:
        """The run directory where this process writes it (rank 0), else ``None``."""
        return self.run_dir if self.world.is_main else None

    @property
    def kg(self) -> Any:
        """The task's graph (link prediction)."""
        return getattr(self.task, "kg", None)

    @property
    def device(self) -> torch.device:
        """The device of ``training.device`` (``auto``: CUDA when available)."""
        name = self.config.training.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ConfigError(f"training.device={name!r}: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"training.device={name!r}: CUDA is not available here (use cpu or auto)"
            )
        if device.type == "cuda" and self.world.distributed:  # one GPU per process
            if device.index is not None:
                raise ConfigError(
                    f"training.device={name!r}: under torchrun each process trains on "
                    "cuda:LOCAL_RANK; set training.device: cuda (or auto)"
                )
            device = torch.device("cuda", self.world.local_rank)
        return device

    # -- construction ------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, t = self.config, self.config.training
        seed_everything(cfg.seed)
        self.model = self.task.build_model().to(self.device)
        # partial fine-tuning (LoRA, frozen layers and patterns) decides what the optimizer sees
        apply_partial(self.model, cfg.finetuning, where=cfg.at("finetuning"))
        task_groups = self.task.parameter_groups(self.model)
        groups = param_group_dicts(task_groups, t, where=cfg.at("training.param_groups"))
        run_lrs = [g.get("lr", t.lr) for g in groups]
        self.optimizer = self.task.configure_optimizer(self.model, groups) or make_optimizer(
            t, groups, sparse=False
        )
        self.scheduler, self._schedule = make_scheduler(
            self.optimizer, t, self.steps_per_epoch * t.epochs, maximize=self.maximize
        )
        self.strategy = Strategies.build(
            cfg, self.model, self.task, task_groups, self.steps_per_epoch, run_lrs,
            self.scheduler, self._schedule,
        )  # fmt: skip
        self.generator = torch.Generator().manual_seed(cfg.seed)
        # under torchrun the run's generator draws only the epochs' orders (equal on every rank); a
        # step's random numbers come from each rank's own generator and global RNGs
        self.step_generator = self.generator
        if self.world.distributed:
            own = rank_seed(cfg.seed, self.world.rank)
            self.step_generator = torch.Generator().manual_seed(own)
            seed_everything(own)
        self._step = self._wrap_step()
        self._gathered = False  # inside full_parameters (FSDP)
        self.early_stopping = _EarlyStopping()
        self.best_weights: dict[str, Tensor] | None = None
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps
        self._in_epoch = _EpochState()
        self._epoch_rng: Tensor | None = None  # the generator's state when the epoch began
        self.train_seconds = 0.0

    def _wrap_step(self) -> nn.Module | None:
        """The training step in DDP / FSDP and ``torch.compile`` (:func:`gnnlm.train.distributed.
        wrap_step`), which the strategies then call in place of the task's; ``None`` for one process
        without ``training.compile``: the task's step is called as it is."""
        cfg, t, f = self.config, self.config.training, self.config.finetuning
        if not (self.world.distributed or t.compile):
            return None
        what = "under torchrun" if self.world.distributed else "with training.compile"
        if f.meta.method:
            raise ConfigError(
                f"{cfg.at('finetuning.meta')}finetuning.meta does not run {what} (its inner loops "
                "step the model outside the wrapped training step); train on one process, uncompiled"
            )
        if self.world.distributed and f.phases:
            raise ConfigError(
                f"{cfg.at('finetuning.phases')}finetuning.phases change the trainable parameters "
                "mid-run, but DDP / FSDP fix them when they wrap the model; train on one process"
            )
        fsdp = self.world.distributed and t.distributed.strategy == "fsdp"
        if fsdp and (has_lora(self.model) or f.adversarial.method):
            raise ConfigError(
                f"{cfg.at('training.distributed.strategy')}training.distributed.strategy=fsdp "
                "supports plain fine-tuning only (no LoRA, no adversarial training); use ddp"
            )
        if self.world.distributed and getattr(self.task, "sparse_updates", False):
            raise ConfigError(
                f"{cfg.at('training.sparse_updates')}training.sparse_updates: the engine reduces "
                "dense gradients across processes only (NCCL has no sparse all-reduce); set "
                "training.sparse_updates: false under torchrun"
            )
        step = wrap_step(
            self.model, self.task, world=self.world, device=self.device,
            settings=t.distributed, compile_kwargs=dict(t.compile_kwargs) if t.compile else None,
        )  # fmt: skip
        self.strategy.task = SteppedTask(self.task, step)
        return step

    @contextlib.contextmanager
    def _full_parameters(self, *, writeback: bool = False) -> Iterator[None]:
        """The whole parameters in the model for the block (FSDP gathers them on every rank; a no-op
        otherwise, and inside another such block)."""
        if getattr(self, "_gathered", False) or not is_fsdp(getattr(self, "_step", None)):
            yield
            return
        self._gathered = True
        try:
            with full_parameters(self._step, writeback=writeback):
                yield
        finally:
            self._gathered = False

    @property
    def steps_per_epoch(self) -> int:
        t = self.config.training
        batches = math.ceil(self.task.num_train_examples() / t.batch_size)
        return math.ceil(batches / t.accumulation_steps)

    # -- training ----------------------------------------------------------------------------------
    def fit(
        self,
        *,
        resume: bool = False,
        overwrite: bool = False,
        init_from: str | Path | None = None,
    ) -> TrainResult:
        """Train (or continue a checkpointed run with ``resume=True``), evaluate, and save.

        The run directory is locked for the whole run (see :mod:`gnnlm.train.run_dir`); one that already
        holds files is refused unless ``resume`` or ``overwrite`` (delete the earlier run's files) is set.

        Args:
            resume: continue the run in ``run_dir`` from its checkpoint, exactly.
            overwrite: replace an earlier run in ``run_dir``.
            init_from: a warm start: a new run whose weights are loaded from this run directory (its
                ``model/``) or saved model folder (:meth:`Task.init_from`); the optimizer, scheduler
                and RNGs start fresh. The source is recorded in ``init_from.json`` and ``metrics.json``.

        Raises:
            CheckpointError: ``resume`` without a readable checkpoint; an unusable ``init_from``.
            RunDirError: ``run_dir`` is in use by another process, or not empty without ``resume`` /
                ``overwrite``.
            ConfigError: ``resume`` with a config that differs from the run's (other than
                ``training.epochs`` and ``training.keep_checkpoint``).
            TrainingDivergedError: the loss became NaN/inf (after saving the best model and metrics).
        """
        if resume and init_from is not None:
            raise ConfigError(
                "init_from starts a new run from saved weights; it cannot be combined with resume"
            )
        init_process_group(self.world, self.device, self.config.training.distributed)
        with contextlib.ExitStack() as stack:
            if self.run_dir is not None and self.world.is_main:  # rank 0 alone writes the run
                stack.enter_context(open_run_dir(self.run_dir, resume=resume, overwrite=overwrite))
            stack.enter_context(deterministic_algorithms(self.config.training.deterministic))
            if self.config.pretraining and init_from is None:
                init_from, resume = self._pretrain(resume)
            return self._fit(resume, init_from)

    def _pretrain(self, resume: bool) -> tuple[Path | None, bool]:
        """Two-stage training: run ``config.pretraining`` into ``RUN_DIR/pretraining`` (or reuse it
        when finished; resume it when interrupted), then start this run from its weights.

        Returns ``(init_from, resume)`` for this run: a run resumed from its own checkpoint needs no
        warm start; one interrupted before its first checkpoint starts afresh from the stage-1 weights.
        """
        from gnnlm.tasks.loading import config_from_mapping, task_class

        if self.run_dir is None:
            raise ConfigError("pretraining: two-stage training needs a run directory (--out)")
        stage_dir = self.run_dir / "pretraining"
        if resume and (self.run_dir / CHECKPOINT_NAME).exists():
            return None, True  # stage 2 is under way: its checkpoint has everything
        if not (stage_dir / "metrics.json").is_file():
            mapping = dict(self.config.pretraining)
            own = self.config.to_dict()
            for key in ("dataset", "dataset_kwargs"):  # the same data
                mapping.setdefault(key, own[key])
            # the same model, where the stage's task reads the same model: block as this one
            stage_class = task_class(mapping.get("task", "link_prediction"), "pretraining.task")
            stage_model = getattr(stage_class.config_class(), "model", None)
            if "model" not in mapping and type(stage_model) is type(
                getattr(self.config, "model", None)
            ):
                mapping["model"] = own["model"]
            stage = config_from_mapping(
                mapping, source=self.config.at("pretraining"), key="pretraining"
            )
            interrupted = (stage_dir / CHECKPOINT_NAME).is_file()
            Trainer(
                stage, run_dir=stage_dir, quiet=self.quiet, callbacks=self.callbacks,
                step_callbacks=self.step_callbacks,
            ).fit(resume=interrupted)  # fmt: skip
        return stage_dir, False

    def _fit(self, resume: bool, init_from: str | Path | None = None) -> TrainResult:
        self._build()
        self.logger = MetricsLogger(self._writes, metrics=tuple(self.task.metrics))
        self.init_record: dict[str, Any] | None = None
        if resume:
            self._resume()
        elif init_from is not None:
            self._init_from(init_from)
        if self._writes is not None:
            self.config.save(self.run_dir / "config.yaml")
        if not self.quiet:
            print(self.strategy.describe(), file=sys.stderr)
        t = self.config.training
        bar = progress(  # a bar in a terminal; a line per epoch in a log file (gnnlm.utils.progress)
            total=t.epochs, initial=self.epoch, desc="epochs", unit="epoch", every=0,
            disable=self.quiet or self.early_stopping.stopped,
        )  # fmt: skip
        diverged = None
        try:
            while self.epoch < t.epochs and not self.early_stopping.stopped:
                row = self._train_epoch()
                if row is None:  # early stopping inside the epoch
                    break
                bar.set_postfix(
                    loss=f"{row['loss']:.4g}",
                    **{k: f"{v:.4f}" for k, v in row.items() if k == f"valid_{self.metric}"},
                )
                bar.update()
                for callback in self.callbacks:
                    callback(self, row)
        except FloatingPointError as err:  # a NaN/inf loss: keep what was good so far
            diverged = str(err)
        finally:
            bar.close()
            self.logger.close()
        if diverged is not None:
            self._diverged(diverged)
        return self._finish()

    def _epoch_order(self) -> list[Tensor]:
        """The epoch's shuffled micro-batches of example indices, drawn from the run's generator at the
        epoch's start (redrawn from the saved state when resuming mid-epoch)."""
        n, size = self.task.num_train_examples(), self.config.training.batch_size
        if self._in_epoch.batches_done == 0:
            self._epoch_rng = self.generator.get_state()
            return list(torch.randperm(n, generator=self.generator).split(size))
        now = self.generator.get_state()
        self.generator.set_state(self._epoch_rng)
        order = list(torch.randperm(n, generator=self.generator).split(size))
        self.generator.set_state(now)
        return order

    def _train_epoch(self) -> dict[str, Any] | None:
        """Train one epoch (or its rest); returns its log row, ``None`` if early stopping ended it."""
        t, e, state = self.config.training, self.config.evaluation, self._in_epoch
        self.model.train()
        batches = self._epoch_order()
        k = t.accumulation_steps
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if t.autocast == "bf16"
            else contextlib.nullcontext()
        )
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        bar = progress(  # outside a terminal: a line every 30 s at most, none when done
            total=len(batches), initial=state.batches_done, desc=f"epoch {self.epoch + 1}",
            leave=False, disable=self.quiet or len(batches) < 20, unit="batch",
        )  # fmt: skip
        start = time.perf_counter()
        try:
            for i in range(state.batches_done, len(batches)):
                indices = batches[i]
                first = i - i % k
                if i == first:
                    self.strategy.before_step(self.step, self.optimizer, self.scheduler)
                    self.optimizer.zero_grad(set_to_none=True)
                # each micro-batch weighs by its share of the step's examples
                step_examples = sum(len(b) for b in batches[first : first + k])
                scale = len(indices) / step_examples
                if self.world.distributed:  # this rank's slice; weighed so DDP's mean is the step's
                    indices = shard(indices, self.world)
                    scale = shard_weight(len(indices), step_examples, self.world)
                    if not len(indices):  # it still joins the reduction, with a zero gradient
                        indices, scale = batches[i][:1], 0.0
                accumulate = i + 1 < len(batches) and i + 1 < first + k
                self.task.step = self.step
                with autocast, no_sync(self._step, accumulate):
                    out = self.strategy.gradients(indices, self.step_generator, scale)
                value = (out.loss if isinstance(out, StepOutput) else out).item()
                n = len(indices) if scale else 0
                logs = out.logs if isinstance(out, StepOutput) else {}
                if self.world.distributed:  # the global batch's sums, equal on every rank
                    sums = reduce_sums(
                        [value * n, n, *(float(v) * n for v in logs.values())],
                        self.world, self.device,
                    )  # fmt: skip
                    value, n = sums[0] / max(sums[1], 1), round(sums[1])
                    logs = {key: v / max(n, 1) for key, v in zip(logs, sums[2:])}
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"epoch {self.epoch + 1}: loss became {value}; lower training.lr?"
                    )
                state.loss_sum += value * n
                state.count += n
                for key, v in logs.items():
                    state.logs[key] = state.logs.get(key, 0.0) + float(v) * n
                bar.update()
                if accumulate:
                    continue
                if t.clip_grad_norm is not None and is_fsdp(self._step):
                    self._step.clip_grad_norm_(t.clip_grad_norm)  # the norm of every rank's shard
                elif t.clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, t.clip_grad_norm)
                self.optimizer.step()
                if is_fsdp(self._step) and type(self.task).after_step is not Task.after_step:
                    with self._full_parameters(writeback=True):  # constraints on whole tensors
                        self.task.after_step(self.model)
                else:
                    self.task.after_step(self.model)
                if self._schedule == "step":
                    self.scheduler.step()
                self.step += 1
                state.batches_done = i + 1
                validate = e.steps and self.step % e.steps == 0
                if (validate or (t.log_steps and self.step % t.log_steps == 0)) and i + 1 < len(
                    batches
                ):
                    state.seconds += time.perf_counter() - start
                    row = {"epoch": self.epoch + 1, "step": self.step}
                    row.update(
                        {f"train_{k}": v / max(state.count, 1) for k, v in state.logs.items()}
                    )
                    row["train_loss"] = state.loss_sum / max(state.count, 1)
                    if validate:
                        self._validate_and_log(row)
                    else:
                        self.logger.log(row)
                    start = time.perf_counter()
                    if self.early_stopping.stopped:
                        self._checkpoint()
                        return None
                if t.checkpoint_steps and self.step % t.checkpoint_steps == 0:
                    state.seconds += time.perf_counter() - start
                    self._checkpoint()
                    start = time.perf_counter()
                for callback in self.step_callbacks:
                    callback(self)
        finally:
            bar.close()
        state.seconds += time.perf_counter() - start
        self.epoch += 1
        row: dict[str, Any] = {
            "epoch": self.epoch, "step": self.step, "loss": state.loss_sum / max(state.count, 1),
            "lr": self.optimizer.param_groups[0]["lr"], "seconds": state.seconds,
        }  # fmt: skip
        if len(self.optimizer.param_groups) > 1:
            row.update(
                {
                    f"lr_{g.get('name', j)}": g["lr"]
                    for j, g in enumerate(self.optimizer.param_groups)
                }
            )
        row.update({f"train_{key}": v / max(state.count, 1) for key, v in state.logs.items()})
        self.train_seconds += state.seconds
        self._in_epoch = _EpochState()
        if (e.frequency and self.epoch % e.frequency == 0) or (
            e.steps and self.step % e.steps == 0
        ):
            self._validate_and_log(row)
        else:
            self.logger.log(row)
        if self._schedule == "epoch":
            self.scheduler.step()
        if (t.checkpoint_frequency and self.epoch % t.checkpoint_frequency == 0) or (
            self.early_stopping.stopped or self.epoch == t.epochs
        ):
            self._checkpoint()
        return row

    def _validate_and_log(self, row: dict[str, Any]) -> None:
        """Evaluate on ``valid``, update early stopping (and a plateau schedule), and log ``row``."""
        valid = self.evaluate("valid")
        row.update({f"valid_{k}": valid[k] for k in self.task.metrics if k in valid})
        self._early_stopping_step(valid[self.metric])
        if self._schedule == "plateau":
            self.scheduler.step(valid[self.metric])
        self.logger.log(row)

    def _early_stopping_step(self, value: float) -> None:
        state, patience = self.early_stopping, self.config.evaluation.patience
        signed = value if self.maximize else -value
        if signed > state.best:
            state.best, state.bad_evaluations = signed, 0
            state.best_epoch, state.best_step = self.epoch, self.step
            with self._full_parameters():
                self.best_weights = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
        else:
            state.bad_evaluations += 1
            if patience and state.bad_evaluations >= patience:
                state.stopped = True

    def evaluate(self, split: str = "valid") -> dict[str, Any]:
        """The task's metrics of the current model on ``split`` (eval mode, no gradients).

        Under torchrun every rank calls it: rank 0 evaluates (FSDP first gathers the parameters on
        every rank) and the others receive its metrics."""
        if not self.world.distributed:
            with eval_mode(self.model):
                return self.task.evaluate(self.model, split)
        metrics = None
        with self._full_parameters():
            if self.world.is_main:
                with eval_mode(self.model):
                    metrics = self.task.evaluate(self.model, split)
            return broadcast_object(metrics, self.world)

    # -- the end -----------------------------------------------------------------------------------
    def _diverged(self, reason: str) -> None:
        """Save the best finite weights (else the last checkpoint's) and the metrics, then raise."""
        path = self.run_dir / CHECKPOINT_NAME if self.run_dir is not None else None
        if self.best_weights is None and path is not None and path.exists():
            tensors, state = load_tensors(path)
            self.best_weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
            self.early_stopping.best_epoch = int(state["epoch"])
        if self.best_weights is None:
            raise TrainingDivergedError(
                f"{reason} (no finite weights saved: it diverged before the first evaluation "
                "or checkpoint)"
            )
        result = self._finish(diverged=reason)
        where = f"; saved the epoch {result.metrics['best_epoch']} weights"
        if self.run_dir is not None:
            where += (
                f" to {self.run_dir / 'model'} and metrics.json; warm-start from them with "
                f"--init-from {self.run_dir} (e.g. with a lower training.lr)"
            )
        raise TrainingDivergedError(reason + where, result)

    def _finish(self, *, diverged: str | None = None) -> TrainResult:
        with self._full_parameters(writeback=True):
            if self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
        # under FSDP the model's own parameters stay sharded: evaluate and save with them gathered
        with self._full_parameters():
            return self._finish_model(diverged)

    def _finish_model(self, diverged: str | None) -> TrainResult:
        # LoRA adapters fold into the LM: the saved model is the plain architecture, equal outputs
        merged = merge_lora(self.model) if has_lora(self.model) else 0
        self.model.eval()
        metrics: dict[str, Any] = {}
        eval_seconds = {}
        for split in self.task.final_splits():
            start = time.perf_counter()
            metrics[split] = self.evaluate(split)
            eval_seconds[split] = time.perf_counter() - start
        metrics.update(
            best_epoch=self.early_stopping.best_epoch or self.epoch,
            best_step=self.early_stopping.best_step or self.step,
            epochs=self.epoch,
            steps=self.step,
            stopped_early=self.early_stopping.stopped,
            selection_metric=self.metric,
            train_seconds=self.train_seconds,
            **self.task.run_metrics(epochs=self.epoch, train_seconds=self.train_seconds),
            eval_seconds=eval_seconds,
            num_parameters=sum(p.numel() for p in self.model.parameters()),
            trainable_parameters=self.strategy.trainable_parameters,
        )
        if merged:
            metrics["lora_merged_layers"] = merged
        if self.init_record is not None:
            metrics["init_from"] = self.init_record
        if diverged is not None:
            metrics["diverged"] = diverged
        if self._writes is not None:
            self.task.save_model(self.model, self.run_dir / "model")
            atomic_write_json(self.run_dir / "metrics.json", metrics)
            if not self.config.training.keep_checkpoint:  # the run's results are all written
                (self.run_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
        model = self.model
        if is_fsdp(self._step):  # a plain copy: the trained module goes back to its shards
            model = self.task.build_model().to(self.device)
            model.load_state_dict(self.model.state_dict())
            model.eval()
        barrier(self.world)  # the run's files are written when any rank returns
        return TrainResult(
            model, self.config, metrics, list(self.logger.rows), self.run_dir, self.task
        )

    # -- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        if self.run_dir is not None:
            self.save_checkpoint(self.run_dir / CHECKPOINT_NAME)

    def save_checkpoint(self, path: str | Path) -> None:
        """Atomically write everything needed to continue this run exactly (one safetensors file).

        Under torchrun every rank calls it and rank 0 writes: the model (whole, under FSDP), and each
        rank's RNG states (and FSDP optimizer shard) under ``rank<r>.*``."""
        with self._full_parameters():
            tensors = module_tensors(self.model, "model.")
            if is_fsdp(self._step):  # the gathered tensors are freed when the block ends
                tensors = {k: v.clone() for k, v in tensors.items()}
        ranks = self._rank_states()
        if self.world.is_main:
            self._write_checkpoint(path, tensors, ranks)
        barrier(self.world)  # no rank reads it (resuming) before it is written

    def _write_checkpoint(
        self,
        path: str | Path,
        tensors: dict[str, Tensor],
        ranks: list[tuple[dict[str, Tensor], dict[str, Any]]] | None,
    ) -> None:
        if self.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        in_epoch = vars(self._in_epoch)
        if self._in_epoch.batches_done:
            tensors["rng.epoch"] = self._epoch_rng
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "in_epoch": in_epoch,
            "config": self.config.to_dict(),
            "early_stopping": vars(self.early_stopping),
            "has_best": self.best_weights is not None,
            "optimizer": None if is_fsdp(self._step) else optimizer_state(self.optimizer, tensors),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng_state(self.generator, tensors),
            "train_seconds": self.train_seconds,
        }
        if self.world.distributed:
            state["world_size"] = self.world.size
            state["ranks"] = []
            for r, (own, doc) in enumerate(ranks):
                tensors.update({f"rank{r}.{k}": v for k, v in own.items()})
                state["ranks"].append(doc)
        save_tensors(path, tensors, state)

    def _rank_states(self) -> list[tuple[dict[str, Tensor], dict[str, Any]]] | None:
        """Every rank's own state, gathered on rank 0: its step RNGs and, under FSDP, its optimizer
        shard, as ``(tensors, document)`` (``None`` on other ranks and on one process)."""
        if not self.world.distributed:
            return None
        own: dict[str, Tensor] = {}
        doc = {"rng": rng_state(self.step_generator, own)}
        if is_fsdp(self._step):
            doc["optimizer"] = optimizer_state(self.optimizer, own)
        return gather_objects(({k: v.cpu() for k, v in own.items()}, doc), self.world)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` into the built trainer."""
        tensors, state = load_tensors(path)
        if state is None or "epoch" not in state:
            raise CheckpointError(
                f"{path}: a safetensors file, but not a gnnlm training checkpoint"
            )
        with self._full_parameters(writeback=True):
            load_module_tensors(self.model, tensors, "model.", source=str(path))
        self.best_weights = (
            {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
            if state["has_best"]
            else None
        )
        if state["optimizer"] is not None:
            load_optimizer_state(self.optimizer, state["optimizer"], tensors)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        load_rng_state(self.generator, state["rng"], tensors)
        if self.world.distributed:  # this rank's own RNGs (and optimizer shard)
            prefix = f"rank{self.world.rank}."
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            doc = state["ranks"][self.world.rank]
            load_rng_state(self.step_generator, doc["rng"], own)
            if "optimizer" in doc:
                load_optimizer_state(self.optimizer, doc["optimizer"], own)
        self.early_stopping = _EarlyStopping(**state["early_stopping"])
        self.epoch = int(state["epoch"])
        self.step = int(state.get("step", 0))
        self._in_epoch = _EpochState(**state.get("in_epoch", {}))
        self._epoch_rng = tensors.get("rng.epoch")
        self.train_seconds = float(state.get("train_seconds", 0.0))

    def _init_from(self, source: str | Path) -> None:
        """Warm start: the weights of ``source``'s model, with this run's fresh optimizer and RNGs
        (the parameters the two models share by name when ``source`` is this run's pre-training)."""
        source = Path(source)
        with self._full_parameters(writeback=True):
            if self.run_dir is not None and source == self.run_dir / "pretraining":
                self.init_record = init_shared_weights(self.model, source)
            else:
                self.init_record = self.task.init_from(self.model, source)
        if self._writes is not None:
            atomic_write_json(self.run_dir / INIT_FROM_NAME, self.init_record)

    def _resume(self) -> None:
        if self.run_dir is None:
            raise CheckpointError("resume needs a run directory")
        path = self.run_dir / CHECKPOINT_NAME
        if not path.exists():
            finished = (self.run_dir / "metrics.json").is_file()
            raise CheckpointError(
                f"{path}: no checkpoint to resume from"
                + ("; the run finished with training.keep_checkpoint: false" if finished else "")
            )
        _, state = load_tensors(path)
        processes = state.get("world_size", 1)
        if processes != self.world.size:
            raise CheckpointError(
                f"{path}: the run was trained by {processes} process(es) and resumes only with as "
                f"many (torchrun --nproc-per-node {processes}); this is {self.world.size}"
            )
        saved = type(self.config).from_dict(state["config"], source=str(path))
        if lines := resume_mismatch(saved, self.config):
            raise ConfigError(f"{path}: cannot resume with a different config ({lines})")
        self.load_checkpoint(path)
        self.logger.resume(self.epoch, self.step)
        if "train_seconds" not in state:  # a checkpoint of an earlier release
            self.train_seconds = sum(row.get("seconds", 0.0) for row in self.logger.rows)
        init_path = self.run_dir / INIT_FROM_NAME
        if init_path.is_file():  # a warm-started run keeps its record across resumes
            self.init_record = json.loads(init_path.read_text())


def train(
    config: RunConfig | Task,
    run_dir: str | Path | None = None,
    *,
    data: Any = None,
    kg: Any = None,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | Path | None = None,
) -> TrainResult | Comparison:
    """Train as ``config`` describes; see :class:`Trainer` and :meth:`Trainer.fit`.

    A config with ``variants`` or several ``seeds`` runs every arm and seed and returns the
    :class:`~gnnlm.train.variants.Comparison` (:func:`gnnlm.train.variants.run_variants`).
    """
    if isinstance(config, RunConfig) and config.is_comparison:
        from gnnlm.train.variants import run_variants

        if world_from_env().distributed:
            raise ConfigError(
                "a config with variants: or seeds: runs its arms one after another on one process; "
                "under torchrun train one arm at a time (--set 'variants={}' --set 'seeds=[]' and "
                "that arm's overrides)"
            )
        return run_variants(
            config, run_dir, data=data if data is not None else kg, quiet=quiet, resume=resume,
            overwrite=overwrite,
        )  # fmt: skip
    trainer = Trainer(config, run_dir=run_dir, data=data, kg=kg, quiet=quiet)
    return trainer.fit(resume=resume, overwrite=overwrite, init_from=init_from)
