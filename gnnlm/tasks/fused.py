"""The fused LM of every text + graph task, built from a task's ``model:`` block.

Triple classification and pre-training build their :class:`~gnnlm.fusion.FusedLM` here, from the same
``model:`` keys (:class:`~gnnlm.tasks.triple_classification.TripleClassificationModelConfig`), and hold it
under the attribute ``fused``: a model pre-trained with one ``model:`` block and a downstream model built
from the same block share every ``fused.*`` parameter name and shape, so the second stage of a two-stage
run can start from the first stage's weights by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gnnlm.config import AT_LEAST_1, POSITIVE, ConfigError, check_kwargs, checked
from gnnlm.train.config import TrainingConfig
from gnnlm.utils.strict_yaml import quote

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph
    from gnnlm.fusion import FusedLM
    from gnnlm.train.config import RunConfig

__all__ = [
    "FusedTrainingConfig",
    "seeded_linear",
    "build_fused_lm",
    "check_fused_model",
    "freeze_bottom_layers",
    "fused_parameter_groups",
    "hold_injection_at_zero",
    "node_feature_table",
]


@dataclass
class FusedTrainingConfig(TrainingConfig):
    """The engine's options with the defaults of every task that fine-tunes a fused LM: AdamW with
    weight decay at ``lr`` for the GNN, fusion modules and heads, the pretrained LM slower (``lm``
    group) and the injection gates faster (``gates``), so knowledge can enter within a short run.
    Tasks subclass it to change a default (triple classification: ``lr: 3.0e-3``)."""

    epochs: int = checked(1, AT_LEAST_1, "1")
    batch_size: int = checked(32, AT_LEAST_1, "32")
    lr: float = checked(1e-3, POSITIVE, "0.001")
    optimizer: str = "adamw"
    optimizer_kwargs: dict[str, Any] = field(default_factory=lambda: {"weight_decay": 0.01})
    param_groups: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"lm": {"lr": 5e-5}, "gates": {"lr": 2e-2}}
    )


def seeded_linear(in_features: int, out_features: int, seed: int) -> nn.Linear:
    """A ``Linear`` whose initial weights depend on ``seed`` alone, not on what was built before it, so
    every arm of a comparison (with or without a GNN) starts from the same head."""
    layer = nn.Linear(in_features, out_features)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer.reset_parameters()
    return layer


def check_fused_model(
    config: RunConfig, max_length: int, length_key: str = "data.max_length"
) -> None:
    """Check ``config.model`` before any data loads: the LM loads its config, ``max_length`` (set at
    ``length_key``) fits its positions, every injection mode exists and takes its options, and the
    encoder exists when a mode needs one.

    Raises:
        ConfigError: naming the file and line of the offending key.
    """
    from gnnlm.fusion import injection_resolver, text_positions
    from gnnlm.lm import load_lm_config

    c, m = config, config.model
    try:
        positions = text_positions(load_lm_config(m.lm))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{c.at('model.lm')}model.lm {quote(m.lm)}: {' '.join(str(err).split())}"
        ) from None
    if positions is not None and max_length > positions:
        raise ConfigError(
            f"{c.at(length_key)}{length_key}={max_length} is longer than the "
            f"{positions} positions of {m.lm!r}; use {length_key} <= {positions}"
        )
    graph = False
    for k, mode in enumerate(m.injection):
        try:
            cls = injection_resolver.lookup(mode)
        except (KeyError, ValueError, TypeError, ImportError):
            raise ConfigError(
                f"{c.at('model.injection')}model.injection[{k}]: unknown mode {quote(mode)}; "
                f"valid: {', '.join(sorted(injection_resolver.lookup_dict))}"
            ) from None
        graph = graph or cls.uses_graph_encoder
        kwargs = m.injection_kwargs.get(mode, {})
        skip = ("context", "entity_embeddings", "relation_embeddings")
        check_kwargs(c, f"model.injection_kwargs.{mode}", cls, kwargs, skip)
    if graph:
        from gnnlm.encoders import lookup_encoder

        try:
            lookup_encoder(m.encoder)
        except (KeyError, ValueError, TypeError, ImportError) as err:
            raise ConfigError(
                f"{c.at('model.encoder')}model.encoder {quote(m.encoder)}: "
                f"{' '.join(str(err).split())}"
            ) from None


def node_feature_table(model_config: Any, kg: KnowledgeGraph) -> Tensor | None:
    """The ``[num_entities, d]`` initial node-feature table of ``node_features: text | kge`` (``None``
    for ``learned``): the LM's pooled encoding of each entity's text (cached on disk), or the entity
    table of the KGE run ``kge_run``."""
    m = model_config
    if m.node_features == "text":
        from gnnlm.fusion.node_features import entity_texts, text_node_features

        return text_node_features(m.lm, entity_texts(kg), quiet=True)
    if m.node_features == "kge":
        from gnnlm.fusion.kge_source import kge_tables, load_kge_run

        return kge_tables(load_kge_run(m.kge_run, kg))[0]
    return None


def build_fused_lm(
    model_config: Any,
    kg: KnowledgeGraph,
    *,
    seed: int,
    node_features: Tensor | None = None,
    fused_class: type[FusedLM] | None = None,
    **fusion_options: Any,
) -> FusedLM:
    """The fused LM of a ``model:`` block over ``kg`` (relations and their inverses), its bottom LM
    layers frozen (``freeze_lm_layers``) and its injections held at zero (``freeze_injection``).

    Random draws: the LM's (tiny models) from ``seed``, the fusion modules' from torch's global
    generator (which the engine seeds before :meth:`~gnnlm.train.task.Task.build_model`), so two tasks
    built from the same block and seed start from the same fused weights.

    Args:
        model_config: the ``model:`` section (``lm``, ``injection``, ``encoder``, ...).
        kg: the graph (entity and relation counts).
        seed: the run's seed.
        node_features: the table of :func:`node_feature_table` (``None`` for learned features).
        fused_class: a :class:`~gnnlm.fusion.FusedLM` subclass to build (default ``FusedLM``), e.g.
            one whose ``node_roles`` reads task-specific node types.
        **fusion_options: further :class:`~gnnlm.fusion.FusionConfig` fields (``num_roles``).
    """
    from gnnlm.fusion import FusedLM, FusionConfig
    from gnnlm.lm import load_lm

    m = model_config
    fusion = FusionConfig(
        lm=m.lm,
        gate_init=m.gate_init,
        node_features=m.node_features,
        node_features_trainable=m.node_features_trainable,
        injection=list(m.injection),
        injection_kwargs={mode: dict(m.injection_kwargs.get(mode, {})) for mode in m.injection},
        num_fused_layers=m.num_fused_layers,
        encoder=m.encoder,
        encoder_kwargs=dict(m.encoder_kwargs),
        node_channels=m.node_channels,
        num_entities=kg.num_entities,
        num_relations=2 * kg.num_relations,
        **fusion_options,
    )
    lm = load_lm(m.lm, seed=seed)
    fused = (fused_class or FusedLM)(fusion, lm=lm, node_feature_table=node_features)
    freeze_bottom_layers(fused, m.freeze_lm_layers)
    if m.freeze_injection:
        hold_injection_at_zero(fused)
    return fused


def freeze_bottom_layers(model, num_layers: int) -> None:
    """Freeze the embeddings and the bottom ``num_layers`` layers of a fused model's LM (``model:
    freeze_lm_layers``; the same as ``finetuning.freeze_lm_layers``, which works on any model)."""
    from gnnlm.strategies.partial import freeze_lm_layers

    freeze_lm_layers(model, num_layers)


def hold_injection_at_zero(fused) -> None:
    """Close every injection gate and freeze the injection modules: the fused LM is then the plain LM
    and the GNN never reads the text (late fusion, when the head reads both)."""
    from gnnlm.fusion import TanhGate

    for injection in fused.injections.values():
        for module in injection.modules():
            if isinstance(module, TanhGate):
                nn.init.zeros_(module.weight)
        injection.requires_grad_(False)


def fused_parameter_groups(fused: FusedLM) -> dict[str, list[nn.Parameter]]:
    """The fused LM's parameters in the groups every fused task names in ``training.param_groups``:
    ``lm`` (the transformer), ``gnn`` (encoder, node/role/relation embeddings), ``fusion`` (the
    injection modules) and ``gates`` (their :class:`~gnnlm.fusion.TanhGate` parameters)."""
    from gnnlm.fusion import TanhGate, injection_parameters

    groups = injection_parameters(fused)
    gates = {
        id(p)
        for module in fused.modules()
        if isinstance(module, TanhGate)
        for p in module.parameters()
    }
    return {
        "lm": groups["lm"],
        "gnn": groups["gnn"],
        "fusion": [p for p in groups["fusion"] if id(p) not in gates],
        "gates": [p for p in groups["fusion"] if id(p) in gates],
    }
