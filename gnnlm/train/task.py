"""The contract between the engine (:class:`~gnnlm.train.trainer.Trainer`) and a task.

The engine owns the loop: data order, optimizer steps, accumulation, clipping, schedules, evaluation,
early stopping, checkpoints, logs and exact resume. A task owns what is specific to it: its data, its
model, the loss of a batch and its metrics. The split is PyTorch Lightning's (Trainer /
LightningModule); a task is found by name, class, instance or ``pkg.mod:Class`` (:mod:`gnnlm.tasks`).

A minimal task::

    @dataclass
    class MyConfig(RunConfig):
        task: str = "my_pkg.tasks:MyTask"
        hidden: int = 16

    class MyTask(Task):
        name = "my_task"
        config_class = MyConfig
        metrics = {"accuracy": "max", "loss": "min"}

        def setup(self):                                   # load data
            self.x, self.y = ...
        def build_model(self):
            return nn.Linear(4, 2)
        def num_train_examples(self):
            return len(self.y["train"])
        def training_step(self, model, indices, generator):
            return F.cross_entropy(model(self.x["train"][indices]), self.y["train"][indices])
        def evaluate(self, model, split):
            return {"accuracy": ...}

Everything else has a default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gnnlm.train.config import ConfigError, RunConfig

#: the file :meth:`Task.save_model` writes (safetensors, never a pickle).
WEIGHTS_NAME = "model.safetensors"


@dataclass
class StepOutput:
    """What :meth:`Task.training_step` may return instead of a bare loss.

    Attributes:
        loss: the scalar loss to minimise (a mean over the batch's examples).
        logs: extra scalars to average over the epoch and log (``{"contrastive": 0.3}``).
    """

    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Task:
    """Base class of tasks: override what the engine cannot know (see the module docstring).

    Args:
        config: the run's config (an instance of :attr:`config_class`).
        data: data already loaded (skips :meth:`setup`'s loading where the task supports it), e.g. the
            :class:`~gnnlm.data.KnowledgeGraph` of a link-prediction run.
    """

    #: the registry name.
    name: ClassVar[str] = ""
    #: the config dataclass this task reads (``task:`` in a YAML file picks it).
    config_class: ClassVar[type[RunConfig]] = RunConfig
    #: metric name -> ``"max"`` or ``"min"``; the first is the default selection metric, and these
    #: are logged at every validation.
    metrics: ClassVar[dict[str, str]] = {}

    def __init__(self, config: RunConfig, *, data: Any = None) -> None:
        self.config = config
        self.data = data
        #: optimizer steps completed so far; the engine sets it before every training step (tasks that
        #: schedule by step read it, e.g. round-robin multi-task sampling).
        self.step = 0

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the config before any data loads (component names, option ranges)."""

    def setup(self) -> None:
        """Load and prepare the data (called once by the engine, after :meth:`validate`)."""

    def build_model(self) -> nn.Module:
        """A freshly initialised model (the engine has seeded torch's generator with ``config.seed``)."""
        raise NotImplementedError

    def parameter_groups(self, model: nn.Module) -> Mapping[str, Iterable[nn.Parameter]]:
        """Named, disjoint groups of the model's parameters, each with its own options under
        ``training.param_groups.<name>``; parameters in no group are not trained."""
        return {"default": list(model.parameters())}

    def configure_optimizer(
        self, model: nn.Module, param_groups: list[dict[str, Any]]
    ) -> torch.optim.Optimizer | None:
        """The optimizer over ``param_groups``, or ``None`` for the engine's (``training.optimizer``,
        fused where torch has a fused kernel)."""
        return None

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        """Training examples per epoch; the engine shuffles ``range(n)`` and batches it."""
        raise NotImplementedError

    def training_step(
        self, model: nn.Module, indices: Tensor, generator: torch.Generator
    ) -> Tensor | StepOutput:
        """The loss (mean over examples) of training examples ``indices: [batch]``.

        ``generator`` is the run's seeded CPU generator: draw every random number of a step from it
        (negatives, dropout masks through torch's global generator are fine too), so that a resumed
        run repeats the uninterrupted one exactly.
        """
        raise NotImplementedError

    def sample_episode(self, generator: torch.Generator, settings: Any) -> Any:
        """A meta-learning episode (``finetuning.meta``): a
        :class:`~gnnlm.strategies.meta.Episode` of support and query indices into
        ``range(num_train_examples())``, disjoint, drawn from ``generator`` only (same seed, same
        episode). Tasks with classes draw ``settings.ways`` classes, ``settings.shots`` support and
        ``settings.queries`` query examples per class. The default has no episodes."""
        raise ConfigError(
            f"finetuning.meta: task {self.name or type(self).__name__} draws no episodes "
            "(it does not implement sample_episode)"
        )

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (e.g. parameter constraints such as unit norms)."""

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, split: str) -> dict[str, Any]:
        """Metrics of ``model`` (in eval mode, under ``torch.no_grad``) on ``split``."""
        raise NotImplementedError

    def has_split(self, split: str) -> bool:
        """Whether ``split`` has examples to evaluate."""
        return True

    def final_splits(self) -> tuple[str, ...]:
        """The splits evaluated at the end of a run and written to ``metrics.json``."""
        return tuple(s for s in ("valid", "test") if self.has_split(s))

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        """Extra entries of ``metrics.json``: by default the training throughput
        (``num_train_examples``, ``examples_per_second``); tasks add their data counts to it."""
        n = self.num_train_examples()
        return {
            "num_train_examples": n,
            "examples_per_second": n * epochs / train_seconds if train_seconds else None,
        }

    @property
    def selection_metric(self) -> tuple[str, bool]:
        """``(metric, maximise)`` that selects the best weights: ``evaluation.metric`` or the first of
        :attr:`metrics`."""
        if not self.metrics:
            raise ConfigError(f"task {self.name or type(self).__name__} declares no metrics")
        metric = self.config.evaluation.metric or next(iter(self.metrics))
        if metric not in self.metrics:
            raise ConfigError(
                f"{self.config.at('evaluation.metric')}evaluation.metric must be one of "
                f"{', '.join(self.metrics)} for task {self.name}, got {metric!r}"
            )
        return metric, self.metrics[metric] == "max"

    # -- saving ------------------------------------------------------------------------------------
    def save_model(self, model: nn.Module, directory: Path) -> None:
        """Write the trained model to ``directory`` (default: its weights as safetensors; the run's
        ``config.yaml`` rebuilds it)."""
        from gnnlm.train.checkpoint import module_tensors, save_tensors

        save_tensors(Path(directory) / WEIGHTS_NAME, module_tensors(model))

    def load_model(self, directory: Path, *, trust_remote_code: bool = False) -> nn.Module:
        """The model :meth:`save_model` wrote (default: :meth:`build_model`, then its weights)."""
        from gnnlm.train.checkpoint import load_module_tensors, load_tensors

        model = self.build_model()
        tensors, _ = load_tensors(Path(directory) / WEIGHTS_NAME)
        load_module_tensors(model, tensors, source=str(Path(directory) / WEIGHTS_NAME))
        return model

    def init_from(self, model: nn.Module, source: Path) -> dict[str, Any]:
        """Warm start: copy the weights of the run (or model folder) ``source`` into ``model``; returns
        a record of where they came from (written to ``init_from.json``)."""
        from gnnlm.train.checkpoint import CheckpointError, load_module_tensors, load_tensors

        source = Path(source)
        path = next(
            (p for p in (source / "model" / WEIGHTS_NAME, source / WEIGHTS_NAME) if p.is_file()),
            None,
        )
        if path is None:
            raise CheckpointError(f"{source}: no {WEIGHTS_NAME} (in model/ or the folder itself)")
        tensors, _ = load_tensors(path)
        load_module_tensors(model, tensors, source=str(path))
        return {"source": str(source), "weights": str(path)}


def init_shared_weights(model: nn.Module, source: Path) -> dict[str, Any]:
    """Copy into ``model`` every tensor of ``source``'s saved model whose name and shape it shares (the
    hand-over of two-stage training: a pre-training model and a task model share their fused LM).

    Returns the record written to ``init_from.json``: the source, and how many tensors were copied,
    left at their initialisation (only in ``model``) and not used (only in the source).

    Raises:
        CheckpointError: no saved weights, or no shared tensor (the models have nothing in common), or a
            shared name with another shape.
    """
    from gnnlm.train.checkpoint import CheckpointError, load_tensors

    source = Path(source)
    path = next(
        (p for p in (source / "model" / WEIGHTS_NAME, source / WEIGHTS_NAME) if p.is_file()), None
    )
    if path is None:
        raise CheckpointError(f"{source}: no {WEIGHTS_NAME} (in model/ or the folder itself)")
    tensors, _ = load_tensors(path)
    state = model.state_dict()
    shared = sorted(set(state) & set(tensors))
    if not shared:
        raise CheckpointError(
            f"{path}: shares no parameter name with this model (e.g. {next(iter(state), '')!r} "
            f"against {next(iter(tensors), '')!r}); pre-train a model with the same model: block"
        )
    for key in shared:
        if tensors[key].shape != state[key].shape:
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(tensors[key].shape)}, this model expects "
                f"{tuple(state[key].shape)}; pre-train with the same model: block"
            )
    with torch.no_grad():
        for key in shared:
            state[key].copy_(tensors[key])
    return {
        "source": str(source),
        "weights": str(path),
        "copied": len(shared),
        "kept_initialisation": sorted(set(state) - set(tensors)),
        "unused": len(set(tensors) - set(state)),
    }
