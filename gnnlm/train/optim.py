"""Optimizer parameter groups and learning-rate schedules of the engine (any task).

A task names its parameter groups (:meth:`~gnnlm.train.task.Task.parameter_groups`: ``lm``, ``gnn``,
``fusion``, ``gates``, ``head``, ...); ``training.param_groups`` gives any of them options of their own::

    training:
      lr: 3.0e-3                       # every group that sets none
      optimizer: adamw
      param_groups: {lm: {lr: 5.0e-5}, gates: {lr: 2.0e-2, weight_decay: 0.0}}
      scheduler: linear                # warmup, then linear decay to 0, stepped per optimizer step
      warmup_steps: 100
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from gnnlm.config import ConfigError, check_kwargs, constructor_keywords, lookup_component
from gnnlm.train.config import STEP_SCHEDULERS, RunConfig, TrainingConfig
from gnnlm.utils.strict_yaml import did_you_mean, quote

#: short names of ``torch.optim.lr_scheduler`` classes.
SCHEDULER_SYNONYMS = {"plateau": "reducelronplateau", "cosine": "cosineannealing"}


@functools.cache
def optimizer_resolver():
    """``torch.optim``'s optimizers by name (``adam``, ``adamw``, ``sgd``, ...; a ``class_resolver``
    ``ClassResolver``).

    Not ``class_resolver.contrib.torch.optimizer_resolver``: that one collects every ``Optimizer``
    subclass defined when it is first imported, so the names it knew (and listed in errors) depended on
    import order (``accelerate``, which ``transformers`` pulls in, adds ``MegatronLMOptimizerWrapper``).
    """
    from class_resolver import ClassResolver

    classes = [
        cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
        and not name.startswith("_")
    ]
    return ClassResolver(classes, base=torch.optim.Optimizer, default=torch.optim.Adam)


def check_training(config: RunConfig) -> None:
    """Check ``training.optimizer`` / ``scheduler`` and their ``*_kwargs`` against the classes, and the
    option names in ``training.param_groups`` (which groups exist is the task's: checked when the
    model is built). Reads no data."""
    from class_resolver.contrib.torch import lr_scheduler_resolver

    t = config.training
    optimizer = lookup_component(config, "training.optimizer", optimizer_resolver(), t.optimizer)
    check_kwargs(config, "training.optimizer_kwargs", optimizer, t.optimizer_kwargs, ("params",))
    options, _ = constructor_keywords(optimizer, ("params",))
    for group, values in t.param_groups.items():
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{config.at(f'training.param_groups.{group}')}training.param_groups.{group} must be "
                f"a mapping of optimizer options (e.g. {{lr: 1.0e-4}}), got {quote(values)}"
            )
        for key in values:
            if key not in options:
                raise ConfigError(
                    f"{config.at(f'training.param_groups.{group}.{key}')}training.param_groups."
                    f"{group} has the key {quote(key)}, which {optimizer.__name__} does not take"
                    f"{did_you_mean(str(key), options)}; valid keys: {', '.join(options)}"
                )
    if t.scheduler and t.scheduler.lower() not in STEP_SCHEDULERS:
        name = SCHEDULER_SYNONYMS.get(t.scheduler.lower(), t.scheduler)
        scheduler = lookup_component(config, "training.scheduler", lr_scheduler_resolver, name)
        check_kwargs(
            config, "training.scheduler_kwargs", scheduler, t.scheduler_kwargs, ("optimizer",)
        )
    if t.warmup_steps and not (t.scheduler and t.scheduler.lower() in STEP_SCHEDULERS):
        raise ConfigError(
            f"{config.at('training.warmup_steps')}training.warmup_steps applies to the per-step "
            f"schedules ({', '.join(STEP_SCHEDULERS)}); set training.scheduler to one of them"
        )


def param_group_dicts(
    groups: Mapping[str, Sequence[nn.Parameter]], training: TrainingConfig, *, where: str = ""
) -> list[dict[str, Any]]:
    """The optimizer's ``param_groups``: one dict per named group of trainable parameters, with the
    options of ``training.param_groups[name]``; groups with nothing to train are left out.

    Raises:
        ConfigError: ``training.param_groups`` names a group the task does not have, or a trainable
            parameter is in two groups.
    """
    unknown = sorted(set(training.param_groups) - set(groups))
    if unknown:
        raise ConfigError(
            f"{where}training.param_groups has {', '.join(map(quote, unknown))}"
            f"{did_you_mean(unknown[0], list(groups))}; this task's groups are: {', '.join(groups)}"
        )
    seen: dict[int, str] = {}
    out = []
    for name, params in groups.items():
        trainable = []
        for p in params:
            if not p.requires_grad:
                continue
            if id(p) in seen:
                raise ConfigError(
                    f"a parameter is in the groups {seen[id(p)]!r} and {name!r}: the task's "
                    "parameter_groups must not overlap"
                )
            seen[id(p)] = name
            trainable.append(p)
        if trainable:
            out.append({"params": trainable, "name": name, **training.param_groups.get(name, {})})
    return out


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    training: TrainingConfig,
    num_steps: int,
    *,
    maximize: bool = True,
) -> tuple[Any, str]:
    """``(scheduler, interval)`` of ``training.scheduler``: interval ``"step"`` (per-step schedules
    with warmup, from ``transformers``), ``"plateau"`` (stepped on the validation metric) or
    ``"epoch"``; ``(None, "")`` without a scheduler.

    Args:
        num_steps: optimizer steps of the whole run (the horizon of decaying per-step schedules).
        maximize: whether the validation metric a ``plateau`` schedule watches is maximised.
    """
    if not training.scheduler:
        return None, ""
    key = training.scheduler.lower()
    if key in STEP_SCHEDULERS:
        from transformers import get_scheduler

        scheduler = get_scheduler(
            STEP_SCHEDULERS[key], optimizer, num_warmup_steps=training.warmup_steps,
            num_training_steps=num_steps, scheduler_specific_kwargs=dict(training.scheduler_kwargs),
        )  # fmt: skip
        return scheduler, "step"
    from class_resolver.contrib.torch import lr_scheduler_resolver

    cls = lr_scheduler_resolver.lookup(SCHEDULER_SYNONYMS.get(key, training.scheduler))
    kwargs = dict(training.scheduler_kwargs)
    if cls is torch.optim.lr_scheduler.ReduceLROnPlateau:
        kwargs.setdefault("mode", "max" if maximize else "min")
        return cls(optimizer, **kwargs), "plateau"
    return cls(optimizer, **kwargs), "epoch"
