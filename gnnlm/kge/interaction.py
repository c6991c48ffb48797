"""The base class of scoring functions (PyKEEN's *interactions*).

An interaction is the pure function ``f(h, r, t) -> score``; it holds no entity embeddings (only its own
parameters, e.g. TuckER's core tensor or ConvE's convolution). Models that hold or compute representations
(an embedding table, a GNN, a text encoder) feed any interaction; see :mod:`gnnlm.kge.model`.

Shapes: ``h``, ``r``, ``t`` are broadcastable ``(*batch, dim)`` tensors; the score is ``(*batch)``.
Higher scores mean more plausible triples, for every interaction (distances are negated).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn


class Interaction(nn.Module):
    """A KG scoring function ``f(h, r, t)``.

    Subclasses implement :meth:`forward`; those whose algebra allows a 1-N matrix product override
    :meth:`score_t` / :meth:`score_h` (and set ``supports_gemm = True``); the defaults here are chunked
    broadcasts whose peak memory is bounded by ``max_chunk_elements`` floats.
    """

    #: entity representation width as a multiple of ``embedding_dim`` (2 for complex-valued models).
    entity_dim_factor: ClassVar[int] = 1
    #: relation representation width as a multiple of ``embedding_dim``.
    relation_dim_factor: ClassVar[int] = 1
    #: True when :meth:`score_t`/:meth:`score_h` are a single matrix product.
    supports_gemm: ClassVar[bool] = False
    #: upper bound on ``batch x num_entities x dim`` elements materialised at once by chunked 1-N scoring.
    max_chunk_elements: int = 2**25

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Score triples.

        Args:
            h: ``(*batch, entity_dim)`` head representations.
            r: ``(*batch, relation_dim)`` relation representations.
            t: ``(*batch, entity_dim)`` tail representations.

        Returns:
            ``(*batch)`` scores (broadcast shape of the inputs without the last dimension).
        """
        raise NotImplementedError

    def score_t(self, h: Tensor, r: Tensor, all_t: Tensor) -> Tensor:
        """Score ``(h, r, ?)`` queries against every candidate tail.

        Args:
            h: ``[B, entity_dim]``; r: ``[B, relation_dim]``; all_t: ``[N, entity_dim]``.

        Returns:
            ``[B, N]`` scores.
        """
        return self._chunked(lambda cand: self(h[:, None], r[:, None], cand[None]), all_t, len(h))

    def score_h(self, all_h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Score ``(?, r, t)`` queries against every candidate head: ``[N, d], [B, d], [B, d] -> [B, N]``."""
        return self._chunked(lambda cand: self(cand[None], r[:, None], t[:, None]), all_h, len(t))

    def _chunked(self, score_fn, candidates: Tensor, batch_size: int) -> Tensor:
        per_candidate = max(1, batch_size * candidates.shape[-1])
        chunk = max(1, self.max_chunk_elements // per_candidate)
        if chunk >= len(candidates):
            return score_fn(candidates)
        return torch.cat([score_fn(c) for c in candidates.split(chunk)], dim=1)  # [B, N]

    def reset_parameters(self) -> None:
        """Re-initialise the interaction's own parameters (most have none)."""

    def extra_repr(self) -> str:
        return ""
