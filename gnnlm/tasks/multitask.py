"""Multi-task fine-tuning: several tasks share one fused model (one head each), trained by one engine run.

Each sub-task is a whole config of its own task (its data, its model); the multi-task run builds every
sub-model, ties the ``share`` modules to the first sub-task's (so their parameters are one set, updated
by every task's loss) and trains the ``nn.ModuleDict`` of sub-models. Every micro-batch belongs to one
sub-task, chosen by ``sampling``::

    task: multitask
    tasks:                        # name -> a full config of a sub-task (its task:, dataset, model, data)
      matched: {task: triple_classification, dataset: wn18rr, model: {...}, data: {...}}
      neighbourhood: {task: triple_classification, dataset: wn18rr, data: {negatives: neighbourhood}}
    share: [fused]                # module paths tied to the FIRST sub-task's modules ([fused.lm] when
                                  # the KGs differ: the GNN tables of two graphs cannot be one)
    sampling: proportional        # proportional (to training-set sizes) | temperature | round_robin
    temperature: 2.0              # temperature: p(task) ~ n_task ** (1 / T)
    loss_weights: {neighbourhood: 0.5}   # default 1
    training: {...}               # the engine's, for the whole run
    evaluation: {metric: mean_score}

A sub-task's config may not set what belongs to the run: ``training``, ``finetuning``, ``pretraining``,
``variants``, ``seeds`` and ``seed`` (the run's seed is used: a ``seeds:`` comparison varies every
sub-task). Its ``evaluation`` may set only ``metric`` (the sub-task's own selection metric, which enters
``mean_score``) and ``batch_size`` (default: the run's ``evaluation.batch_size``). Strategies of the
run's ``finetuning:`` section (LoRA, frozen layers, phases, adversarial) apply to the whole
``ModuleDict``, a shared module once.

Metrics: ``<task>/<metric>`` for each metric of each sub-task, and ``mean_score`` (the default
selection metric): the mean over sub-tasks of each one's selection metric, negated where that metric is
minimised, so that larger is always better. ``metrics.json`` also holds each sub-task's whole
evaluation under its name. Training logs: ``share_<task>`` (the fraction of the epoch's examples that
went to the task) and ``loss_<task>`` (its unweighted loss where chosen, 0 elsewhere; so
``train_loss_<task> / train_share_<task>`` is the task's mean loss over the epoch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import POSITIVE, ConfigError, checked
from gnnlm.train.config import RunConfig
from gnnlm.train.task import StepOutput, Task
from gnnlm.utils.strict_yaml import quote

#: ways to choose a micro-batch's sub-task (see TaskSampler).
SAMPLINGS = ("proportional", "temperature", "round_robin")
#: the run-level sections a sub-task's config may not set (the multi-task run's own).
RUN_KEYS = ("training", "finetuning", "pretraining", "variants", "seeds", "seed")
#: what a sub-task's ``evaluation:`` may set.
SUB_EVALUATION_KEYS = ("metric", "batch_size")
#: the selection metric over all sub-tasks.
MEAN_SCORE = "mean_score"


# -- config ------------------------------------------------------------------------------------------
@dataclass
class MultitaskConfig(RunConfig):
    """A multi-task run (see the module docstring for the YAML form).

    Attributes:
        tasks: sub-task name -> the mapping of a whole config of that task (with its ``task:``).
        share: module paths of the sub-models (``fused``, ``fused.lm``) tied to the first sub-task's.
        sampling: ``proportional`` (to the sub-tasks' training-set sizes), ``temperature``
            (``p ~ n ** (1 / temperature)``: 1 is proportional, larger flattens towards uniform) or
            ``round_robin`` (sub-task ``step % len(tasks)``: every optimizer step is one task's).
        temperature: the temperature of ``sampling: temperature``.
        loss_weights: sub-task name -> the weight of its loss (default 1).
    """

    task: str = "multitask"
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    share: list[str] = field(default_factory=lambda: ["fused"])
    sampling: str = "proportional"
    temperature: float = checked(2.0, POSITIVE, "2.0")
    loss_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in SAMPLINGS:
            raise ValueError(
                f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}"
            )


# -- sampling ----------------------------------------------------------------------------------------
class TaskSampler:
    """Chooses the sub-task of each micro-batch.

    ``proportional`` and ``temperature`` draw from the run's generator with probabilities
    ``n_i ** (1 / T) / sum_j n_j ** (1 / T)`` (``T = 1`` for proportional); ``round_robin`` takes task
    ``step % k`` with no draw, so all micro-batches of one optimizer step (``accumulation_steps``) go
    to one task. Either way the choice depends only on the generator's state and the step, both of
    which the engine's checkpoints restore: a resumed run chooses as the uninterrupted one did.

    Args:
        sizes: training-set size of each sub-task, in order.
        sampling: one of :data:`SAMPLINGS`.
        temperature: ``T`` of ``temperature`` sampling.
    """

    def __init__(self, sizes: Iterable[int], sampling: str, temperature: float = 1.0) -> None:
        self.sizes = [int(n) for n in sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"every sub-task needs training examples, got sizes {self.sizes}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        self.sampling = sampling
        power = 1.0 / temperature if sampling == "temperature" else 1.0
        weights = torch.tensor(self.sizes, dtype=torch.float64) ** power
        #: the probability of each sub-task (round robin: the share of steps over a whole cycle).
        self.probabilities = weights / weights.sum()
        if sampling == "round_robin":
            self.probabilities = torch.full((len(self.sizes),), 1.0 / len(self.sizes))

    def choose(self, step: int, generator: torch.Generator) -> int:
        """The sub-task (its position) of a micro-batch of optimizer step ``step``."""
        if self.sampling == "round_robin":
            return step % len(self.sizes)
        return int(torch.multinomial(self.probabilities, 1, generator=generator))


# -- task --------------------------------------------------------------------------------------------
class MultitaskTask(Task):
    """Several tasks, one model with shared modules (see the module docstring).

    Args:
        config: the run.
        data: ``{sub-task name: its data}`` for sub-tasks whose data is already loaded (e.g. a
            :class:`~gnnlm.data.KnowledgeGraph`); the others load their own.
    """

    name = "multitask"
    config_class = MultitaskConfig
    #: the default; an instance has ``mean_score`` and ``<task>/<metric>`` of its sub-tasks.
    metrics = {MEAN_SCORE: "max"}
    config: MultitaskConfig

    def __init__(self, config: MultitaskConfig, *, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(config, data=data)
        if data is not None and not isinstance(data, Mapping):
            raise TypeError("multitask data is a mapping {sub-task name: its data}")
        #: sub-tasks whose config sets its own evaluation.batch_size (the others follow the run's)
        self._own_batch_size: set[str] = set()
        # built here (not in setup) so that the metrics, and every config error of a sub-task, are
        # known before any data loads
        self.tasks: dict[str, Task] = {
            name: self._make_subtask(name, (data or {}).get(name)) for name in self._names()
        }
        self.metrics = {MEAN_SCORE: "max"}
        for name, task in self.tasks.items():
            self.metrics.update({f"{name}/{m}": d for m, d in task.metrics.items()})
        self.sampler: TaskSampler | None = None

    # -- sub-tasks ---------------------------------------------------------------------------------
    def _names(self) -> list[str]:
        c = self.config
        if not c.tasks:
            raise ConfigError(f"{c.at('tasks')}tasks: a multi-task run needs at least one sub-task")
        for name in c.tasks:
            if not name or "/" in name or name == MEAN_SCORE:
                raise ConfigError(
                    f"{c.at(f'tasks.{name}')}tasks: {quote(name)} cannot name a sub-task (names "
                    f"are non-empty, without '/', and not {MEAN_SCORE!r}: they prefix its metrics)"
                )
        return list(c.tasks)

    def _make_subtask(self, name: str, data: Any) -> Task:
        """The sub-task ``name``: its config class (from its ``task:``) loaded from its mapping, with
        errors naming ``tasks.<name>.<key>`` and where the run's config set it."""
        from gnnlm.config import _build  # the loader's builder: errors name the full dotted key
        from gnnlm.tasks.loading import task_class

        c, prefix = self.config, f"tasks.{name}."
        mapping = dict(c.tasks[name])
        task_name = mapping.get("task")
        if task_name is None:
            raise ConfigError(
                f"{c.at(f'{prefix}task')}{prefix}task: each sub-task names its task "
                "(e.g. task: triple_classification)"
            )
        cls = task_class(task_name, f"{c.at(f'{prefix}task')}{prefix}task")
        if issubclass(cls, MultitaskTask):
            raise ConfigError(
                f"{c.at(f'{prefix}task')}{prefix}task: a sub-task cannot be multitask"
            )
        evaluation = _check_subtask_mapping(c, prefix, mapping)
        if "batch_size" in evaluation:
            self._own_batch_size.add(name)
        mapping["seed"] = c.seed
        mapping["evaluation"] = {"batch_size": c.evaluation.batch_size, **evaluation}
        config = _build(
            cls.config_class, mapping, prefix=prefix, where=lambda k: c.origin(k) or "config"
        )
        # the sub-task's own checks write f"{config.at(key)}{key} ...": point them at the run's file
        # and say which sub-task the key is in
        config.at = _scoped_at(c, prefix)
        return cls(config, data=data)

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The sampling options and loss weights, then every sub-task's own checks."""
        c = self.config
        for name, weight in c.loss_weights.items():
            if name not in self.tasks:
                raise ConfigError(
                    f"{c.at(f'loss_weights.{name}')}loss_weights.{name}: no such sub-task; "
                    f"sub-tasks: {', '.join(self.tasks)}"
                )
            if not (math.isfinite(weight) and weight >= 0):
                raise ConfigError(
                    f"{c.at(f'loss_weights.{name}')}loss_weights.{name} must be a finite number "
                    f">= 0, got {quote(weight)}"
                )
        for task in self.tasks.values():
            task.validate()
            task.selection_metric  # noqa: B018 (its evaluation.metric must be one of its metrics)

    def setup(self) -> None:
        """Set up every sub-task (in config order), then the sampler over their training sizes."""
        for name, task in self.tasks.items():
            if name not in self._own_batch_size:  # `gnnlm evaluate --batch-size` sets the run's
                task.config.evaluation.batch_size = self.config.evaluation.batch_size
            task.setup()
        sizes = [task.num_train_examples() for task in self.tasks.values()]
        self.sampler = TaskSampler(sizes, self.config.sampling, self.config.temperature)

    def build_model(self) -> nn.ModuleDict:
        """Every sub-task's model (in config order, from the one seeded generator), with the
        ``share`` modules of each replaced by the first sub-task's."""
        models = {name: task.build_model() for name, task in self.tasks.items()}
        first, *others = models
        for k, path in enumerate(self.config.share):
            where = f"{self.config.at('share')}share[{k}] {quote(path)}"
            shared = _module_at(models[first], path, f"{where}: tasks.{first} has no such module")
            for name in others:
                tie(models[name], path, shared, where=f"{where}: tasks.{name}")
        return nn.ModuleDict(models)

    def parameter_groups(self, model: nn.ModuleDict) -> dict[str, list[nn.Parameter]]:
        """The union of the sub-tasks' groups by name (``lm``, ``gnn``, ``head``, ...); a shared
        parameter appears once, in the group where it is first met (sub-tasks in config order)."""
        groups: dict[str, list[nn.Parameter]] = {}
        seen: set[int] = set()
        for name, task in self.tasks.items():
            for group, params in task.parameter_groups(model[name]).items():
                out = groups.setdefault(group, [])
                for p in params:
                    if id(p) not in seen:
                        seen.add(id(p))
                        out.append(p)
        return groups

    # -- training ----------------------------------------------------------------------------------
    def num_train_examples(self) -> int:
        """The sub-tasks' training examples together (an epoch has as many, in micro-batches each
        drawn from one sub-task)."""
        return sum(task.num_train_examples() for task in self.tasks.values())

    def training_step(
        self, model: nn.ModuleDict, indices: Tensor, generator: torch.Generator
    ) -> StepOutput:
        """The weighted loss of one sub-task's micro-batch.

        The sub-task is the sampler's choice; its ``len(indices)`` examples are drawn uniformly *with
        replacement* from its training set (the engine's ``indices`` range over all sub-tasks'
        examples together, so only their number is used). Both draws come from ``generator`` alone,
        so a resumed run, and the repeated passes of adversarial training (which restore the
        generator), draw the same batch.
        """
        names = list(self.tasks)
        chosen = names[self.sampler.choose(self.step, generator)]
        task = self.tasks[chosen]
        sub = torch.randint(task.num_train_examples(), (len(indices),), generator=generator)
        task.step = self.step
        out = task.training_step(model[chosen], sub, generator)
        loss = out.loss if isinstance(out, StepOutput) else out
        value = float(loss.detach())
        logs = {}
        for name in names:
            logs[f"share_{name}"] = float(name == chosen)
            logs[f"loss_{name}"] = value if name == chosen else 0.0
        return StepOutput(self.config.loss_weights.get(chosen, 1.0) * loss, logs)

    # -- evaluation --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        """A split is evaluated when every sub-task has it (``mean_score`` is over all of them)."""
        return all(task.has_split(split) for task in self.tasks.values())

    def evaluate(self, model: nn.ModuleDict, split: str) -> dict[str, Any]:
        """``<task>/<metric>`` of every sub-task metric, ``mean_score``, ``num_examples`` (all
        sub-tasks', where each counts them), and each sub-task's whole evaluation under its name."""
        flat: dict[str, Any] = {}
        nested: dict[str, Any] = {}
        scores = []
        for name, task in self.tasks.items():
            result = task.evaluate(model[name], split)
            nested[name] = result
            flat.update({f"{name}/{m}": result[m] for m in task.metrics if m in result})
            metric, maximize = task.selection_metric
            scores.append(result[metric] if maximize else -result[metric])
        counts = [r["num_examples"] for r in nested.values() if "num_examples" in r]
        if len(counts) == len(nested):
            flat["num_examples"] = sum(counts)
        return {MEAN_SCORE: sum(scores) / len(scores), **flat, **nested}

    def run_metrics(self, *, epochs: int, train_seconds: float) -> dict[str, Any]:
        return {
            **super().run_metrics(epochs=epochs, train_seconds=train_seconds),
            "task_probabilities": dict(zip(self.tasks, self.sampler.probabilities.tolist())),
        }


# -- sharing -----------------------------------------------------------------------------------------
def _module_at(model: nn.Module, path: str, error: str) -> nn.Module:
    if not path:  # the whole model: there would be nothing left of the sub-task's own
        raise ConfigError(f"{error} (an empty path)")
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise ConfigError(error) from None
    return module


def tie(model: nn.Module, path: str, shared: nn.Module, *, where: str = "") -> None:
    """Put ``shared`` at ``path`` in ``model`` (by identity, so its parameters are one set).

    Raises:
        ConfigError: ``model`` has no module at ``path``; the module there has other parameters or
            shapes than ``shared`` (e.g. the GNN tables of another graph: share ``fused.lm``); or it
            is also reachable elsewhere in ``model``, which would keep training its own copy.
    """
    own = _module_at(model, path, f"{where} has no such module")
    mine = {k: tuple(v.shape) for k, v in own.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in shared.state_dict().items()}
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise ConfigError(
            f"{where}: the module differs from the first sub-task's ({diff[0]}: "
            f"{mine.get(diff[0])} vs {theirs.get(diff[0])}); share a part both have alike, "
            "e.g. fused.lm when the graphs differ"
        )
    parent_path, _, attribute = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attribute, shared)
    replaced = {id(p) for p in own.parameters()}
    if any(id(p) in replaced for p in model.parameters()):
        raise ConfigError(
            f"{where}: its module at {path} is also held elsewhere in the model, which would keep "
            "its own copy; share a module held in one place"
        )


def _check_subtask_mapping(c: RunConfig, prefix: str, mapping: Mapping[str, Any]) -> Mapping:
    """Refuse the run-level keys in a sub-task's mapping; returns its ``evaluation`` (``metric`` and
    ``batch_size`` at most)."""
    for key in RUN_KEYS:
        if key in mapping:
            raise ConfigError(
                f"{c.at(prefix + key)}{prefix}{key}: a sub-task cannot set {key}; it is the "
                f"multi-task run's (set {key} at the top level)"
            )
    evaluation = mapping.get("evaluation") or {}
    if not isinstance(evaluation, Mapping):
        raise ConfigError(
            f"{c.at(f'{prefix}evaluation')}{prefix}evaluation must be a mapping, got "
            f"{quote(evaluation)}"
        )
    for key in evaluation:
        if key not in SUB_EVALUATION_KEYS:
            raise ConfigError(
                f"{c.at(f'{prefix}evaluation.{key}')}{prefix}evaluation.{key}: a sub-task's "
                f"evaluation may set only {', '.join(SUB_EVALUATION_KEYS)}; the rest is the "
                "multi-task run's (set it in the top-level evaluation)"
            )
    return evaluation


def _scoped_at(run: RunConfig, prefix: str) -> Callable[[str], str]:
    """``Config.at`` for a sub-task's config: where the run's config set ``prefix + key``, and which
    sub-task the message is about (``"run.yaml:12: tasks.umls: "``)."""
    scope = prefix.rstrip(".")

    def at(key: str) -> str:
        origin = run.origin(prefix + key)
        return f"{origin}: {scope}: " if origin else f"{scope}: "

    return at


__all__ = ["MultitaskConfig", "MultitaskTask", "TaskSampler", "tie"]
