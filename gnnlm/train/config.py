"""The engine's config sections, shared by every task: :class:`RunConfig`, :class:`TrainingConfig`,
:class:`EvaluationConfig`.

A task's config subclasses :class:`RunConfig` and adds its own sections (``model:``, ``data:``) and
fields (link prediction's ``training.loop``)::

    task: link_prediction        # a registered name, or pkg.mod:MyTask
    dataset: umls
    seed: 0
    model: {...}                 # the task's
    training: {epochs: 100, batch_size: 256, lr: 0.001, optimizer: adam, param_groups: {}, ...}
    evaluation: {frequency: 5, patience: 5, metric: mrr}
    variants: {}                 # name -> {dotted.key: value}: compare arms (see gnnlm.train.variants)
    seeds: []                    # with variants: every arm runs with each seed

Files are read by :mod:`gnnlm.config` (the one loader): unknown keys, wrong types and out-of-range
values are errors naming file, line and value.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from gnnlm.config import (
    AT_LEAST_0,
    AT_LEAST_1,
    POSITIVE,
    Config,
    ConfigError,
    ConfigWarning,
    apply_overrides,
    check_kwargs,
    check_values,
    check_writable_dir,
    checked,
    config_diff,
    constructor_keywords,
)
from gnnlm.strategies.config import FinetuningConfig

__all__ = [
    "ConfigError",
    "ConfigWarning",
    "DistributedConfig",
    "EvaluationConfig",
    "RunConfig",
    "TrainingConfig",
    "apply_overrides",
    "check_dataset",
    "check_values",
    "check_writable_dir",
    "config_diff",
]

#: schedules stepped after every optimizer step (``transformers.get_scheduler``), with warmup;
#: every other ``training.scheduler`` is a ``torch.optim.lr_scheduler`` class stepped once per epoch.
STEP_SCHEDULERS = {
    "linear": "linear",
    "cosine_with_warmup": "cosine",
    "constant_with_warmup": "constant_with_warmup",
    "polynomial": "polynomial",
}


@dataclass
class DistributedConfig(Config):
    """How a run launched by ``torchrun`` trains on several processes (``training.distributed``;
    ignored by a single process). See :mod:`gnnlm.train.distributed`.

    Attributes:
        strategy: ``ddp`` (``DistributedDataParallel``: every rank holds the whole model) or ``fsdp``
            (torch's ``FullyShardedDataParallel``, one unit: parameters, gradients and optimizer
            state sharded across ranks between steps, the whole parameters gathered for a step;
            for optimizer state and gradients that do not fit one device).
        backend: the process group's backend (``None``: ``nccl`` on CUDA, ``gloo`` on CPU).
        find_unused_parameters: DDP's option: let a step leave trainable parameters without a
            gradient (a fused LM's unused pooler, an arm's idle gates). Costs a graph walk per step;
            ``false`` when every trainable parameter always gets a gradient.
        timeout_minutes: how long a rank waits for the others (e.g. while rank 0 evaluates).
    """

    strategy: str = "ddp"
    backend: str | None = None
    find_unused_parameters: bool = True
    timeout_minutes: float = checked(60.0, POSITIVE, "60")

    def __post_init__(self) -> None:
        if self.strategy not in ("ddp", "fsdp"):
            raise ValueError(
                f"training.distributed.strategy must be 'ddp' or 'fsdp', got {self.strategy!r}"
            )
        if self.backend not in (None, "gloo", "nccl", "mpi"):
            raise ValueError(
                "training.distributed.backend must be null, 'gloo', 'nccl' or 'mpi', got "
                f"{self.backend!r}"
            )


@dataclass
class TrainingConfig(Config):
    """How the engine trains (every task).

    Attributes:
        epochs: maximum number of epochs (early stopping may end sooner).
        batch_size: examples per forward pass (a micro-batch when ``accumulation_steps > 1``).
        accumulation_steps: micro-batches whose gradients add up to one optimizer step; the loss of
            each is weighted by its share of the examples, so ``k`` micro-batches of ``b`` make the
            same step as one batch of ``k * b``.
        lr: learning rate (of every parameter group that does not set its own).
        optimizer: ``adam``, ``adamw``, ``adagrad``, ``sgd``, ... (any ``torch.optim`` optimizer by name).
        optimizer_kwargs: extra optimizer arguments (``weight_decay``, ``betas``, ...).
        param_groups: per named parameter group of the task (e.g. ``lm``, ``gnn``, ``fusion``, ``gates``,
            ``head``), optimizer options of its own: ``{gates: {lr: 0.02, weight_decay: 0}}``.
        scheduler: ``None``; a per-step schedule with warmup (``linear``: warmup then linear decay
            to 0, ``cosine_with_warmup``, ``constant_with_warmup``, ``polynomial``); or any
            ``torch.optim.lr_scheduler`` class by name (``step``, ``exponential``, ``plateau``,
            ``cosineannealing``, ...), stepped once per epoch (``plateau`` on the validation metric).
        scheduler_kwargs: its arguments (``step_size``, ``gamma``, ``factor``, ...).
        warmup_steps: optimizer steps of linear warmup (per-step schedules).
        clip_grad_norm: clip the gradient norm to this value (``None``: no clipping).
        checkpoint_frequency: write a resumable checkpoint every this many epochs (0: never).
        checkpoint_steps: also every this many optimizer steps, inside an epoch (0: never); resuming
            from one continues mid-epoch, exactly.
        keep_checkpoint: keep the resumable checkpoint once the run has finished (it holds the last
            and best weights and the optimizer state, ~4x the model). ``False`` deletes it after
            ``model/`` and ``metrics.json`` are written, for sweeps and benchmarks of many runs; such a
            run can no longer be continued with more epochs.
        log_steps: also log a row every this many optimizer steps with the running means of the
            epoch's training logs (``train_<name>``; 0: rows at epoch ends and evaluations only), e.g.
            to plot injection gates over training.
        deterministic: use ``torch.use_deterministic_algorithms`` during the run.
        device: ``cpu``, ``cuda``, ``cuda:1``, ... or ``auto`` (CUDA when available). Batches are drawn on
            the CPU from one seeded generator; exact resume is guaranteed on CPU.
        autocast: ``None`` or ``bf16``: run forward passes under ``torch.autocast`` in bfloat16 (on a
            GPU; weights and optimizer stay float32).
        compile: run each training step under ``torch.compile`` (the task's whole step, loss
            included; evaluation stays eager). Needs a C compiler for the default ``inductor``
            backend on CPU.
        compile_kwargs: arguments of ``torch.compile`` (``mode``, ``backend``, ``dynamic``, ...).
        distributed: options of multi-process runs under ``torchrun`` (:class:`DistributedConfig`).
    """

    epochs: int = checked(1, AT_LEAST_1, "10")
    batch_size: int = checked(32, AT_LEAST_1, "32")
    accumulation_steps: int = checked(1, AT_LEAST_1, "1")
    lr: float = checked(0.001, POSITIVE, "0.001")
    optimizer: str = "adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    param_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    scheduler: str | None = None
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    warmup_steps: int = checked(0, AT_LEAST_0, "100")
    clip_grad_norm: float | None = checked(None, POSITIVE, "1.0, or null for no clipping")
    checkpoint_frequency: int = checked(1, AT_LEAST_0, "1, or 0 for never")
    checkpoint_steps: int = checked(0, AT_LEAST_0, "500, or 0 for only at epoch ends")
    keep_checkpoint: bool = True
    log_steps: int = checked(0, AT_LEAST_0, "10, or 0 for rows at epoch ends and evaluations only")
    deterministic: bool = True
    device: str = "cpu"
    autocast: str | None = None
    compile: bool = False
    compile_kwargs: dict[str, Any] = field(default_factory=dict)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        if self.autocast not in (None, "bf16"):
            raise ValueError(f"training.autocast must be null or 'bf16', got {self.autocast!r}")


@dataclass
class EvaluationConfig(Config):
    """Validation during training and the final evaluation.

    Attributes:
        batch_size: examples (queries) scored at once.
        frequency: evaluate on the validation split every this many epochs (0: only at the end).
        steps: also every this many optimizer steps (0: only at epoch ends).
        patience: stop after this many evaluations without improvement (0: never stop early).
        metric: the validation metric that selects the best weights (``None``: the task's default);
            its direction (maximise or minimise) is the task's.
    """

    batch_size: int = checked(256, AT_LEAST_1, "256")
    frequency: int = checked(1, AT_LEAST_0, "5, or 0 for only at the end")
    steps: int = checked(0, AT_LEAST_0, "200, or 0 for only at epoch ends")
    patience: int = checked(5, AT_LEAST_0, "5, or 0 for no early stopping")
    metric: str | None = None


@dataclass
class RunConfig(Config):
    """One run of a task (see the module docstring); tasks subclass it with their own sections.

    Attributes:
        task: the task, a registered name (``link_prediction``, ``triple_classification``) or a dotted
            path ``pkg.mod:MyTask``.
        dataset: the data, any name :func:`gnnlm.data.load_dataset` accepts.
        dataset_kwargs: options of its loader.
        seed: seeds initialisation, data order and sampling.
        training: the engine's training options.
        evaluation: validation and early stopping.
        variants: arms to compare, ``name -> {dotted.key: value}`` overrides of this config (``{}``: the
            config itself); each arm runs with every seed of ``seeds`` and the run directory gets a
            comparison table (:mod:`gnnlm.train.variants`).
        seeds: the seeds of a comparison (``[]``: just ``seed``).
        finetuning: how the model is updated: frozen parts, LoRA, phases, adversarial training,
            meta-learning (:mod:`gnnlm.strategies`; the default trains everything).
        pretraining: a whole config of a pre-training task (``task: pretraining`` with ``objectives:
            [mlm, kepler, link_prediction]``, see :mod:`gnnlm.tasks.pretraining`) that runs first, into
            ``RUN_DIR/pretraining``; this run then starts from its weights (the parameters the two
            models share, by name: the fused LM): two-stage injection. Its ``model:`` and ``dataset``
            default to this run's, so the two models match. ``{}``: none.
    """

    task: str = "link_prediction"
    dataset: str = ""
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    finetuning: FinetuningConfig = field(default_factory=FinetuningConfig)
    pretraining: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, overrides in self.variants.items():
            bad = [k for k in (overrides or {}) if k.split(".")[0] in ("variants", "seeds", "task")]
            if bad:
                raise ValueError(f"variants.{name}: a variant cannot set {', '.join(bad)}")

    @property
    def is_comparison(self) -> bool:
        """Whether this config runs several arms or seeds (:func:`gnnlm.train.variants.run_variants`)."""
        return bool(self.variants) or len(self.seeds) > 1

    def variant(self, name: str | None, seed: int | None = None) -> RunConfig:
        """This config with variant ``name``'s overrides and ``seed``, as a single run."""
        overrides: dict[str, Any] = dict(self.variants[name] or {}) if name is not None else {}
        if seed is not None:
            overrides["seed"] = seed
        single = apply_overrides(self, overrides)
        single.variants, single.seeds = {}, []
        return single

    def check_variants(self) -> None:
        """Apply every variant's overrides once, so a typo fails before anything trains."""
        for name in self.variants:
            try:
                self.variant(name)
            except ConfigError as err:
                raise ConfigError(f"{self.at(f'variants.{name}')}variants.{name}: {err}") from None


def check_dataset(config: RunConfig) -> None:
    """Check ``dataset`` and the keys of ``dataset_kwargs`` against the loader, reading no data."""
    from gnnlm.data.registry import get_dataset

    valid = _dataset_keywords(config.dataset)
    if valid is not None:
        check_kwargs(
            config, "dataset_kwargs", type, config.dataset_kwargs, valid=(valid, False),
            name=repr(config.dataset),
        )  # fmt: skip
    try:
        get_dataset(config.dataset, **config.dataset_kwargs)  # builds the loader; reads nothing
    except (ValueError, TypeError) as err:
        key = "dataset"
        if isinstance(err, TypeError):  # an option the loader does not take: point at it
            named = [k for k in config.dataset_kwargs if repr(str(k)) in str(err)]
            key = f"dataset_kwargs.{named[0]}" if named else "dataset_kwargs"
        raise ConfigError(f"{config.at(key)}{' '.join(str(err).split())}") from None


def _dataset_keywords(name: str) -> list[str] | None:
    """Options a registered dataset (or ``tsv``) takes: its and its base classes' constructor
    arguments (they pass ``**kwargs`` up); ``None`` for an unknown name or an open-ended loader."""
    from gnnlm.data.registry import dataset_resolver
    from gnnlm.data.tsv import TSVDataset

    if name == "tsv" or name.startswith("tsv:"):
        cls = TSVDataset
    else:
        try:
            cls = dataset_resolver.lookup(name)
        except (KeyError, ValueError):
            return None
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        named, _ = constructor_keywords(init)
        names += [n for n in named if n not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            return [n for n in names if not (n == "path" and name.startswith("tsv:"))]
    return None
