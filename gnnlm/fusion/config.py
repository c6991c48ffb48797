"""Typed configuration of a fused LM (saved as JSON next to the weights)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from gnnlm.config import Config
from gnnlm.utils.atomic import atomic_write_json

POOLING = ("mean", "cls")
#: as gnnlm.fusion.injection.GATE_INITS (repeated: the config imports no torch)
GATE_INITS = ("open", "closed")
NODE_FEATURES = ("learned", "kge", "text")


@dataclass
class FusionConfig(Config):
    """How to build a :class:`~gnnlm.fusion.model.FusedLM`.

    Attributes:
        lm: ``"minilm"`` (default, all-MiniLM-L6-v2), ``"tiny-bert"`` / ``"tiny-roberta"`` /
            ``"tiny-distilbert"``, a local folder or a hub id.
        attn_implementation: ``"eager"`` / ``"sdpa"`` / ``None`` (HF default).
        injection: injection modes, by registry name (``graph``, ``entity``, ``relation``, ``memory``,
            ``dual_tower``, ``adaptive``). The list order does not matter: modes are built and run in a
            canonical order (by name), and every mode of a fused layer reads the same node states.
        injection_kwargs: per mode, keyword arguments (JSON values; tensors such as KGE tables are passed
            to the model separately).
        num_fused_layers: ``K``, fusion after the top ``K`` LM layers (default 2, capped at the depth).
        encoder: GNN spec for :func:`gnnlm.encoders.resolve_encoder` (``"rgcn"``, ``"compgcn"``,
            ``"pyg:GATConv"``, ``"pkg.mod:Class"``); it gets ``num_layers = K``. Only built when a mode
            needs node states. The default, CompGCN, has no per-relation weights, so its cost does not
            grow with the number of relation types (474 with inverses on FB15k-237).
        encoder_kwargs: extra keyword arguments of the encoder. Batch normalisation is off by default:
            it would mix statistics across the examples of a batch.
        node_channels: width of node states (entity embeddings in, GNN width).
        num_entities: KG entities (rows of the node-embedding table).
        num_relations: edge types of the subgraphs (with inverse relations when the graph has them).
        pooling: ``"mean"`` or ``"cls"``.
        num_roles: distinct roles of linked entities in the node features (first, second, ... linked
            entity; later ones share the last role).
        kge_channels: width of the KGE tables given as ``entity_embeddings`` (set by the model; lets
            ``from_pretrained`` rebuild them before loading their saved values).
        kge_relations: rows of the table given as ``relation_embeddings`` (set by the model, as
            ``kge_channels``; ``None`` in configs saved before it existed: ``num_relations`` then).
        gate_init: how the modes' gated residuals start, both exactly the LM: ``"open"`` (default: each
            mode's output projection zero, its gates at ``g = 1``, ``tanh ~ 0.76``; the projections learn
            from the first step) or ``"closed"`` (gates at zero, projections random: only the gates learn
            at the first step). See :mod:`gnnlm.fusion.injection`.
        node_features: initial GNN node states (before the role embedding): ``"learned"`` (default, a
            random ``[num_entities, node_channels]`` table trained with the task), ``"kge"`` (a trained
            KGE model's entity table, ``FusedLM(node_feature_table=...)`` or its ``entity_embeddings``)
            or ``"text"`` (the LM's pooled encoding of each entity's name / description,
            :func:`gnnlm.fusion.node_features.text_node_features`); ``kge`` and ``text`` go through a
            trained linear projection to ``node_channels``.
        node_features_trainable: whether a ``kge`` / ``text`` table is itself trained (default: frozen,
            only the projection learns; the table is saved with the weights either way).
        node_feature_channels: width of the ``kge`` / ``text`` table (set by the model, as
            ``kge_channels``).
    """

    lm: str = "minilm"
    attn_implementation: str | None = None
    injection: list[str] = field(default_factory=lambda: ["graph"])
    injection_kwargs: dict[str, dict] = field(default_factory=dict)
    num_fused_layers: int = 2
    encoder: str | None = "compgcn"
    encoder_kwargs: dict = field(default_factory=lambda: {"batch_norm": False})
    node_channels: int = 64
    num_entities: int = 0
    num_relations: int = 0
    pooling: str = "mean"
    num_roles: int = 2
    kge_channels: int | None = None
    kge_relations: int | None = None
    gate_init: str = "open"
    node_features: str = "learned"
    node_features_trainable: bool = False
    node_feature_channels: int | None = None

    def __post_init__(self) -> None:
        """Check every field's type and range, naming the field and the value.

        Raises:
            TypeError: a value of the wrong type (``node_channels="64"``, ``injection=[1]``).
            ValueError: a value out of range (``node_channels=0``, ``pooling="max"``).
        """
        if isinstance(self.injection, str):  # one mode by name
            self.injection = [self.injection]
        _expect(self, "lm", str)
        _expect(self, "attn_implementation", str, optional=True)
        _expect(self, "encoder", str, optional=True)
        _expect(self, "encoder_kwargs", dict)
        _expect(self, "injection", (list, tuple))
        self.injection = list(self.injection)
        for k, mode in enumerate(self.injection):
            if not isinstance(mode, str):
                raise TypeError(
                    f"FusionConfig.injection[{k}]: expected a mode name (str), got {mode!r} "
                    f"({type(mode).__name__})"
                )
        _expect(self, "injection_kwargs", dict)
        for mode, kwargs in self.injection_kwargs.items():
            if not isinstance(kwargs, dict):
                raise TypeError(
                    f"FusionConfig.injection_kwargs[{mode!r}]: expected a mapping of keyword "
                    f"arguments, got {kwargs!r} ({type(kwargs).__name__})"
                )
        for name, low in (
            ("num_fused_layers", 1),
            ("node_channels", 1),
            ("num_entities", 0),
            ("num_relations", 0),
            ("num_roles", 1),
        ):
            _expect_int(self, name, low)
        if self.kge_channels is not None:
            _expect_int(self, "kge_channels", 1)
        if self.kge_relations is not None:
            _expect_int(self, "kge_relations", 0)
        if self.node_feature_channels is not None:
            _expect_int(self, "node_feature_channels", 1)
        _expect(self, "node_features_trainable", bool)
        for name, choices in (
            ("pooling", POOLING),
            ("gate_init", GATE_INITS),
            ("node_features", NODE_FEATURES),
        ):
            _expect(self, name, str)
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"FusionConfig.{name}: expected one of {', '.join(choices)}, "
                    f"got {getattr(self, name)!r}"
                )

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON (atomically)."""
        atomic_write_json(path, self.to_dict(), sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FusionConfig:
        """Read the JSON a fused model's folder holds, through the one typed loader
        (:mod:`gnnlm.config`: unknown keys, types and ranges name the file)."""
        try:
            values = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err
        return cls.from_dict(values, source=str(path))


def _expect(config: FusionConfig, name: str, types, *, optional: bool = False) -> None:
    value = getattr(config, name)
    if value is None and optional:
        return
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _as_tuple(types):
        names = " or ".join(t.__name__ for t in _as_tuple(types)) + (" or None" if optional else "")
        raise TypeError(
            f"FusionConfig.{name}: expected {names}, got {value!r} ({type(value).__name__})"
        )


def _expect_int(config: FusionConfig, name: str, low: int) -> None:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"FusionConfig.{name}: expected an integer, got {value!r} ({type(value).__name__})"
        )
    if value < low:
        raise ValueError(f"FusionConfig.{name}: expected an integer >= {low}, got {value}")


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)
