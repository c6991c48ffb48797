"""Read a run's config file as the config class of the task it names."""

from __future__ import annotations

from pathlib import Path

from gnnlm.config import ConfigError, load_mapping
from gnnlm.train.config import RunConfig
from gnnlm.utils.strict_yaml import load_yaml, quote


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config in ``path`` (with ``--set`` ``overrides``), as its task's config class.

    The task is ``task:`` of the file (or of a ``--set task=...``), ``link_prediction`` when absent;
    then the whole file is checked against that task's config class (unknown keys, types, ranges,
    and every variant's overrides), with errors naming file, line and value.
    """

    data, lines = load_mapping(path)
    name = data.get("task", "link_prediction")
    where = f"{path}:{lines.get('task', 1)}"
    for item in overrides:
        key, _, raw = item.partition("=")
        if key.strip() == "task":
            name, where = load_yaml(raw, f"--set {quote(item)}")[0], f"--set {quote(item)}"
    task = task_class(name, where)
    config = task.config_class.load(path, overrides)
    config.check_variants()
    return config


def task_class(name: object, where: str) -> type:
    """The task class ``name`` names (a registered name or ``pkg.mod:Class``).

    Raises:
        ConfigError: prefixed with ``where``, for a name that is not a string or finds no task.
    """
    from gnnlm.tasks.registry import BUILTIN_TASKS, lookup_task

    if not isinstance(name, str):
        raise ConfigError(f"{where}: task must be a name or pkg.mod:Class, got {quote(name)}")
    try:
        return lookup_task(name)
    except (KeyError, ValueError, TypeError, ImportError) as err:
        raise ConfigError(
            f"{where}: unknown task {quote(name)} ({' '.join(str(err).split())}); valid: "
            f"{', '.join(BUILTIN_TASKS)} (or 'package.module:MyTask' for your own)"
        ) from None


def config_from_mapping(data: dict, *, source: str = "<dict>", key: str = "") -> RunConfig:
    """A config given inline (``pretraining:``, a sub-task) as its task's config class; errors name
    ``source`` and the key path below ``key``."""

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {key or 'config'} must be a mapping, got {quote(data)}")
    task = task_class(
        data.get("task", "link_prediction"), f"{source}: {key + '.' if key else ''}task"
    )
    try:
        config = task.config_class.from_dict(data, source=source)
    except ConfigError as err:
        raise ConfigError(f"{err} (in {key})" if key else str(err)) from None
    config.check_variants()
    return config
