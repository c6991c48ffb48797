"""Typed training configuration: dataclasses, YAML load/save, and ``--set key.sub=value`` overrides.

A run is described by one :class:`TrainConfig`::

    dataset: umls
    dataset_kwargs: {}
    seed: 0
    model: {interaction: complex, interaction_kwargs: {}, embedding_dim: 200, encoder: null, encoder_kwargs: {}}
    training: {loop: kvsall, epochs: 100, batch_size: 256, lr: 0.001, optimizer: adam, loss: bce, ...}
    evaluation: {batch_size: 256, frequency: 5, patience: 5, metric: mrr}

Every key is checked against the dataclass fields: an unknown key or a value of the wrong type is a
:class:`ConfigError` naming the file, the line and the value (keys of ``*_kwargs`` mappings are free-form
and passed through to the component they configure).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key or value that does not fit the schema (message names where it came from)."""


@dataclass
class ModelConfig:
    """What to train.

    Attributes:
        interaction: scoring function, a registered name (``transe``, ``distmult``, ``complex``, ``rotate``,
            ``tucker``, ...) or a dotted path ``pkg.mod:Class``.
        interaction_kwargs: keyword arguments of the interaction (e.g. ``{p: 1}`` for TransE-L1).
        embedding_dim: base embedding width (complex-valued models store ``2 * embedding_dim`` reals).
        encoder: ``None`` for a plain embedding table, else a GNN encoder spec (``rgcn``, ``compgcn``,
            ``pkg.mod:Class``, ``pyg:GATConv``) computing the entity representations.
        encoder_kwargs: keyword arguments of the encoder.
    """

    interaction: str = "complex"
    interaction_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 200
    encoder: str | None = None
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingConfig:
    """How to train.

    Attributes:
        loop: ``kvsall`` (1-N: every (h, r) query against all entities, all true tails as targets) or
            ``slcwa`` (each true triple against ``num_negatives`` corrupted ones).
        epochs: maximum number of epochs (early stopping may end sooner).
        batch_size: queries (kvsall) or positive triples (slcwa) per step.
        lr: learning rate.
        optimizer: ``adam``, ``adagrad``, ``sgd``, ... (any ``torch.optim`` optimizer by name).
        optimizer_kwargs: extra optimizer arguments (``weight_decay``, ``betas``, ...).
        scheduler: ``None``, ``step``, ``exponential``, ``plateau``, ``cosineannealing``, ... (any
            ``torch.optim.lr_scheduler`` class by name). ``plateau`` steps on the validation metric.
        scheduler_kwargs: its arguments (``step_size``, ``gamma``, ``factor``, ...).
        loss: ``margin``, ``softplus``, ``bce`` or ``crossentropy`` (see :mod:`gnnlm.train.losses`).
        loss_kwargs: its arguments (``margin`` for margin ranking and for RotatE's shifted softplus).
        num_negatives: negatives per positive triple (slcwa).
        sampler: ``uniform`` or ``bernoulli`` corruption (slcwa).
        filter_negatives: drop sampled negatives that are training triples (slcwa).
        adversarial_temperature: if set, self-adversarial weighting of negatives (RotatE, Sun et al.
            2019) with this temperature (slcwa).
        label_smoothing: ``eps`` in ``(1 - eps) * y + eps / num_entities`` (kvsall, and bce in slcwa).
        reciprocal: train with an inverse relation per relation; heads are then predicted as tails of
            the inverse relation.
        regularizer: ``None``, ``l2`` or ``n3``, applied to the batch's (h, r, t) representations.
        regularizer_weight: its weight.
        clip_grad_norm: clip the gradient norm to this value (``None``: no clipping).
        checkpoint_frequency: write a resumable checkpoint every this many epochs (0: never).
        deterministic: use ``torch.use_deterministic_algorithms`` during the run.
        device: ``cpu``, ``cuda``, ``cuda:1``, ... or ``auto`` (CUDA when available). Batches are drawn on
            the CPU from one seeded generator; exact resume is guaranteed on CPU.
    """

    loop: str = "kvsall"
    epochs: int = 100
    batch_size: int = 256
    lr: float = 0.001
    optimizer: str = "adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    scheduler: str | None = None
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str = "bce"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    num_negatives: int = 1
    sampler: str = "uniform"
    filter_negatives: bool = False
    adversarial_temperature: float | None = None
    label_smoothing: float = 0.0
    reciprocal: bool = False
    regularizer: str | None = None
    regularizer_weight: float = 0.0
    clip_grad_norm: float | None = None
    checkpoint_frequency: int = 1
    deterministic: bool = True
    device: str = "cpu"


@dataclass
class EvaluationConfig:
    """Validation during training and the final evaluation.

    Attributes:
        batch_size: queries scored at once by the evaluator.
        frequency: evaluate on the validation split every this many epochs (0: only at the end).
        patience: stop after this many evaluations without improvement (0: never stop early).
        metric: validation metric to maximise (``mrr``, ``hits@10``, ...); the best weights are kept.
    """

    batch_size: int = 256
    frequency: int = 5
    patience: int = 5
    metric: str = "mrr"


@dataclass
class TrainConfig:
    """A complete training run (see the module docstring for the YAML form)."""

    dataset: str = "umls"
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    # -- conversion --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, source: str = "<dict>", lines: dict[str, int] | None = None
    ) -> TrainConfig:
        """Build a config from nested mappings, checking every key and value.

        Args:
            data: nested mapping (as read from YAML).
            source: where ``data`` came from, for error messages.
            lines: ``{"training.lr": 12, ...}`` line numbers of keys in ``source``.
        """
        return _build(cls, data, prefix="", where=_Where(source, lines or {}))

    # -- files -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        """Read a YAML file, then apply ``key.sub=value`` overrides (see :func:`apply_overrides`)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
        try:
            data, lines = _load_yaml_with_lines(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:1: a config is a mapping, got {type(data).__name__}")
        config = cls.from_dict(data, source=str(path), lines=lines)
        return apply_overrides(config, overrides)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML (atomically)."""
        from gnnlm.train.checkpoint import atomic_write_text

        atomic_write_text(Path(path), self.to_yaml())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)


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
        raise ConfigError(f"{where(name)}: {name} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"{where(path)}: {_unknown_key_message(str(key), prefix, list(fields))}"
            )
        kwargs[key] = _check_value(hints[key], value, path=path, where=where)
    return cls(**kwargs)


def _unknown_key_message(key: str, prefix: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    section = prefix.rstrip(".") or "the top level"
    return f"unknown config key '{prefix}{key}'{hint}; valid keys in {section}: {', '.join(valid)}"


def _check_value(hint: Any, value: Any, *, path: str, where: _Where) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{path}.", where=where)
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
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"{where(path)}: {path} must be {_type_name(hint)}, got {value!r} ({type(value).__name__})"
        )
    if expected is dict:
        for key, item in value.items():
            if item is None and isinstance(key, str) and ":" in key:
                raise ConfigError(
                    f"{where(path)}: {path} has the key {key!r} with no value; YAML needs a space after "
                    f"the colon ({{{key.replace(':', ': ', 1)}}})"
                )
        return dict(value)
    return value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    return {
        dict: "a mapping",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
    }.get(origin or hint, str(hint))


def _load_yaml_with_lines(text: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML and record the 1-based line of every key path (``training.lr`` -> 12)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                key = f"{prefix}{key_node.value}"
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, f"{key}.")

    if node is not None:
        walk(node, "")
    return yaml.safe_load(text), lines


# -- overrides -------------------------------------------------------------------------------------
def apply_overrides(config: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply ``key.sub=value`` assignments; values are parsed as YAML (``1e-3``, ``null``, ``{p: 1}``).

    Keys below a ``*_kwargs`` mapping are free-form (``model.interaction_kwargs.p=1``); every other key
    must exist and the value must have the field's type.

    Raises:
        ConfigError: naming the override, the key and the value.
    """
    data = config.to_dict()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: cannot parse value: {err}") from None
        _assign(data, key.split("."), value, item)
        config = TrainConfig.from_dict(data, source=f"--set {item!r}")
    return config


def _assign(data: dict, parts: list[str], value: Any, item: str) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        inside_kwargs = any(p.endswith("_kwargs") for p in parts[:i])
        if part not in node:
            if inside_kwargs or part.endswith("_kwargs"):
                node[part] = {}
            else:
                prefix = ".".join(parts[:i])
                prefix = f"{prefix}." if prefix else ""
                raise ConfigError(
                    f"--set {item!r}: {_unknown_key_message(part, prefix, list(node))}"
                )
        if not isinstance(node[part], dict):
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a mapping")
        node = node[part]
    last = parts[-1]
    inside_kwargs = any(p.endswith("_kwargs") for p in parts[:-1])
    if last not in node and not inside_kwargs:
        prefix = ".".join(parts[:-1])
        prefix = f"{prefix}." if prefix else ""
        raise ConfigError(f"--set {item!r}: {_unknown_key_message(last, prefix, list(node))}")
    node[last] = value


def config_diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
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
