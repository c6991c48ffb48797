"""Typed training configuration: dataclasses, YAML load/save, and ``--set key.sub=value`` overrides.

A run is described by one :class:`TrainConfig`::

    dataset: umls
    dataset_kwargs: {}
    seed: 0
    model: {interaction: complex, interaction_kwargs: {}, embedding_dim: 200, encoder: null, encoder_kwargs: {}}
    training: {loop: kvsall, epochs: 100, batch_size: 256, lr: 0.001, optimizer: adam, loss: bce, ...}
    evaluation: {batch_size: 256, frequency: 5, patience: 5, metric: mrr}

Every key is checked against the dataclass fields: an unknown key, a value of the wrong type or out of
range (``lr: -1``, ``batch_size: 0``) is a :class:`ConfigError` naming the file, the line and the value
and saying what would fit. YAML tags (``!!python/object``, ``!custom``) are refused. The keys of
``*_kwargs`` mappings are passed to the component they configure; :func:`check_components` (run by the
trainer before it loads any data) checks them, and every component name, against the component's
constructor.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import tempfile
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gnnlm.utils.strict_yaml import ConfigError, ConfigWarning, did_you_mean, load_yaml, quote


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
        sparse_updates: update only the rows a sLCWA batch uses (row-sparse gradients; Adam becomes
            lazy Adam): ``null`` = auto (on where it applies, a batch touches few rows and the
            sparse form is exact: Adagrad, SGD), ``true``,
            ``false`` (dense reference). See :mod:`gnnlm.train.sparse`.
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
    sparse_updates: bool | None = None


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
        data, lines = load_yaml(text, str(path))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:1: a config is a mapping, got {type(data).__name__}")
        config = cls.from_dict(data, source=str(path), lines=lines)
        config._origins = {key: f"{path}:{line}" for key, line in lines.items()}
        config._origins[""] = str(path)
        return apply_overrides(config, overrides)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML (atomically)."""
        from gnnlm.train.checkpoint import atomic_write_text

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
        _check_range(path, kwargs[key], where)
    return cls(**kwargs)


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _non_negative(v: float) -> bool:
    return math.isfinite(v) and v >= 0


#: ``path -> (test, what fits, a value that does)``; ``None`` always fits where the type allows it.
_RANGES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "model.embedding_dim": (lambda v: v >= 1, "an integer >= 1", "200"),
    "training.epochs": (lambda v: v >= 1, "an integer >= 1", "100"),
    "training.batch_size": (lambda v: v >= 1, "an integer >= 1", "256"),
    "training.lr": (_positive, "a finite number > 0", "0.001"),
    "training.num_negatives": (lambda v: v >= 1, "an integer >= 1", "1"),
    "training.adversarial_temperature": (_positive, "a finite number > 0", "1.0, or null for none"),
    "training.label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)", "0.1, or 0 for none"),
    "training.regularizer_weight": (_non_negative, "a finite number >= 0", "0.01, or 0 for none"),
    "training.clip_grad_norm": (_positive, "a finite number > 0", "1.0, or null for no clipping"),
    "training.checkpoint_frequency": (lambda v: v >= 0, "an integer >= 0", "1, or 0 for never"),
    "evaluation.batch_size": (lambda v: v >= 1, "an integer >= 1", "256"),
    "evaluation.frequency": (lambda v: v >= 0, "an integer >= 0", "5, or 0 for only at the end"),
    "evaluation.patience": (lambda v: v >= 0, "an integer >= 0", "5, or 0 for no early stopping"),
}


def check_values(config: TrainConfig) -> None:
    """Check the numeric ranges of a config built in Python (loading a file checks them already)."""

    def where(key: str) -> str:
        return config.origin(key) or "config"

    for path in _RANGES:
        value: Any = config
        for part in path.split("."):
            value = getattr(value, part)
        _check_range(path, value, where)


def check_writable_dir(path: str | Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` is, or can be created as, a writable directory.

    Nothing is created: the closest existing folder is probed with an anonymous temporary file.
    """
    path = Path(path)
    try:
        existing = path
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


def _check_range(path: str, value: Any, where: Callable[[str], str]) -> None:
    rule = _RANGES.get(path)
    if rule is None or value is None:
        return
    test, fits, example = rule
    if not test(value):
        raise ConfigError(
            f"{where(path)}: {path} must be {fits}, got {quote(value)}; e.g. {example}"
        )


def _unknown_key_message(key: str, prefix: str, valid: list[str]) -> str:
    hint = did_you_mean(key, valid, prefix)
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
            f"{where(path)}: {path} must be {_type_name(hint)}, got {quote(value)} "
            f"({type(value).__name__})"
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


# -- overrides -------------------------------------------------------------------------------------
def apply_overrides(config: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply ``key.sub=value`` assignments; values are parsed as YAML (``1e-3``, ``null``, ``{p: 1}``).

    Keys below a ``*_kwargs`` mapping are free-form (``model.interaction_kwargs.p=1``); every other key
    must exist and the value must have the field's type.

    ``--set model.encoder=X`` without any ``model.encoder_kwargs`` override keeps only the file's
    encoder arguments that ``X`` takes (the rest were written for the file's encoder, e.g. R-GCN's
    ``num_bases``) and warns with a :class:`ConfigWarning` naming the ones left out.

    Raises:
        ConfigError: naming the override, the key and the value.
    """
    data = config.to_dict()
    before, origins = config, dict(getattr(config, "_origins", {}))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {quote(item)}: expected key.sub=value")
        source = f"--set {quote(item)}"
        value = load_yaml(raw, source)[0] if raw.strip() else ""
        _assign(data, key.split("."), value, item)
        config = TrainConfig.from_dict(data, source=source)
        origins = {k: v for k, v in origins.items() if k != key and not k.startswith(f"{key}.")}
        origins[key] = source
        config._origins = origins
    keys = [item.partition("=")[0].strip() for item in overrides]
    if "model.encoder" in keys and not any(k.startswith("model.encoder_kwargs") for k in keys):
        _keep_encoder_kwargs_that_fit(config, before)
    return config


def _keep_encoder_kwargs_that_fit(config: TrainConfig, before: TrainConfig) -> None:
    """``--set model.encoder=X`` swapped the encoder: the file's ``encoder_kwargs`` were written for
    the old one, so keep those X accepts (``num_layers``, ``dropout``) and say which are left out."""
    old, new = before.model.encoder, config.model.encoder
    if not new or new == old or not config.model.encoder_kwargs:
        return
    try:
        from gnnlm.encoders.resolver import filter_kwargs, lookup_encoder

        kept = filter_kwargs(lookup_encoder(new), config.model.encoder_kwargs)
    except Exception:  # noqa: BLE001 - an unknown encoder is reported by check_components
        return
    dropped = sorted(k for k in config.model.encoder_kwargs if k not in kept)
    if dropped:
        config.model.encoder_kwargs = kept
        warnings.warn(
            f"model.encoder_kwargs {', '.join(dropped)} (for {old!r}) do not apply to {new!r} and "
            f"are left out; pass its own with --set model.encoder_kwargs.KEY=VALUE",
            ConfigWarning,
            stacklevel=3,
        )


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
                    f"--set {quote(item)}: {_unknown_key_message(part, prefix, list(node))}"
                )
        if not isinstance(node[part], dict):
            raise ConfigError(f"--set {quote(item)}: {'.'.join(parts[: i + 1])} is not a mapping")
        node = node[part]
    last = parts[-1]
    inside_kwargs = any(p.endswith("_kwargs") for p in parts[:-1])
    if last not in node and not inside_kwargs:
        prefix = ".".join(parts[:-1])
        prefix = f"{prefix}." if prefix else ""
        raise ConfigError(f"--set {quote(item)}: {_unknown_key_message(last, prefix, list(node))}")
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


# -- components ------------------------------------------------------------------------------------
def check_components(config: TrainConfig, *, dataset: bool = True) -> None:
    """Check every component name and ``*_kwargs`` key against the component it configures.

    Cheap (no data is read, nothing is built), so a typo fails before a dataset loads: an unknown
    dataset, interaction, encoder, optimizer, scheduler, loss, loop, sampler or regularizer, and a
    keyword argument the component's constructor does not take, are each a :class:`ConfigError` naming
    where the value was set, the value, and the valid choices.

    Args:
        config: the run.
        dataset: also check ``dataset`` / ``dataset_kwargs`` (not when the graph is given directly).
    """
    from class_resolver.contrib.torch import lr_scheduler_resolver, optimizer_resolver

    from gnnlm.kge import interaction_resolver
    from gnnlm.train.loops import loop_resolver
    from gnnlm.train.losses import loss_resolver
    from gnnlm.train.negative_sampling import sampler_resolver
    from gnnlm.train.regularizers import regularizer_resolver
    from gnnlm.train.trainer import _SCHEDULER_SYNONYMS

    m, t = config.model, config.training
    if dataset:
        _check_dataset(config)
    interaction = _lookup(config, "model.interaction", interaction_resolver, m.interaction)
    skip = ("embedding_dim",) if getattr(interaction, "requires_embedding_dim", False) else ()
    _check_kwargs(config, "model.interaction_kwargs", interaction, m.interaction_kwargs, skip)
    if m.encoder:
        _check_encoder(config)
    optimizer = _lookup(config, "training.optimizer", optimizer_resolver, t.optimizer)
    _check_kwargs(config, "training.optimizer_kwargs", optimizer, t.optimizer_kwargs, ("params",))
    if t.scheduler:
        name = _SCHEDULER_SYNONYMS.get(t.scheduler.lower(), t.scheduler)
        scheduler = _lookup(config, "training.scheduler", lr_scheduler_resolver, name)
        _check_kwargs(
            config, "training.scheduler_kwargs", scheduler, t.scheduler_kwargs, ("optimizer",)
        )
    loss = _lookup(config, "training.loss", loss_resolver, t.loss)
    _check_kwargs(config, "training.loss_kwargs", loss, t.loss_kwargs)
    _lookup(config, "training.loop", loop_resolver, t.loop)
    _lookup(config, "training.sampler", sampler_resolver, t.sampler)
    if t.regularizer:
        _lookup(config, "training.regularizer", regularizer_resolver, t.regularizer)


def _at(config: TrainConfig, key: str) -> str:
    origin = config.origin(key)
    return f"{origin}: " if origin else ""


def _lookup(config: TrainConfig, key: str, resolver: Any, name: str) -> type:
    """``resolver.lookup(name)``, or a ConfigError listing the registered names."""
    try:
        return resolver.lookup(name)
    except (KeyError, ValueError, TypeError, ImportError) as err:
        choices = ", ".join(sorted(resolver.lookup_dict))
        reason = f" ({' '.join(str(err).split())})" if ":" in str(name) else ""
        raise ConfigError(
            f"{_at(config, key)}unknown {key.split('.')[-1]} {quote(name)}{reason}; valid: "
            f"{choices} (or 'package.module:Class' for your own)"
        ) from None


def _keywords(fn: Callable, skip: tuple[str, ...] = ()) -> tuple[list[str], bool]:
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


def _check_kwargs(
    config: TrainConfig,
    key: str,
    cls: type,
    kwargs: dict[str, Any],
    skip: tuple[str, ...] = (),
    valid: tuple[list[str], bool] | None = None,
    name: str | None = None,
) -> None:
    named, any_keyword = valid or _keywords(cls, skip)
    if any_keyword:
        return
    for given in kwargs:
        if given not in named:
            hint = did_you_mean(given, named)
            raise ConfigError(
                f"{_at(config, f'{key}.{given}')}{key} has the key {quote(given)}, which "
                f"{name or cls.__name__} does not take{hint}; valid keys: {', '.join(named) or '(none)'}"
            )


def _check_dataset(config: TrainConfig) -> None:
    from gnnlm.data.datasets import get_dataset

    valid = _dataset_keywords(config.dataset)
    if valid is not None:
        _check_kwargs(
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
        raise ConfigError(f"{_at(config, key)}{' '.join(str(err).split())}") from None


def _dataset_keywords(name: str) -> list[str] | None:
    """Options a registered dataset (or ``tsv``) takes: its and its base classes' constructor
    arguments (they pass ``**kwargs`` up); ``None`` for an unknown name or an open-ended loader."""
    from gnnlm.data.datasets import dataset_resolver
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
        named, _ = _keywords(init)
        names += [n for n in named if n not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            return [n for n in names if not (n == "path" and name.startswith("tsv:"))]
    return None


def _check_encoder(config: TrainConfig) -> None:
    from torch import nn

    from gnnlm.encoders import lookup_encoder
    from gnnlm.encoders.pyg import ModuleEncoder
    from gnnlm.encoders.resolver import constructor_keywords

    m = config.model
    try:
        cls = lookup_encoder(m.encoder)
    except (ValueError, TypeError, ImportError) as err:
        raise ConfigError(
            f"{_at(config, 'model.encoder')}model.encoder {quote(m.encoder)}: "
            f"{' '.join(str(err).split())}"
        ) from None
    named, any_keyword = constructor_keywords(cls)
    _check_kwargs(
        config,
        "model.encoder_kwargs",
        cls,
        m.encoder_kwargs,
        valid=(sorted(named), any_keyword),
        name=m.encoder,
    )
    # in_channels / out_channels / num_relations / relation_channels are filled in when named
    derived = {"in_channels", "out_channels", "num_relations", "relation_channels"}
    wrapped = issubclass(cls, ModuleEncoder) and cls.module_cls is not None
    target = cls.module_cls.__init__ if wrapped else cls
    if not isinstance(target, type) or target.__init__ not in (object.__init__, nn.Module.__init__):
        params = list(inspect.signature(target).parameters.values())
        required = [
            p.name
            for p in params
            if p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "self"
        ]
        missing = [r for r in required if r not in derived and r not in m.encoder_kwargs]
        if missing:
            raise ConfigError(
                f"{_at(config, 'model.encoder')}model.encoder {quote(m.encoder)} needs "
                f"{', '.join(missing)}: set model.encoder_kwargs (e.g. "
                f"{{{', '.join(f'{r}: ...' for r in missing)}}})"
            )
