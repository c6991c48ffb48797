"""The search space of ``gnnlm tune``: a YAML file of dotted config keys and their ranges.

One entry per searched key, each a mapping with a ``type``::

    # configs/umls/complex_space.yaml
    training.lr: {type: float, low: 1e-4, high: 1e-1, log: true}    # log-uniform
    training.label_smoothing: {type: float, low: 0.0, high: 0.3}    # uniform
    model.embedding_dim: {type: int, low: 32, high: 256, step: 32}  # 32, 64, ..., 256
    training.loss: {type: categorical, choices: [bce, crossentropy]}

* ``float``: ``low`` < ``high``; ``log: true`` samples log-uniformly (``low`` > 0); ``step`` quantises
  (not with ``log``).
* ``int``: integer ``low`` < ``high``; ``step`` (default 1) or ``log: true`` (not both).
* ``categorical``: ``choices``, a list of distinct plain values (strings, numbers, booleans, null).

Keys are the config's own (``training.lr``; below a ``*_kwargs`` mapping, free-form:
``model.interaction_kwargs.p``). Every key, and every bound and choice, is applied to the config being
tuned when the space is read, so an unknown key (with a did-you-mean) or a value the config refuses
(``training.lr: {low: -1, ...}``) is a :class:`~gnnlm.config.ConfigError` naming the space file, the
line and the value, before any trial trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnnlm.config import Config, ConfigError, apply_overrides, load_mapping
from gnnlm.utils.strict_yaml import did_you_mean, quote

if TYPE_CHECKING:
    import optuna

TYPES = ("float", "int", "categorical")
#: the options each type takes (``type`` itself aside).
OPTIONS = {
    "float": ("low", "high", "log", "step"),
    "int": ("low", "high", "log", "step"),
    "categorical": ("choices",),
}
#: keys a search cannot set: they change what a run is, not how it trains.
FORBIDDEN = ("task", "variants", "seeds")


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes:
        key: the dotted config key (``training.lr``).
        type: ``float``, ``int`` or ``categorical``.
        low, high: the bounds (numbers), inclusive.
        log: sample on a log scale.
        step: quantisation step (``None``: continuous floats, 1 for ints).
        choices: the values of a categorical.
    """

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this key's value for ``trial`` (the parameter is named by the key)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take (e.g. the config's own value)."""
        if self.type == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return math.isclose(k, round(k), abs_tol=1e-9)
        return True

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in a space file (normalised)."""
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a search, in file order.

    Attributes:
        params: one :class:`Param` per searched key.
        source: the file it was read from.
    """

    params: tuple[Param, ...]
    source: str = "<space>"

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """``{key: value}`` drawn for ``trial``."""
        return {p.key: p.suggest(trial) for p in self.params}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {p.key: p.to_dict() for p in self.params}

    def defaults(self, config: Config) -> dict[str, Any]:
        """``{key: value}`` of the config's own values that lie in the space (a warm first trial)."""
        out = {}
        for p in self.params:
            found, value = lookup(config.to_dict(), p.key)
            if found and p.contains(value):
                out[p.key] = value
        return out

    @classmethod
    def load(cls, path: str | Path, config: Config) -> SearchSpace:
        """Read and check a space file against ``config`` (see the module docstring).

        Raises:
            ConfigError: ``path:line: problem: 'value'`` for a malformed entry, an unknown key or a
                bound the config refuses.
        """
        data, lines = load_mapping(path)
        if not data:
            raise ConfigError(f"{path}:1: the search space is empty; add e.g. "
                              "'training.lr: {type: float, low: 1e-4, high: 1e-1, log: true}'")  # fmt: skip
        params = []
        for key, spec in data.items():
            params.append(_param(str(key), spec, _Lines(str(path), lines)))
        for param in params:
            _check_against(param, config, _Lines(str(path), lines))
        return cls(tuple(params), str(path))


def lookup(data: dict[str, Any], key: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted ``key`` in nested mappings."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


@dataclass
class _Lines:
    source: str
    lines: dict[str, int]

    def at(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}:{line}" if line is not None else self.source


def _number(value: Any) -> Any:
    """A bound as a number: YAML 1.1 reads ``1e-4`` (no dot) as a string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _param(key: str, spec: Any, where: _Lines) -> Param:
    here = where.at(key)
    if key.split(".")[0] in FORBIDDEN:
        raise ConfigError(f"{here}: {key} cannot be searched (it changes the run, not its "
                          f"training): {quote(key)}")  # fmt: skip
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{here}: {key} must be a mapping like {{type: float, low: 1e-4, high: 0.1}}, got "
            f"{quote(spec)}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(
            f"{where.at(f'{key}.type') if 'type' in spec else here}: {key}: type must be one of "
            f"{', '.join(TYPES)}, got {quote(kind)}"
        )
    for option in spec:
        if option != "type" and option not in OPTIONS[kind]:
            hint = did_you_mean(option, list(OPTIONS[kind]))
            raise ConfigError(
                f"{where.at(f'{key}.{option}')}: {key}: unknown option for type {kind}{hint}; "
                f"valid: type, {', '.join(OPTIONS[kind])}: {quote(option)}"
            )
    if kind == "categorical":
        choices = spec.get("choices")
        at = where.at(f"{key}.choices") if "choices" in spec else here
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{at}: {key}: choices must be a non-empty list: {quote(choices)}")
        for choice in choices:
            if choice is not None and not isinstance(choice, (str, int, float, bool)):
                raise ConfigError(
                    f"{at}: {key}: a choice must be a plain value (string, number, boolean, "
                    f"null): {quote(choice)}"
                )
        if len({repr(c) for c in choices}) < len(choices):
            raise ConfigError(f"{at}: {key}: choices are repeated: {quote(choices)}")
        return Param(key, kind, choices=tuple(choices))
    values = {}
    for option in ("low", "high"):
        if option not in spec:
            raise ConfigError(f"{here}: {key}: type {kind} needs '{option}': {quote(spec)}")
        value = _number(spec[option])
        if kind == "int" and (isinstance(value, float) and value.is_integer()):
            value = int(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (kind == "float" or isinstance(value, int))
        if not ok:
            want = "an integer" if kind == "int" else "a finite number"
            raise ConfigError(
                f"{where.at(f'{key}.{option}')}: {key}: {option} must be {want}: {quote(value)}"
            )
        values[option] = float(value) if kind == "float" else value
    low, high = values["low"], values["high"]
    if not low < high:
        raise ConfigError(f"{where.at(f'{key}.high')}: {key}: high must be > low ({low}): "
                          f"{quote(spec['high'])}")  # fmt: skip
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where.at(f'{key}.log')}: {key}: log must be true or false: "
                          f"{quote(log)}")  # fmt: skip
    if log and low <= 0:
        raise ConfigError(f"{where.at(f'{key}.low')}: {key}: a log scale needs low > 0: "
                          f"{quote(spec['low'])}")  # fmt: skip
    step = _number(spec.get("step"))
    if step is not None:
        at = where.at(f"{key}.step")
        if log:
            raise ConfigError(f"{at}: {key}: step and log: true cannot be combined: {quote(step)}")
        ok = isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0
        if kind == "int":
            ok = ok and float(step).is_integer()
            step = int(step) if ok else step
        if not ok or not math.isfinite(step):
            want = "an integer >= 1" if kind == "int" else "a number > 0"
            raise ConfigError(f"{at}: {key}: step must be {want}: {quote(step)}")
        step = float(step) if kind == "float" else step
    return Param(key, kind, low, high, log, step)


def _check_against(param: Param, config: Config, where: _Lines) -> None:
    """Apply the key's bounds (or each choice) to ``config``: the key must exist and the config must
    take each value (its type and range rules)."""
    if param.type == "categorical":
        probes = [("choices", c) for c in param.choices]
    else:
        probes = [("low", param.low), ("high", param.high)]
    for option, value in probes:
        try:
            apply_overrides(config, {param.key: value})
        except ConfigError as err:
            message = str(err)
            if message.startswith("--set "):  # the override's own prefix: the space file says it
                message = message.split(": ", 1)[1]
            line = where.lines.get(f"{param.key}.{option}", where.lines.get(param.key))
            at = f"{where.source}:{line}" if line is not None else where.source
            raise ConfigError(f"{at}: {param.key}={value!r} does not fit the config: "
                              f"{message}") from None  # fmt: skip
