"""Building link-prediction models from a :class:`~gnnlm.train.config.ModelConfig`, and the
``save_pretrained`` / ``from_pretrained`` pair for trained ones.

A pretrained directory holds ``config.json`` (:class:`PretrainedConfig`), ``model.safetensors`` (the
weights) and, when the graph was known at save time, ``vocab.json`` (entity and relation names, so
predictions can be named without the dataset). Loading reads JSON and safetensors only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

import gnnlm
from gnnlm.train.checkpoint import (
    CheckpointError,
    atomic_write_json,
    load_module_tensors,
    load_tensors,
    module_tensors,
    save_tensors,
)
from gnnlm.train.config import ModelConfig, _build, _Where

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
VOCAB_NAME = "vocab.json"


@dataclass
class PretrainedConfig:
    """Everything needed to rebuild a trained link-prediction model.

    Attributes:
        model: the model section of the training config.
        num_entities: entities scored.
        num_relations: base relations (without inverses).
        reciprocal: whether the model holds an inverse relation per relation.
        dataset: the dataset it was trained on (needed again only by GNN encoders).
        dataset_kwargs: its loading options.
        gnnlm_version: version that wrote the files.
    """

    model: ModelConfig
    num_entities: int
    num_relations: int
    reciprocal: bool = False
    dataset: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    gnnlm_version: str = gnnlm.__version__

    @classmethod
    def load(cls, directory: str | Path) -> PretrainedConfig:
        path = Path(directory) / CONFIG_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(
                f"{path}: not found; is {directory} a save_pretrained directory?"
            ) from None
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
        return _build(cls, data, prefix="", where=_Where(str(path), {}))

    def save(self, directory: str | Path) -> None:
        atomic_write_json(Path(directory) / CONFIG_NAME, dataclasses.asdict(self))


def build_model(
    model_config: ModelConfig,
    num_entities: int,
    num_relations: int,
    *,
    reciprocal: bool = False,
    kg: KnowledgeGraph | None = None,
) -> nn.Module:
    """Build a :class:`~gnnlm.kge.LinkPredictionModel` (embedding table, or GNN when ``encoder`` is set).

    Args:
        model_config: interaction, embedding size and optional encoder.
        num_entities: number of entities.
        num_relations: number of base relations (the model holds twice as many when ``reciprocal``).
        reciprocal: add an inverse relation per relation.
        kg: the graph, required by GNN encoders (they propagate over its training triples).
    """
    from gnnlm.kge import build_kge_model, resolve_interaction

    # One interaction instance sizes both the representation and the scoring.
    interaction = resolve_interaction(
        model_config.interaction,
        model_config.embedding_dim,
        **(model_config.interaction_kwargs or {}),
    )
    representation = None
    if model_config.encoder:
        if kg is None:
            raise ValueError(
                f"encoder {model_config.encoder!r} needs the knowledge graph (pass kg=...)"
            )
        from gnnlm.encoders import build_gnn_representation

        representation = build_gnn_representation(
            model_config.encoder,
            kg,
            embedding_dim=model_config.embedding_dim,
            interaction=interaction,
            reciprocal=reciprocal,
            encoder_kwargs=model_config.encoder_kwargs,
        )
    return build_kge_model(
        interaction,
        num_entities,
        num_relations,
        model_config.embedding_dim,
        reciprocal=reciprocal,
        representation=representation,
    )


def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    config: PretrainedConfig,
    *,
    kg: KnowledgeGraph | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` (and ``vocab.json`` when ``kg`` is given).

    Returns:
        the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / WEIGHTS_NAME, module_tensors(model))
    if kg is not None:
        vocab = {"entities": list(kg.entities.names), "relations": list(kg.relations.names)}
        atomic_write_json(directory / VOCAB_NAME, vocab)
    config.save(directory)
    return directory


def from_pretrained(directory: str | Path, *, kg: KnowledgeGraph | None = None) -> nn.Module:
    """Rebuild a model written by :func:`save_pretrained` and load its weights (safetensors only).

    Args:
        directory: the ``save_pretrained`` directory.
        kg: the graph; loaded from ``config.dataset`` when a GNN encoder needs it and it is not given.

    Returns:
        the model in eval mode.
    """
    directory = Path(directory)
    config = PretrainedConfig.load(directory)
    if kg is None and config.model.encoder:
        from gnnlm.data import load_dataset

        kg = load_dataset(config.dataset, **config.dataset_kwargs)
    model = build_model(
        config.model, config.num_entities, config.num_relations, reciprocal=config.reciprocal, kg=kg
    )
    tensors, _ = load_tensors(directory / WEIGHTS_NAME)
    load_module_tensors(model, tensors, source=str(directory / WEIGHTS_NAME))
    return model.eval()


def load_vocab(directory: str | Path) -> dict[str, list[str]] | None:
    """``{"entities": [...], "relations": [...]}`` saved next to the weights, or ``None``."""
    path = Path(directory) / VOCAB_NAME
    return json.loads(path.read_text()) if path.exists() else None
