"""The base class of scoring functions (PyKEEN's *interactions*).

An interaction is the pure function ``f(h, r, t) -> score``; it holds no entity embeddings (only its own
parameters, e.g. TuckER's core tensor or ConvE's convolution). Models that hold or compute representations
(an embedding table, a GNN, a text encoder) feed any interaction; see :mod:`gnnlm.kge.model`.

Shapes: ``h``, ``r``, ``t`` are broadcastable ``(*batch, dim)`` tensors; the score is ``(*batch)``.
Higher scores mean more plausible triples, for every interaction (distances are negated).

Besides scoring, an interaction tells an embedding table how to initialise and constrain itself
(:meth:`Interaction.reset_entity_`, :meth:`Interaction.reset_relation_`,
:meth:`Interaction.constrain_entity_`) and which factors a regulariser sees
(:meth:`Interaction.entity_factors`, :meth:`Interaction.relation_factors`), so that a training loop stays
generic.
"""

from __future__ import annotations

from collections.abc import Callable
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
    #: True when 1-N tail scoring (:meth:`score_t`) is a single matrix product (and :meth:`score_h`
    #: too, except for ConvE, whose head enters non-linearly).
    supports_gemm: ClassVar[bool] = False
    #: True when the constructor needs ``embedding_dim`` (interactions with their own weights, e.g.
    #: TuckER's core tensor); :func:`gnnlm.kge.build_kge_model` then passes it.
    requires_embedding_dim: ClassVar[bool] = False
    #: True when :meth:`constrain_entity_` does something (e.g. TransE's unit-norm entities).
    constrains_entities: ClassVar[bool] = False
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

    def _chunked(
        self, score_fn: Callable[[Tensor], Tensor], candidates: Tensor, batch_size: int
    ) -> Tensor:
        """Apply ``score_fn`` to slices of ``candidates`` so that at most ``max_chunk_elements`` of
        ``batch x chunk x dim`` are alive at once; concatenates the ``[B, chunk]`` results."""
        per_candidate = max(1, batch_size * candidates.shape[-1])
        chunk = max(1, self.max_chunk_elements // per_candidate)
        if chunk >= len(candidates):
            return score_fn(candidates)
        return torch.cat([score_fn(c) for c in candidates.split(chunk)], dim=1)  # [B, N]

    # ----------------------------------------------------------------------------------------------
    # Dimensions, initialisation, constraints and regularisation (used by EmbeddingRepresentation and
    # training loops; a GNN representation may ignore the init hooks).

    def representation_dims(self, embedding_dim: int) -> tuple[int, int]:
        """``(entity_dim, relation_dim)`` of the representations this interaction expects."""
        return self.entity_dim_factor * embedding_dim, self.relation_dim_factor * embedding_dim

    def reset_entity_(self, weight: Tensor) -> None:
        """Initialise an ``[num_entities, entity_dim]`` embedding table in place (Xavier normal)."""
        nn.init.xavier_normal_(weight)

    def reset_relation_(self, weight: Tensor) -> None:
        """Initialise an ``[num_relations, relation_dim]`` embedding table in place (Xavier normal)."""
        nn.init.xavier_normal_(weight)

    def constrain_entity_(self, weight: Tensor) -> None:
        """Project an ``[num_entities, entity_dim]`` table onto the constraint set, in place (no-op)."""

    def entity_factors(self, x: Tensor) -> Tensor:
        """The ``(*batch, k)`` factors of entity representations ``x`` that an L2/N3 regulariser sees."""
        return x

    def relation_factors(self, x: Tensor) -> Tensor | None:
        """Like :meth:`entity_factors` for relations; ``None`` when relations are not regularised."""
        return x

    def reset_parameters(self) -> None:
        """Re-initialise the interaction's own parameters (most have none)."""

    def extra_repr(self) -> str:
        return ""


def complex_split(x: Tensor) -> tuple[Tensor, Tensor]:
    """Split a ``(*batch, 2d)`` real tensor laid out as ``[real | imag]`` into two ``(*batch, d)`` halves."""
    d = x.shape[-1] // 2
    return x[..., :d], x[..., d:]


class _Modulus(torch.autograd.Function):
    """``|re + i im|`` with the subgradient 0 at the origin.

    ``torch.hypot`` / ``sqrt`` backpropagate ``0 / 0 = NaN`` where the modulus is exactly 0, which
    happens in RotatE when a rotated head lands exactly on a candidate (e.g. GNN outputs sharing
    coordinates). Values are ``torch.hypot``'s, bit for bit.
    """

    @staticmethod
    def forward(ctx, re: Tensor, im: Tensor) -> Tensor:
        out = torch.hypot(re, im)
        ctx.save_for_backward(re, im, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        re, im, out = ctx.saved_tensors
        scale = torch.where(out > 0, grad / out, torch.zeros_like(out))
        # sum_to_size undoes broadcasting (a no-op when the shapes already match)
        return (scale * re).sum_to_size(re.shape), (scale * im).sum_to_size(im.shape)


def modulus(re: Tensor, im: Tensor) -> Tensor:
    """Element-wise ``|re + i im|`` (broadcasting), with a zero subgradient at 0 (no NaN)."""
    return _Modulus.apply(re, im)


def complex_modulus(x: Tensor) -> Tensor:
    """``(*batch, 2d)`` ``[real | imag]`` -> ``(*batch, d)`` element-wise modulus."""
    re, im = complex_split(x)
    return modulus(re, im)
