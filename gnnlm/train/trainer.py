"""The training engine: epochs, validation, early stopping, logging, checkpoints and exact resume.

:class:`Trainer` turns a :class:`~gnnlm.train.config.TrainConfig` into a trained model::

    config = TrainConfig.load("configs/umls/complex.yaml")
    result = Trainer(config, run_dir="runs/umls-complex").fit()
    result.metrics["test"]["mrr"]

A run directory ends up with ``config.yaml`` (the config it ran with), ``metrics.csv`` / ``log.jsonl``
(one row per epoch), ``checkpoint.safetensors`` (resumable state, see :mod:`gnnlm.train.checkpoint`),
``model/`` (the best weights, :func:`~gnnlm.train.pretrained.save_pretrained`) and ``metrics.json``
(final filtered metrics on ``valid`` and ``test``). ``fit(resume=True)`` continues from the checkpoint and
reproduces the uninterrupted run bit for bit on CPU: weights, optimizer, scheduler, every RNG, the
early-stopping state and the best weights are all restored.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from class_resolver.contrib.torch import lr_scheduler_resolver
from torch import Tensor, nn

from gnnlm.train.checkpoint import (
    CheckpointError,
    atomic_write_json,
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
    TrainConfig,
    check_components,
    check_values,
    check_writable_dir,
    config_diff,
)
from gnnlm.train.loops import KvsAllLoop, SLCWALoop, TrainingLoop, loop_resolver
from gnnlm.train.losses import loss_resolver
from gnnlm.train.negative_sampling import sampler_resolver
from gnnlm.train.pretrained import (
    PretrainedConfig,
    build_model,
    init_from_pretrained,
    save_pretrained,
)
from gnnlm.train.regularizers import regularizer_resolver
from gnnlm.train.run_dir import open_run_dir
from gnnlm.train.run_log import MetricsLogger
from gnnlm.train.sparse import make_optimizer, use_sparse_updates
from gnnlm.utils.progress import progress

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph

CHECKPOINT_NAME = "checkpoint.safetensors"
INIT_FROM_NAME = "init_from.json"
HEADLINE = ("mrr", "mr", "hits@1", "hits@3", "hits@10")
_SCHEDULER_SYNONYMS = {"plateau": "reducelronplateau", "cosine": "cosineannealing"}


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        model: the trained model (best validation weights when early stopping evaluated), in eval mode.
        config: the config it ran with.
        metrics: ``{"valid": {...}, "test": {...}, "best_epoch", "epochs", "train_seconds", ...}``, as
            written to ``metrics.json``.
        history: one dict per epoch (as in ``log.jsonl``).
        run_dir: the run directory, or ``None``.
        pretrained_config: what :meth:`save_pretrained` writes as ``config.json``.
        kg: the graph it was trained on.
    """

    model: nn.Module
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    pretrained_config: PretrainedConfig | None = None
    kg: KnowledgeGraph | None = field(default=None, repr=False)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the trained model for :func:`~gnnlm.train.from_pretrained` (config, weights, vocab)."""
        return save_pretrained(self.model, directory, self.pretrained_config, kg=self.kg)


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
    best: float = -math.inf
    best_epoch: int = 0
    bad_evaluations: int = 0
    stopped: bool = False


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


class Trainer:
    """Trains a link-prediction model as a :class:`TrainConfig` describes.

    Args:
        config: the run.
        run_dir: where logs, checkpoints and the final model go (``None``: nothing is written).
        kg: the graph, if already loaded (default: ``load_dataset(config.dataset, **config.dataset_kwargs)``).
        quiet: no progress bars.
        callbacks: functions ``callback(trainer, row)`` called after every epoch (after its checkpoint is
            written) with the epoch's log row; raising from one interrupts training.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        run_dir: str | Path | None = None,
        kg: KnowledgeGraph | None = None,
        quiet: bool = False,
        callbacks: Sequence[Callable[[Trainer, dict[str, Any]], None]] = (),
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.quiet = quiet
        self.callbacks = list(callbacks)
        self._validate(check_dataset=kg is None)
        if kg is None:
            from gnnlm.data import load_dataset

            kg = load_dataset(config.dataset, **config.dataset_kwargs)
        self.kg = kg
        if config.evaluation.frequency and len(kg.valid) == 0:
            raise ConfigError(
                f"{kg.name} has no validation triples: set evaluation.frequency=0 (no early stopping)"
            )
        self.evaluator = self._make_evaluator()

    # -- construction ------------------------------------------------------------------------------
    def _validate(self, check_dataset: bool = True) -> None:
        """Everything that can be checked before the data loads: values, component names and their
        keyword arguments (:func:`~gnnlm.train.config.check_components`; the dataset's only when the
        trainer loads it), and that ``run_dir`` can be written (a read-only or invalid ``--out`` fails
        now, not after training)."""
        check_values(self.config)
        check_components(self.config, dataset=check_dataset)
        if self.run_dir is not None:
            check_writable_dir(self.run_dir)
        t, e = self.config.training, self.config.evaluation
        loop = loop_resolver.lookup(t.loop)
        if loop is SLCWALoop and t.label_smoothing:
            raise ConfigError(
                "training.label_smoothing applies to the kvsall loop only; set it to 0 for slcwa"
            )
        if loop is KvsAllLoop and t.adversarial_temperature is not None:
            raise ConfigError("training.adversarial_temperature applies to the slcwa loop only")
        if loop is KvsAllLoop and not loss_resolver.lookup(t.loss).supports_kvsall:
            raise ConfigError(
                f"training.loss={t.loss!r} does not support the kvsall loop; use slcwa"
            )
        if e.metric not in HEADLINE:
            raise ConfigError(f"evaluation.metric must be one of {HEADLINE}, got {e.metric!r}")

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
        return device

    def _make_evaluator(self):
        from gnnlm.eval import RankBasedEvaluator

        return RankBasedEvaluator(
            self.kg.filter_index, batch_size=self.config.evaluation.batch_size, quiet=True
        )

    def _build(self) -> None:
        cfg, t = self.config, self.config.training
        seed_everything(cfg.seed)
        self.model = build_model(
            cfg.model,
            self.kg.num_entities,
            self.kg.num_relations,
            reciprocal=t.reciprocal,
            kg=self.kg,
        ).to(self.device)
        # training.sparse_updates: row-sparse gradients and the optimizer's sparse form (gnnlm.train.sparse)
        self.sparse_updates = use_sparse_updates(t, self.model)
        self.optimizer = make_optimizer(t, self.model.parameters(), sparse=self.sparse_updates)
        self.scheduler = None
        self._plateau = False
        if t.scheduler:
            name = _SCHEDULER_SYNONYMS.get(t.scheduler.lower(), t.scheduler)
            scheduler_cls = lr_scheduler_resolver.lookup(name)
            self._plateau = scheduler_cls is torch.optim.lr_scheduler.ReduceLROnPlateau
            kwargs = dict(t.scheduler_kwargs)
            if self._plateau:
                kwargs.setdefault("mode", "max")
            self.scheduler = scheduler_cls(self.optimizer, **kwargs)
        loss = loss_resolver.make(t.loss, t.loss_kwargs)
        regularizer = (
            regularizer_resolver.make(t.regularizer, weight=t.regularizer_weight)
            if t.regularizer
            else None
        )
        self.loop = self._make_loop(loss, regularizer)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.early_stopping = _EarlyStopping()
        self.best_weights: dict[str, Tensor] | None = None
        self.epoch = 0

    def _make_loop(self, loss, regularizer) -> TrainingLoop:
        t = self.config.training
        loop_cls = loop_resolver.lookup(t.loop)
        if loop_cls is KvsAllLoop:
            return KvsAllLoop(
                self.model, self.kg.train, self.kg.num_relations, loss, batch_size=t.batch_size,
                reciprocal=t.reciprocal, label_smoothing=t.label_smoothing, regularizer=regularizer,
            )  # fmt: skip
        triples = self.kg.with_inverse_triples(self.kg.train) if t.reciprocal else self.kg.train
        sampler = sampler_resolver.make(
            t.sampler, triples=triples, num_entities=self.kg.num_entities,
            num_negatives=t.num_negatives, filtered=t.filter_negatives,
        )  # fmt: skip
        return SLCWALoop(
            self.model, triples, sampler, loss, batch_size=t.batch_size,
            adversarial_temperature=t.adversarial_temperature, regularizer=regularizer,
            sparse=self.sparse_updates,
        )  # fmt: skip

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
                ``model/``) or ``save_pretrained`` folder; same model and graph required, while the
                optimizer, scheduler and RNGs start fresh. The source is recorded in ``init_from.json``
                and ``metrics.json``.

        Raises:
            CheckpointError: ``resume`` without a readable checkpoint; an unusable ``init_from``.
            RunDirError: ``run_dir`` is in use by another process, or not empty without ``resume`` /
                ``overwrite``.
            ConfigError: ``resume`` with a config that differs from the run's (other than ``training.epochs``).
            TrainingDivergedError: the loss became NaN/inf (after saving the best model and metrics).
        """
        if resume and init_from is not None:
            raise ConfigError(
                "init_from starts a new run from saved weights; it cannot be combined with resume"
            )
        with contextlib.ExitStack() as stack:
            if self.run_dir is not None:
                stack.enter_context(open_run_dir(self.run_dir, resume=resume, overwrite=overwrite))
            stack.enter_context(deterministic_algorithms(self.config.training.deterministic))
            return self._fit(resume, init_from)

    def _fit(self, resume: bool, init_from: str | Path | None = None) -> TrainResult:
        self._build()
        logger = MetricsLogger(self.run_dir)
        self.init_record: dict[str, Any] | None = None
        if resume:
            self._resume(logger)
        elif init_from is not None:
            self._init_from(init_from)
        if self.run_dir is not None:
            self.config.save(self.run_dir / "config.yaml")
        t, e = self.config.training, self.config.evaluation
        train_seconds = sum(row["seconds"] for row in logger.rows)
        epochs = range(self.epoch + 1, t.epochs + 1)
        # a bar in a terminal; a line per epoch in a log file (see gnnlm.utils.progress)
        bar = progress(
            total=t.epochs, initial=self.epoch, desc="epochs", unit="epoch", every=0,
            disable=self.quiet or self.early_stopping.stopped,
        )  # fmt: skip
        diverged = None
        try:
            for epoch in epochs:
                if self.early_stopping.stopped:
                    break
                start = time.perf_counter()
                loss = self._train_epoch()
                seconds = time.perf_counter() - start
                train_seconds += seconds
                self.epoch = epoch
                row: dict[str, Any] = {
                    "epoch": epoch, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds,
                }  # fmt: skip
                if e.frequency and epoch % e.frequency == 0:
                    valid = self.evaluate("valid")
                    row.update({f"valid_{k}": valid[k] for k in HEADLINE})
                    self._early_stopping_step(valid[e.metric], epoch)
                    if self._plateau:
                        self.scheduler.step(valid[e.metric])
                if self.scheduler is not None and not self._plateau:
                    self.scheduler.step()
                logger.log(row)
                if self.run_dir is not None and (
                    (t.checkpoint_frequency and epoch % t.checkpoint_frequency == 0)
                    or self.early_stopping.stopped
                    or epoch == t.epochs
                ):
                    self.save_checkpoint(self.run_dir / CHECKPOINT_NAME)
                bar.set_postfix(
                    loss=f"{loss:.4g}",
                    **({"valid_mrr": f"{row['valid_mrr']:.4f}"} if "valid_mrr" in row else {}),
                )
                bar.update()
                for callback in self.callbacks:
                    callback(self, row)
                if self.early_stopping.stopped:
                    break
        except FloatingPointError as err:  # a NaN/inf loss: keep what was good so far
            diverged = str(err)
        finally:
            bar.close()
            logger.close()
        if diverged is not None:
            self._diverged(logger, train_seconds, diverged)
        return self._finish(logger, train_seconds)

    def _train_epoch(self) -> float:
        self.model.train()
        total, count = 0.0, 0
        clip = self.config.training.clip_grad_norm
        num_batches = math.ceil(self.loop.num_examples / self.loop.batch_size)
        batches = progress(  # outside a terminal: a line every 30 s at most, none when done
            self.loop.batches(self.generator), total=num_batches, desc=f"epoch {self.epoch + 1}",
            leave=False, disable=self.quiet or num_batches < 20, unit="batch",
        )  # fmt: skip
        for indices in batches:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loop.batch_loss(indices, self.generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"epoch {self.epoch + 1}: loss became {loss.item()}; lower training.lr?"
                )
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            self._post_step()
            total += loss.item() * len(indices)
            count += len(indices)
        return total / max(count, 1)

    def _post_step(self) -> None:
        """Apply the model's parameter constraints after an optimizer step (e.g. TransE's unit norms)."""
        self.model.post_step()

    def _early_stopping_step(self, value: float, epoch: int) -> None:
        state, patience = self.early_stopping, self.config.evaluation.patience
        if value > state.best:
            state.best, state.best_epoch, state.bad_evaluations = value, epoch, 0
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            state.bad_evaluations += 1
            if patience and state.bad_evaluations >= patience:
                state.stopped = True

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, Any]:
        """Filtered rank-based metrics of the current model on ``split`` (``to_dict()`` of the evaluator)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self.evaluator.evaluate(self.model, self.kg.splits[split]).to_dict()
        finally:
            self.model.train(was_training)

    def _diverged(self, logger: MetricsLogger, train_seconds: float, reason: str) -> None:
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
        result = self._finish(logger, train_seconds, diverged=reason)
        where = f"; saved the epoch {result.metrics['best_epoch']} weights"
        if self.run_dir is not None:
            where += (
                f" to {self.run_dir / 'model'} and metrics.json; warm-start from them with "
                f"--init-from {self.run_dir} (e.g. with a lower training.lr)"
            )
        raise TrainingDivergedError(reason + where, result)

    def _finish(
        self, logger: MetricsLogger, train_seconds: float, *, diverged: str | None = None
    ) -> TrainResult:
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        self.model.eval()
        metrics: dict[str, Any] = {}
        eval_seconds = {}
        for split in ("valid", "test"):
            if len(self.kg.splits[split]) == 0:
                continue
            start = time.perf_counter()
            metrics[split] = self.evaluate(split)
            eval_seconds[split] = time.perf_counter() - start
        num_train = len(self.kg.train)
        metrics.update(
            best_epoch=self.early_stopping.best_epoch or self.epoch,
            epochs=self.epoch,
            stopped_early=self.early_stopping.stopped,
            train_seconds=train_seconds,
            triples_per_second=num_train * self.epoch / train_seconds if train_seconds else None,
            eval_seconds=eval_seconds,
            num_parameters=sum(p.numel() for p in self.model.parameters()),
        )
        if self.init_record is not None:
            metrics["init_from"] = self.init_record
        if diverged is not None:
            metrics["diverged"] = diverged
        if self.run_dir is not None:
            save_pretrained(
                self.model, self.run_dir / "model", self.pretrained_config(), kg=self.kg
            )
            atomic_write_json(self.run_dir / "metrics.json", metrics)
        return TrainResult(
            self.model,
            self.config,
            metrics,
            list(logger.rows),
            self.run_dir,
            self.pretrained_config(),
            self.kg,
        )

    def pretrained_config(self) -> PretrainedConfig:
        return PretrainedConfig(
            model=self.config.model,
            num_entities=self.kg.num_entities,
            num_relations=self.kg.num_relations,
            reciprocal=self.config.training.reciprocal,
            dataset=self.config.dataset,
            dataset_kwargs=self.config.dataset_kwargs,
        )

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> None:
        """Atomically write everything needed to continue this run exactly (one safetensors file)."""
        tensors = module_tensors(self.model, "model.")
        if self.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        state = {
            "epoch": self.epoch,
            "config": self.config.to_dict(),
            "early_stopping": vars(self.early_stopping),
            "has_best": self.best_weights is not None,
            "optimizer": optimizer_state(self.optimizer, tensors),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng_state(self.generator, tensors),
        }
        save_tensors(path, tensors, state)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` into the built trainer."""
        tensors, state = load_tensors(path)
        if state is None or "epoch" not in state:
            raise CheckpointError(
                f"{path}: a safetensors file, but not a gnnlm training checkpoint"
            )
        load_module_tensors(self.model, tensors, "model.", source=str(path))
        self.best_weights = (
            {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
            if state["has_best"]
            else None
        )
        load_optimizer_state(self.optimizer, state["optimizer"], tensors)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        load_rng_state(self.generator, state["rng"], tensors)
        self.early_stopping = _EarlyStopping(**state["early_stopping"])
        self.epoch = int(state["epoch"])

    def _init_from(self, source: str | Path) -> None:
        """Warm start: the weights of ``source``'s model, with this run's fresh optimizer and RNGs."""
        self.init_record = init_from_pretrained(
            self.model, source, self.pretrained_config(), self.kg
        )
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / INIT_FROM_NAME, self.init_record)

    def _resume(self, logger: MetricsLogger) -> None:
        if self.run_dir is None:
            raise CheckpointError("resume needs a run directory")
        path = self.run_dir / CHECKPOINT_NAME
        if not path.exists():
            raise CheckpointError(f"{path}: no checkpoint to resume from")
        _, state = load_tensors(path)
        saved = TrainConfig.from_dict(state["config"], source=str(path))
        diff = {k: v for k, v in config_diff(saved, self.config).items() if k != "training.epochs"}
        if diff:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"{path}: cannot resume with a different config ({lines})")
        self.load_checkpoint(path)
        logger.resume(self.epoch)
        init_path = self.run_dir / INIT_FROM_NAME
        if init_path.is_file():  # a warm-started run keeps its record across resumes
            self.init_record = json.loads(init_path.read_text())


def train(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    *,
    kg: KnowledgeGraph | None = None,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a model as ``config`` describes; see :class:`Trainer` and :meth:`Trainer.fit`."""
    trainer = Trainer(config, run_dir=run_dir, kg=kg, quiet=quiet)
    return trainer.fit(resume=resume, overwrite=overwrite, init_from=init_from)
