r"""The query adapter: a query vector from the *frozen* LM's encodings of the head's and relation's text.

With ``model.query_encoder: frozen`` no LM trains. The pretrained LM encodes every entity's text once
(the cached table :math:`X`, ``[N, H]``, that the frozen keys read too) and every relation's text once
(:math:`X_R`, ``[2R, H]``, the inverse relations' texts included); the query of ``(h, r, ?)`` is

.. math::
    q_{(h, r)} = x_h + W_2\,\mathrm{GELU}\big(W_1 [x_h ; \rho_r] + b_1\big) + b_2

where :math:`\rho_r` starts as the relation's text encoding and trains. :math:`W_2, b_2` start at zero,
so a fresh adapter's query is the head's own text encoding (the untrained model ranks entities by the
similarity of their text to the head's). A training step then costs a few small GEMMs instead of an LM
pass, so the CPU budget can read every training triple; an entity outside the KG still gets a query
from its text (encoded by the same frozen LM).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class QueryAdapter(nn.Module):
    """``q = x_h + MLP([x_h ; rho_r])`` (see the module docstring).

    Args:
        relation_table: ``[2R, H]`` the frozen LM's encodings of the relation texts (relation
            ``r``, then its inverse ``r + R``): the initial relation vectors ``rho``.
        width: the MLP's hidden width.
        dropout: dropout on the MLP's hidden layer.
    """

    def __init__(self, relation_table: Tensor, *, width: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        if relation_table.ndim != 2:
            raise ValueError(
                f"relation_table must be [2R, H], got shape {tuple(relation_table.shape)}"
            )
        hidden = relation_table.size(1)
        self.register_buffer("relation_init", relation_table.float().clone(), persistent=False)
        self.relation = nn.Parameter(torch.empty_like(self.relation_init))
        self.hidden = nn.Linear(2 * hidden, width)
        self.out = nn.Linear(width, hidden)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.relation.copy_(self.relation_init)
        self.hidden.reset_parameters()
        nn.init.zeros_(self.out.weight)  # a fresh adapter is the identity on the head's encoding
        nn.init.zeros_(self.out.bias)

    def forward(self, heads: Tensor, relations: Tensor) -> Tensor:
        """``heads [B, H]`` (the frozen LM's encodings of the head texts), ``relations [B]`` in
        ``[0, 2R)`` -> ``[B, H]`` query vectors (not normalised)."""
        rho = self.relation[relations.to(self.relation.device)]  # [B, H]
        z = F.gelu(self.hidden(torch.cat([heads, rho], -1)))  # [B, width]
        return heads + self.out(self.dropout(z))

    def extra_repr(self) -> str:
        return f"relations={self.relation.size(0)}, hidden={self.relation.size(1)}"


__all__ = ["QueryAdapter"]
