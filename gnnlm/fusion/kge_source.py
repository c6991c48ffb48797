"""Entity / relation tables of a trained KGE model, for entity and memory injection (``source: kge``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from gnnlm.utils.modules import eval_mode

if TYPE_CHECKING:
    from gnnlm.data import KnowledgeGraph


def kge_tables(model: nn.Module) -> tuple[Tensor, Tensor]:
    """``(entity [num_entities, d_e], relation [num_relations, d_r])`` of a link-prediction model.

    Args:
        model: a :class:`gnnlm.kge.LinkPredictionModel` (anything with ``representations()``); a trained
            run folder is loaded with ``gnnlm.train.pretrained.from_pretrained(folder)`` first.

    Returns:
        Detached float tables (complex representations are split into real and imaginary parts), to pass
        as ``FusedLM(config, entity_embeddings=..., relation_embeddings=...)``.
    """
    with eval_mode(model):
        entity, relation = model.representations()

    def real(x: Tensor) -> Tensor:
        x = x.detach()
        if x.is_complex():
            x = torch.view_as_real(x).flatten(-2)  # [n, 2 * d]
        return x.float().clone()

    return real(entity), real(relation)


def load_kge_run(folder: str | Path, kg: KnowledgeGraph) -> nn.Module:
    """The model of a ``gnnlm train`` link-prediction run over ``kg``'s ids.

    Raises:
        ValueError: the run's saved vocabulary is not ``kg``'s entity and relation order.
    """
    from gnnlm.train.pretrained import from_pretrained, load_vocab

    folder = Path(folder)
    model_dir = folder / "model" if (folder / "model").is_dir() else folder
    vocab = load_vocab(model_dir)
    if vocab is not None and (
        list(vocab["entities"]) != list(kg.entities.names)
        or list(vocab["relations"]) != list(kg.relations.names)
    ):
        raise ValueError(
            f"{model_dir}/vocab.json: the KGE run numbers entities or relations differently from "
            f"{kg.name}; train it on the same dataset"
        )
    model = from_pretrained(model_dir, kg=kg)
    model.eval()
    return model
