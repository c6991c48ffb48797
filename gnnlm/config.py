"""The one typed config loader: dataclasses read from strict YAML, ``--set a.b=c`` overrides, saved back.

Every config in gnnlm (a training run of any task, the fusion model, a dataset's options) is a dataclass
that subclasses :class:`Config`::

    @dataclass
    class MyConfig(Config):
        epochs: int = checked(10, AT_LEAST_1, "10")
        lr: float = checked(1e-3, POSITIVE, "0.001")
        head: HeadConfig = field(default_factory=HeadConfig)   # a nested section

    config = MyConfig.load("run.yaml", ["lr=3e-4", "head.dropout=0.1"])
    config.save("RUN/config.yaml")

Every key is checked against the fields: an unknown key (with a did-you-mean), a value of the wrong type
or out of range (``lr: -1``) is a :class:`ConfigError` that names the file, the line and the value, and
says what would fit. YAML tags (``!!python/object``) are refused. Keys below a ``*_kwargs`` mapping are
free-form: they configure a component and are checked against it by the code that builds it.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import tempfile
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gnnlm.utils.strict_yaml import ConfigError, ConfigWarning, did_you_mean, load_yaml, quote

__all__ = [
    "AT_LEAST_0",
    "AT_LEAST_1",
    "NON_NEGATIVE",
    "POSITIVE",
    "UNIT_INTERVAL",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "apply_overrides",
    "check_kwargs",
    "constructor_keywords",
    "lookup_component",
    "check_values",
    "check_writable_dir",
    "checked",
    "config_diff",
    "load_mapping",
]

C = TypeVar("C", bound="Config")

#: a range rule: ``(test, what fits)``.
Rule = tuple[Callable[[Any], bool], str]
AT_LEAST_1: Rule = (lambda v: v >= 1, "an integer >= 1")
AT_LEAST_0: Rule = (lambda v: v >= 0, "an integer >= 0")
POSITIVE: Rule = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
NON_NEGATIVE: Rule = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
UNIT_INTERVAL: Rule = (lambda v: 0 <= v < 1, "a number in [0, 1)")


def checked(
    default: Any = MISSING, rule: Rule | None = None, example: str = "", **kwargs: Any
) -> Any:
    """A dataclass field whose value must pass ``rule`` (``None`` always passes where the type allows
    it); ``example`` is a value that fits, quoted in the error."""
    return field(default=default, metadata={"rule": rule, "example": example}, **kwargs)


class Config:
    """Base class of typed configs (subclasses are dataclasses); see the module docstring."""

    # -- conversion --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(
        cls: type[C],
        data: dict[str, Any],
        *,
        source: str = "<dict>",
        lines: dict[str, int] | None = None,
    ) -> C:
        """Build a config from nested mappings, checking every key and value.

        Args:
            data: nested mapping (as read from YAML).
            source: where ``data`` came from, for error messages.
            lines: ``{"training.lr": 12, ...}`` line numbers of keys in ``source``.
        """
        return _build(cls, data, prefix="", where=_Where(source, lines or {}))

    # -- files -------------------------------------------------------------------------------------
    @classmethod
    def load(cls: type[C], path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> C:
        """Read a YAML file, then apply ``key.sub=value`` overrides (see :func:`apply_overrides`)."""
        data, lines = load_mapping(path)
        config = cls.from_dict(data, source=str(path), lines=lines)
        config._origins = {key: f"{path}:{line}" for key, line in lines.items()}
        config._origins[""] = str(path)
        return apply_overrides(config, overrides)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML (atomically)."""
        from gnnlm.utils.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_yaml())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def origin(self, key: str) -> str | None:
        """Where ``key`` (``"training.lr"``) was set: ``"file.yaml:12"``, ``"--set 'training.lr=1'"``;
        for a key the file leaves at its default, its section's line (or the file); ``None`` for a
        config built in Python."""
        origins: dict[str, str] = getattr(self, "_origins", {})
        parts = key.split(".")
        for n in range(len(parts), -1, -1):
            found = origins.get(".".join(parts[:n]))
            if found is not None:
                return found
        return None

    def at(self, key: str) -> str:
        """``"file.yaml:12: "`` for error messages about ``key`` (empty for a config built in Python)."""
        origin = self.origin(key)
        return f"{origin}: " if origin else ""


def load_mapping(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """``(mapping, line numbers of its dotted keys)`` of a strict YAML file; an empty file is ``{}``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror or err})") from None
    data, lines = load_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a config is a mapping, got {type(data).__name__}")
    return data, lines


# -- validation ------------------------------------------------------------------------------------
@dataclass
class _Where:
    source: str
    lines: dict[str, int]

    def __call__(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}:{line}" if line is not None else self.source


def _build(cls: type, data: Any, *, prefix: str, where: _Where) -> Any:
    if not isinstance(data, dict):
        name = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where(name)}: {name} must be a mapping, got {quote(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"{where(path)}: {_unknown_key_message(str(key), prefix, list(fields))}"
            )
        if isinstance(value, dict) and fields[key].default_factory is not MISSING:
            # a section the file sets in part keeps the config class's defaults for the rest (a
            # task's config may default its training section differently from the engine's)
            default = fields[key].default_factory()
            if dataclasses.is_dataclass(default):
                value = {**_init_values(default), **value}
        kwargs[key] = _check_value(hints[key], value, path=path, where=where)
        _check_range(fields[key], path, kwargs[key], where)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # a config's own __post_init__ checks
        name = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where(name)}: {' '.join(str(err).split())}") from None


def _init_values(section: Any) -> dict[str, Any]:
    """``{field: value}`` of a dataclass instance's init fields (copies; nested sections as mappings)."""
    out = {}
    for f in dataclasses.fields(section):
        if f.init:
            value = getattr(section, f.name)
            out[f.name] = (
                dataclasses.asdict(value)
                if dataclasses.is_dataclass(value)
                else copy.deepcopy(value)
            )
    return out


def check_values(config: Config) -> None:
    """Check the ranges of a config built in Python (loading a file checks them already)."""

    def where(key: str) -> str:
        return config.origin(key) or "config"

    def walk(section: Any, prefix: str) -> None:
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                _check_range(f, f"{prefix}{f.name}", value, where)

    walk(config, "")


def _check_range(f: dataclasses.Field, path: str, value: Any, where: Callable[[str], str]) -> None:
    rule = f.metadata.get("rule")
    if rule is None or value is None or isinstance(value, bool):
        return
    test, fits = rule
    if not test(value):
        example = f.metadata.get("example")
        hint = f"; e.g. {example}" if example else ""
        raise ConfigError(f"{where(path)}: {path} must be {fits}, got {quote(value)}{hint}")


def _unknown_key_message(key: str, prefix: str, valid: list[str]) -> str:
    hint = did_you_mean(key, valid, prefix)
    section = prefix.rstrip(".") or "the top level"
    return f"unknown config key '{prefix}{key}'{hint}; valid keys in {section}: {', '.join(valid)}"


def _check_value(hint: Any, value: Any, *, path: str, where: _Where) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{path}.", where=where)
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(a for a in options if a is not type(None))
        origin = typing.get_origin(hint)
    expected = origin or hint
    if expected is dict and value is None:
        return {}
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        # YAML 1.1 reads ``1e-3`` (no dot) as a string; accept what Python reads as a number.
        try:
            return float(value)
        except ValueError:
            pass
    if expected is list and isinstance(value, tuple):
        value = list(value)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"{where(path)}: {path} must be {_type_name(hint)}, got {quote(value)} "
            f"({type(value).__name__})"
        )
    args = typing.get_args(hint)
    if expected is list and args:
        return [
            _check_value(args[0], v, path=f"{path}[{i}]", where=where) for i, v in enumerate(value)
        ]
    if expected is dict:
        for key, item in value.items():
            if item is None and isinstance(key, str) and ":" in key:
                raise ConfigError(
                    f"{where(path)}: {path} has the key {key!r} with no value; YAML needs a space after "
                    f"the colon ({{{key.replace(':', ': ', 1)}}})"
                )
        if len(args) == 2 and args[1] is not Any:
            return {
                k: _check_value(args[1], v, path=f"{path}.{k}", where=where)
                for k, v in value.items()
            }
        return dict(value)
    return value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
    }.get(origin or hint, str(hint))


# -- overrides -------------------------------------------------------------------------------------
def apply_overrides(config: C, overrides: list[str] | tuple[str, ...] | dict[str, Any]) -> C:
    """Apply ``key.sub=value`` assignments; values are parsed as YAML (``1e-3``, ``null``, ``{p: 1}``).

    ``overrides`` may also be a mapping ``{"key.sub": value}`` of already-parsed values. Keys below a
    ``*_kwargs`` (or other free-form) mapping are free-form (``model.interaction_kwargs.p=1``); every
    other key must exist and the value must have the field's type.

    Raises:
        ConfigError: naming the override, the key and the value.
    """
    items = (
        [(k, v, f"{k}={v!r}") for k, v in overrides.items()]
        if isinstance(overrides, dict)
        else [_parse_override(item) for item in overrides]
    )
    if not items:  # still a new config: callers change the result (a variant clears its variants)
        return copy.deepcopy(config)
    data = config.to_dict()
    origins = dict(getattr(config, "_origins", {}))
    cls = type(config)
    for key, value, item in items:
        source = f"--set {quote(item)}"
        _assign(data, key.split("."), value, item)
        config = cls.from_dict(data, source=source)
        origins = {k: v for k, v in origins.items() if k != key and not k.startswith(f"{key}.")}
        origins[key] = source
        config._origins = origins
    return config


def _parse_override(item: str) -> tuple[str, Any, str]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {quote(item)}: expected key.sub=value")
    value = load_yaml(raw, f"--set {quote(item)}")[0] if raw.strip() else ""
    return key, value, item


def _free_form(part: str) -> bool:
    return part.endswith("_kwargs") or part in ("param_groups", "variants")


def _assign(data: dict, parts: list[str], value: Any, item: str) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        inside = any(_free_form(p) for p in parts[:i])
        if part not in node:
            if inside or _free_form(part):
                node[part] = {}
            else:
                prefix = ".".join(parts[:i])
                prefix = f"{prefix}." if prefix else ""
                raise ConfigError(
                    f"--set {quote(item)}: {_unknown_key_message(part, prefix, list(node))}"
                )
        if node[part] is None and (inside or _free_form(part)):
            node[part] = {}
        if not isinstance(node[part], dict):
            raise ConfigError(f"--set {quote(item)}: {'.'.join(parts[: i + 1])} is not a mapping")
        node = node[part]
    last = parts[-1]
    inside = any(_free_form(p) for p in parts[:-1])
    if last not in node and not inside:
        prefix = ".".join(parts[:-1])
        prefix = f"{prefix}." if prefix else ""
        raise ConfigError(f"--set {quote(item)}: {_unknown_key_message(last, prefix, list(node))}")
    node[last] = value


def config_diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """``{"training.lr": (a_value, b_value), ...}`` for every leaf that differs."""
    out: dict[str, tuple[Any, Any]] = {}

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict) and not prefix.endswith("_kwargs."):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{prefix}{key}.")
        elif x != y:
            out[prefix.rstrip(".")] = (x, y)

    walk(a.to_dict(), b.to_dict(), "")
    return out


def check_writable_dir(path: str | Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` is, or can be created as, a writable directory.

    Nothing is created: the closest existing folder is probed with an anonymous temporary file.
    """
    path = Path(path)
    existing = path
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(
                f"run directory {path} (--out): {existing} is a file, not a folder; choose "
                "another --out"
            )
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(
            f"run directory {path} (--out): cannot write in {existing} "
            f"({err.strerror or err}); choose a writable --out"
        ) from None


# -- components ------------------------------------------------------------------------------------
def lookup_component(config: Config, key: str, resolver: Any, name: str) -> type:
    """``resolver.lookup(name)`` for the config value at ``key``, or a :class:`ConfigError` naming
    where it was set and listing the registered names."""
    try:
        return resolver.lookup(name)
    except (KeyError, ValueError, TypeError, ImportError) as err:
        choices = ", ".join(sorted(resolver.lookup_dict))
        reason = f" ({' '.join(str(err).split())})" if ":" in str(name) else ""
        raise ConfigError(
            f"{config.at(key)}unknown {key.split('.')[-1]} {quote(name)}{reason}; valid: "
            f"{choices} (or 'package.module:Class' for your own)"
        ) from None


def constructor_keywords(fn: Callable, skip: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    """``(keyword names fn takes, whether it takes **kwargs)``; a class without an ``__init__`` of its
    own takes none (``nn.Module.__init__``'s ``**kwargs`` only raise)."""
    from torch import nn

    if isinstance(fn, type) and fn.__init__ in (object.__init__, nn.Module.__init__):
        return [], False
    params = list(inspect.signature(fn).parameters.values())
    named = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in (*skip, "self")
    ]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def check_kwargs(
    config: Config,
    key: str,
    cls: type,
    kwargs: dict[str, Any],
    skip: tuple[str, ...] = (),
    valid: tuple[list[str], bool] | None = None,
    name: str | None = None,
) -> None:
    """Check the keys of ``kwargs`` (the mapping at ``key``) against what ``cls`` takes (``valid``:
    ``(names, takes **kwargs)`` when known otherwise); an unknown one is a :class:`ConfigError` naming
    where it was set, with a did-you-mean and the valid keys."""
    named, any_keyword = valid or constructor_keywords(cls, skip)
    if any_keyword:
        return
    for given in kwargs:
        if given not in named:
            hint = did_you_mean(given, named)
            raise ConfigError(
                f"{config.at(f'{key}.{given}')}{key} has the key {quote(given)}, which "
                f"{name or cls.__name__} does not take{hint}; valid keys: {', '.join(named) or '(none)'}"
            )
