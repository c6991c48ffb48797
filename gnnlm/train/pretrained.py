"""Building link-prediction models from a :class:`~gnnlm.tasks.link_prediction.config.ModelConfig`, and the
``save_pretrained`` / ``from_pretrained`` pair for trained ones.

A pretrained directory holds ``config.json`` (:class:`PretrainedConfig`), ``model.safetensors`` (the
weights) and, when the graph was known at save time, ``vocab.json`` (entity and relation names in id
order). The weights are tied to that vocabulary: :func:`align_graph` puts a freshly loaded dataset into
the model's id order (or refuses when the names differ), whatever order its files list the triples in.

Loading reads JSON and safetensors only, and imports no code named in ``config.json`` (``interaction`` or
``encoder`` as ``pkg.mod:Class``) unless ``trust_remote_code=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

import gnnlm
from gnnlm.config import Config
from gnnlm.tasks.link_prediction.config import ModelConfig
from gnnlm.train.checkpoint import (
    CheckpointError,
    load_module_tensors,
    load_tensors,
    module_tensors,
    save_tensors,
)
from gnnlm.utils.atomic import atomic_write_json

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
VOCAB_NAME = "vocab.json"


@dataclass
class PretrainedConfig(Config):
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
        return cls.from_dict(data, source=str(path))

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
    elif getattr(model_config, "representation", None):
        from gnnlm.tasks.link_prediction.config import representation_class

        table = representation_class(model_config.representation)
        if table is not None:  # e.g. memory-mapped files; None: the in-RAM table below
            representation = table.for_interaction(
                interaction,
                num_entities,
                2 * num_relations if reciprocal else num_relations,
                model_config.embedding_dim,
                **(model_config.representation_kwargs or {}),
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


def from_pretrained(
    directory: str | Path,
    *,
    kg: KnowledgeGraph | None = None,
    trust_remote_code: bool = False,
) -> nn.Module:
    """Rebuild a model written by :func:`save_pretrained` and load its weights (safetensors only).

    Args:
        directory: the ``save_pretrained`` directory.
        kg: the graph, in the model's id order (see :func:`align_graph`); loaded from
            ``config.dataset`` (and aligned to ``vocab.json``) when a GNN encoder needs it and it is not
            given.
        trust_remote_code: allow ``config.json`` to name code by dotted path (``pkg.mod:Class``), which
            imports and runs that module. Only for folders you trust.

    Returns:
        the model in eval mode.

    Raises:
        UntrustedCodeError: ``config.json`` names a dotted path and ``trust_remote_code`` is false
            (raised before anything is imported).
        CheckpointError: unreadable files, weights that do not fit, or a ``kg`` whose entity or
            relation names differ from ``vocab.json``.
    """
    from gnnlm.utils.registry import (
        UntrustedCodeError,
        is_dotted_path,
        refuse_code_imports,
        untrusted_code_message,
    )

    directory = Path(directory)
    config = PretrainedConfig.load(directory)
    source = str(directory / CONFIG_NAME)
    if not trust_remote_code:
        model = config.model
        for spec in (model.interaction, model.encoder, model.representation, config.dataset):
            if is_dotted_path(spec):
                raise UntrustedCodeError(untrusted_code_message(source, spec))
    vocab = load_vocab(directory)
    if kg is None and config.model.encoder:
        from gnnlm.data import load_dataset

        kg = load_dataset(config.dataset, **config.dataset_kwargs)
        if vocab is not None:
            kg = align_graph(kg, vocab, source=str(directory / VOCAB_NAME))
    elif kg is not None and vocab is not None:
        check_graph(kg, vocab, source=str(directory / VOCAB_NAME))
    # A file-backed table (model.representation: memmap) gets fresh files under the user cache: the
    # folder the training wrote may still be in use, and the weights come from model.safetensors.
    config.model.representation_kwargs.pop("directory", None)
    guard = contextlib.nullcontext() if trust_remote_code else refuse_code_imports(source)
    with guard:
        model = build_model(
            config.model,
            config.num_entities,
            config.num_relations,
            reciprocal=config.reciprocal,
            kg=kg,
        )
    tensors, _ = load_tensors(directory / WEIGHTS_NAME)
    load_module_tensors(model, tensors, source=str(directory / WEIGHTS_NAME))
    return model.eval()


def load_vocab(directory: str | Path) -> dict[str, list[str]] | None:
    """``{"entities": [...], "relations": [...]}`` saved next to the weights, or ``None``.

    Raises:
        CheckpointError: the file is not valid JSON or not two lists of names.
    """
    path = Path(directory) / VOCAB_NAME
    if not path.exists():
        return None
    try:
        vocab = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not (
        isinstance(vocab, dict)
        and all(
            isinstance(vocab.get(key), list) and all(isinstance(n, str) for n in vocab[key])
            for key in ("entities", "relations")
        )
    ):
        raise CheckpointError(
            f'{path}: expected {{"entities": [names], "relations": [names]}}, found '
            f"{str(vocab)[:80]!r}"
        )
    return vocab


def _vocab_difference(kind: str, ours: list[str], saved: list[str], kg_name: str, source: str):
    """``None`` when both hold the same names (any order), else the error message."""
    if len(set(saved)) != len(saved):
        dup = next(n for i, n in enumerate(saved) if n in saved[:i])
        return f"{source}: duplicate {kind[:-1]} name {dup!r}"
    if len(ours) == len(saved) and set(ours) == set(saved):
        return None
    only_ours = sorted(set(ours) - set(saved))
    only_saved = sorted(set(saved) - set(ours))
    return (
        f"{source}: the dataset {kg_name!r} does not match the model's vocabulary: {len(ours)} "
        f"{kind} in the dataset, {len(saved)} in the vocabulary; only in the dataset "
        f"({len(only_ours)}): {only_ours[:5]}; only in the vocabulary ({len(only_saved)}): "
        f"{only_saved[:5]}. Evaluate the model on the dataset it was trained on"
    )


def check_graph(kg: KnowledgeGraph, vocab: dict[str, list[str]], *, source: str) -> None:
    """Refuse a graph whose entity or relation ids are not the vocabulary's (names and order).

    Raises:
        CheckpointError: naming both sizes and a sample of the differences, or telling to use
            :func:`align_graph` when only the order differs.
    """
    for kind, ours in (("entities", kg.entities.names), ("relations", kg.relations.names)):
        ours = list(ours)
        if ours == vocab[kind]:
            continue
        problem = _vocab_difference(kind, ours, vocab[kind], kg.name, source)
        raise CheckpointError(
            problem
            or f"{source}: {kg.name!r} numbers its {kind} in another order than the model; load "
            "the graph with gnnlm.train.pretrained.align_graph(kg, load_vocab(model_dir))"
        )


def align_graph(kg: KnowledgeGraph, vocab: dict[str, list[str]], *, source: str) -> KnowledgeGraph:
    """``kg`` with its entity and relation ids renumbered to the saved vocabulary's order.

    The triples stay the same; only ids change. Returns ``kg`` itself when the ids already agree.

    Raises:
        CheckpointError: the dataset's names are not the vocabulary's (both sizes and a sample of the
            names only in one of them).
    """
    from gnnlm.data import KnowledgeGraph, Vocabulary
    from gnnlm.data.knowledge_graph import EntityText

    orders = {}
    for kind, vocabulary in (("entities", kg.entities), ("relations", kg.relations)):
        ours, saved = list(vocabulary.names), vocab[kind]
        problem = _vocab_difference(kind, ours, saved, kg.name, source)
        if problem:
            raise CheckpointError(problem)
        orders[kind] = None if ours == saved else torch.tensor(vocabulary.ids(saved))
    if orders["entities"] is None and orders["relations"] is None:
        return kg

    def new_ids(order: Tensor | None, size: int) -> Tensor:  # old id -> new id
        if order is None:
            return torch.arange(size)
        return torch.empty_like(order).scatter_(0, order, torch.arange(len(order)))

    ent, rel = orders["entities"], orders["relations"]
    ent_map, rel_map = new_ids(ent, kg.num_entities), new_ids(rel, kg.num_relations)
    splits = {
        split: torch.stack([ent_map[t[:, 0]], rel_map[t[:, 1]], ent_map[t[:, 2]]], dim=1)
        for split, t in kg.splits.items()
    }

    def pick(values: list | None, order: Tensor | None, missing: Any = None) -> list | None:
        if not values or order is None:
            return values
        return [values[i] if i < len(values) else missing for i in order.tolist()]

    text = kg.entity_text
    if text is not None and ent is not None:
        text = EntityText(
            names=pick(text.names, ent),
            descriptions=pick(text.descriptions, ent),
            aliases=pick(text.aliases, ent, []),
            wikidata_ids=pick(text.wikidata_ids, ent),
        )
    try:
        return KnowledgeGraph(
            Vocabulary(vocab["entities"]),
            Vocabulary(vocab["relations"]),
            splits,
            name=kg.name,
            node_types=kg.node_types,
            entity_type=kg.entity_type if ent is None else kg.entity_type[ent],
            entity_text=text,
            relation_text=pick(kg.relation_text, rel),
            extra={**kg.extra, "vocabulary": source},
        )
    except ValueError as err:
        raise CheckpointError(
            f"{source}: cannot renumber {kg.name!r} to this vocabulary: {err}"
        ) from None


def init_from_pretrained(
    model: nn.Module, source: str | Path, expected: PretrainedConfig, kg: KnowledgeGraph
) -> dict[str, Any]:
    """Load the weights of a run (``RUN/model``) or ``save_pretrained`` folder into ``model`` (warm start).

    Only weights are read; the model section, the sizes and the vocabulary must be the ones ``model`` was
    built from (``expected``, ``kg``). Nothing named in the folder's config is imported.

    Returns:
        a record of the source (``path``, ``weights_sha256``, and ``best_epoch`` / ``diverged`` from the
        run's ``metrics.json`` when present), for the new run's ``init_from.json``.

    Raises:
        CheckpointError: no model in ``source``, a different model or vocabulary, or unfitting weights.
    """
    source = Path(source)
    directory = source / "model" if (source / "model" / CONFIG_NAME).is_file() else source
    if not (directory / CONFIG_NAME).is_file():
        raise CheckpointError(
            f"{source}: no model to start from (expected {source / 'model' / CONFIG_NAME}); "
            "--init-from takes a finished run directory (or one stopped by a NaN loss) or a "
            "save_pretrained folder"
        )
    saved = PretrainedConfig.load(directory)
    fields = ("model", "num_entities", "num_relations", "reciprocal")
    ours, theirs = (
        {k: v for k, v in dataclasses.asdict(c).items() if k in fields} for c in (expected, saved)
    )
    diff = [
        f"{key}: {theirs[key]!r} there, {ours[key]!r} here"
        for key in fields
        if ours[key] != theirs[key]
    ]
    if diff:
        raise CheckpointError(
            f"{directory}: a warm start needs the same model and graph; differs: {'; '.join(diff)}"
        )
    vocab = load_vocab(directory)
    if vocab is not None:
        check_graph(kg, vocab, source=str(directory / VOCAB_NAME))
    weights = directory / WEIGHTS_NAME
    tensors, _ = load_tensors(weights)
    load_module_tensors(model, tensors, source=str(weights))
    record: dict[str, Any] = {
        "path": str(directory.resolve()),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    metrics_path = directory.parent / "metrics.json"
    if directory.name == "model" and metrics_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            metrics = json.loads(metrics_path.read_text())
            record.update({k: metrics[k] for k in ("best_epoch", "diverged") if k in metrics})
    return record
