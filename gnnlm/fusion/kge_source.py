"""Entity / relation tables of a trained KGE model, for entity and memory injection (``source: kge``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnlm.utils.modules import eval_mode


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
