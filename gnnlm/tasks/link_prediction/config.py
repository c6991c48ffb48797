"""Config of the link-prediction task: :class:`LinkPredictionConfig` (also known as ``TrainConfig``).

A run is described by one YAML file (``configs/<dataset>/<model>.yaml``)::

    dataset: umls
    dataset_kwargs: {}
    seed: 0
    model: {interaction: complex, interaction_kwargs: {}, embedding_dim: 200, encoder: null, encoder_kwargs: {},
            representation: null, representation_kwargs: {}}
    training: {loop: kvsall, epochs: 100, batch_size: 256, lr: 0.001, optimizer: adam, loss: bce, ...}
    evaluation: {batch_size: 256, frequency: 5, patience: 5, metric: mrr}

``task:`` defaults to ``link_prediction``, so a file without it is a link-prediction run. Files are read by
:mod:`gnnlm.config`; :func:`check_components` (run by the task before it loads any data) checks every
component name and ``*_kwargs`` key against the component it configures.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnnlm.config import (
    AT_LEAST_0,
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    Config,
    ConfigError,
    ConfigWarning,
    apply_overrides,
    check_kwargs,
    checked,
    lookup_component,
)
from gnnlm.eval.metrics import HEADLINE_METRICS
from gnnlm.train.config import EvaluationConfig, RunConfig, TrainingConfig, check_dataset
from gnnlm.utils.strict_yaml import quote

#: the filtered rank-based metrics reported for link prediction (the one list, in gnnlm.eval.metrics).
HEADLINE = HEADLINE_METRICS


@dataclass
class ModelConfig(Config):
    """What to train.

    Attributes:
        interaction: scoring function, a registered name (``transe``, ``distmult``, ``complex``, ``rotate``,
            ``tucker``, ...) or a dotted path ``pkg.mod:Class``.
        interaction_kwargs: keyword arguments of the interaction (e.g. ``{p: 1}`` for TransE-L1).
        embedding_dim: base embedding width (complex-valued models store ``2 * embedding_dim`` reals).
        encoder: ``None`` for a plain embedding table, else a GNN encoder spec (``rgcn``, ``compgcn``,
            ``pkg.mod:Class``, ``pyg:GATConv``) computing the entity representations.
        encoder_kwargs: keyword arguments of the encoder.
        representation: where a plain table lives: ``None`` / ``embedding`` (in RAM), ``memmap``
            (memory-mapped files, for tables larger than RAM: :mod:`gnnlm.kge.mmap`), or a dotted path
            to a :class:`~gnnlm.kge.representation.Representation` with a ``for_interaction``
            classmethod (e.g. a sharded table). Not with ``encoder``, which computes the entities.
        representation_kwargs: keyword arguments of the representation (``memmap``: ``directory``,
            the folder of its files; default a fresh folder under the user cache).
    """

    interaction: str = "complex"
    interaction_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = checked(200, AT_LEAST_1, "200")
    encoder: str | None = None
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    representation: str | None = None
    representation_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LinkPredictionTrainingConfig(TrainingConfig):
    """How to train a link-prediction model: the engine's options (:class:`~gnnlm.train.config.
    TrainingConfig`) plus these.

    Attributes:
        loop: ``kvsall`` (1-N: every (h, r) query against all entities, all true tails as targets) or
            ``slcwa`` (each true triple against ``num_negatives`` corrupted ones).
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
        sparse_updates: update only the rows a sLCWA batch uses (row-sparse gradients; Adam becomes
            lazy Adam): ``null`` = auto (on where it applies, a batch touches few rows and the
            sparse form is exact: Adagrad, SGD), ``true``, ``false`` (dense reference). See
            :mod:`gnnlm.train.sparse`.
    """

    loop: str = "kvsall"
    epochs: int = checked(100, AT_LEAST_1, "100")
    batch_size: int = checked(256, AT_LEAST_1, "256")
    loss: str = "bce"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    num_negatives: int = checked(1, AT_LEAST_1, "1")
    sampler: str = "uniform"
    filter_negatives: bool = False
    adversarial_temperature: float | None = checked(None, POSITIVE, "1.0, or null for none")
    label_smoothing: float = checked(0.0, UNIT_INTERVAL, "0.1, or 0 for none")
    reciprocal: bool = False
    regularizer: str | None = None
    regularizer_weight: float = checked(0.0, NON_NEGATIVE, "0.01, or 0 for none")
    sparse_updates: bool | None = None


@dataclass
class LinkPredictionEvaluationConfig(EvaluationConfig):
    """Filtered rank-based validation (the engine's options; ``metric`` one of :data:`HEADLINE`).

    ``protocol``: ``full`` ranks against every entity (filtered); ``ogb`` against the negatives OGB
    ships with each valid/test triple of ``ogbl-*`` datasets (:mod:`gnnlm.eval.ogb_run`).
    """

    frequency: int = checked(5, AT_LEAST_0, "5, or 0 for only at the end")
    metric: str | None = "mrr"
    protocol: str = "full"

    def __post_init__(self) -> None:
        if self.protocol not in ("full", "ogb"):
            raise ValueError(f"evaluation.protocol must be 'full' or 'ogb', got {self.protocol!r}")


@dataclass
class LinkPredictionConfig(RunConfig):
    """A complete link-prediction run (see the module docstring for the YAML form)."""

    task: str = "link_prediction"
    dataset: str = "umls"
    model: ModelConfig = field(default_factory=ModelConfig)
    training: LinkPredictionTrainingConfig = field(default_factory=LinkPredictionTrainingConfig)
    evaluation: LinkPredictionEvaluationConfig = field(
        default_factory=LinkPredictionEvaluationConfig
    )

    @classmethod
    def load(
        cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()
    ) -> LinkPredictionConfig:
        """Read a YAML file and apply ``--set`` overrides.

        ``--set model.encoder=X`` without any ``model.encoder_kwargs`` override keeps only the file's
        encoder arguments that ``X`` takes (the rest were written for the file's encoder, e.g. R-GCN's
        ``num_bases``) and warns with a :class:`ConfigWarning` naming the ones left out.
        """
        before = super().load(path)
        config = apply_overrides(before, overrides)
        keys = [item.partition("=")[0].strip() for item in overrides]
        if "model.encoder" in keys and not any(k.startswith("model.encoder_kwargs") for k in keys):
            _keep_encoder_kwargs_that_fit(config, before)
        return config


#: the name every earlier release used.
TrainConfig = LinkPredictionConfig


def _keep_encoder_kwargs_that_fit(
    config: LinkPredictionConfig, before: LinkPredictionConfig
) -> None:
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


# -- components ------------------------------------------------------------------------------------
def check_components(config: LinkPredictionConfig, *, dataset: bool = True) -> None:
    """Check every component name and ``*_kwargs`` key against the component it configures.

    Cheap (no data is read, nothing is built), so a typo fails before a dataset loads: an unknown
    dataset, interaction, encoder, optimizer, scheduler, loss, loop, sampler or regularizer, and a
    keyword argument the component's constructor does not take, are each a :class:`ConfigError` naming
    where the value was set, the value, and the valid choices.

    Args:
        config: the run.
        dataset: also check ``dataset`` / ``dataset_kwargs`` (not when the graph is given directly).
    """
    from gnnlm.kge import interaction_resolver
    from gnnlm.train.loops import loop_resolver
    from gnnlm.train.losses import loss_resolver
    from gnnlm.train.negative_sampling import sampler_resolver
    from gnnlm.train.optim import check_training
    from gnnlm.train.regularizers import regularizer_resolver

    m, t = config.model, config.training
    if dataset:
        check_dataset(config)
    interaction = lookup_component(config, "model.interaction", interaction_resolver, m.interaction)
    skip = ("embedding_dim",) if getattr(interaction, "requires_embedding_dim", False) else ()
    check_kwargs(config, "model.interaction_kwargs", interaction, m.interaction_kwargs, skip)
    if m.encoder:
        _check_encoder(config)
    if m.representation:
        _check_representation(config)
    check_training(config)
    loss = lookup_component(config, "training.loss", loss_resolver, t.loss)
    check_kwargs(config, "training.loss_kwargs", loss, t.loss_kwargs)
    lookup_component(config, "training.loop", loop_resolver, t.loop)
    lookup_component(config, "training.sampler", sampler_resolver, t.sampler)
    if t.regularizer:
        lookup_component(config, "training.regularizer", regularizer_resolver, t.regularizer)


def representation_class(name: str) -> type | None:
    """The class of ``model.representation`` (``None`` for the in-RAM table, ``embedding``)."""
    import gnnlm.kge.mmap  # noqa: F401  (registers memmap)
    from gnnlm.kge.representation import EmbeddingRepresentation, representation_resolver

    cls = representation_resolver.lookup(name)
    return None if cls is EmbeddingRepresentation else cls


def _check_representation(config: LinkPredictionConfig) -> None:
    from gnnlm.kge.representation import representation_resolver

    m = config.model
    lookup_component(config, "model.representation", representation_resolver, m.representation)
    cls = representation_class(m.representation)
    if cls is None:
        if m.representation_kwargs:
            raise ConfigError(
                f"{config.at('model.representation_kwargs')}model.representation_kwargs: the "
                f"in-RAM table takes none, got {sorted(m.representation_kwargs)}"
            )
        return
    if m.encoder:
        raise ConfigError(
            f"{config.at('model.representation')}model.representation "
            f"{quote(m.representation)} and model.encoder {quote(m.encoder)}: the encoder computes "
            "the entity representations; set one of them"
        )
    if not hasattr(cls, "for_interaction"):
        raise ConfigError(
            f"{config.at('model.representation')}model.representation {quote(m.representation)}: "
            f"{cls.__name__} has no for_interaction classmethod (how the table is sized and "
            "initialised for the interaction; see gnnlm.kge.mmap.MemmapRepresentation)"
        )
    check_kwargs(config, "model.representation_kwargs", cls, m.representation_kwargs)


def _check_encoder(config: LinkPredictionConfig) -> None:
    from torch import nn

    from gnnlm.encoders import lookup_encoder
    from gnnlm.encoders.pyg import ModuleEncoder
    from gnnlm.encoders.resolver import constructor_keywords

    m = config.model
    try:
        cls = lookup_encoder(m.encoder)
    except (ValueError, TypeError, ImportError) as err:
        raise ConfigError(
            f"{config.at('model.encoder')}model.encoder {quote(m.encoder)}: "
            f"{' '.join(str(err).split())}"
        ) from None
    named, any_keyword = constructor_keywords(cls)
    check_kwargs(
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
                f"{config.at('model.encoder')}model.encoder {quote(m.encoder)} needs "
                f"{', '.join(missing)}: set model.encoder_kwargs (e.g. "
                f"{{{', '.join(f'{r}: ...' for r in missing)}}})"
            )
