"""Negative sampling by corruption for sLCWA training, found by name (``uniform``, ``bernoulli``).

Each positive triple ``(h, r, t)`` gives ``K`` negatives, each replacing either its head or its tail by
an entity drawn uniformly from the *other* entities (the replaced entity never equals the original, so a
negative is never the positive itself). Which side is replaced is a fair coin (:class:`UniformNegativeSampler`)
or a per-relation biased coin (:class:`BernoulliNegativeSampler`). With ``filtered=True`` the sampler also
returns a mask that is False for every negative that is itself a known (training) triple.

All randomness comes from the ``torch.Generator`` passed to :meth:`NegativeSampler.sample`, so a training
loop that checkpoints that generator resumes bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gnnlm.utils.registry import DottedPathResolver


@dataclass
class NegativeBatch:
    """Negatives for a batch of positives.

    Attributes:
        negatives: ``[B, K, 3]`` corrupted (h, r, t) triples.
        corrupt_head: ``[B, K]`` True where the head was replaced.
        mask: ``[B, K]`` True for negatives to use; ``None`` when the sampler does not filter (all used).
    """

    negatives: Tensor
    corrupt_head: Tensor
    mask: Tensor | None = None


class NegativeSampler:
    """Corrupts heads or tails of positive triples.

    Args:
        triples: ``[n, 3]`` training triples (the known positives for filtering and statistics).
        num_entities: number of entities to draw replacements from.
        num_negatives: negatives ``K`` per positive.
        filtered: also return a mask dropping negatives that are in ``triples``.
    """

    def __init__(
        self, triples: Tensor, num_entities: int, *, num_negatives: int = 1, filtered: bool = False
    ) -> None:
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        if num_entities < 2:
            raise ValueError(f"corruption needs at least 2 entities, got {num_entities}")
        self.num_entities = num_entities
        self.num_negatives = num_negatives
        self.filtered = filtered
        triples = triples.long()
        self.num_relations = int(triples[:, 1].max()) + 1 if len(triples) else 0
        self._known = torch.unique(self._keys(triples)) if filtered else None  # sorted [n_unique]

    def _keys(self, triples: Tensor) -> Tensor:
        h, r, t = triples.unbind(-1)
        return (h * max(self.num_relations, 1) + r) * self.num_entities + t

    def head_probability(self, relations: Tensor) -> Tensor:
        """``[B]`` probability of corrupting the head of a triple with each relation."""
        return torch.full(relations.shape, 0.5)

    def sample(self, positive: Tensor, generator: torch.Generator | None = None) -> NegativeBatch:
        """Draw ``K`` negatives per positive.

        Args:
            positive: ``[B, 3]`` positive triples.
            generator: the random source.

        Returns:
            :class:`NegativeBatch` with ``negatives: [B, K, 3]``.
        """
        batch, k = len(positive), self.num_negatives
        p_head = self.head_probability(positive[:, 1])  # [B]
        corrupt_head = torch.rand(batch, k, generator=generator) < p_head[:, None]  # [B, K]
        column = torch.where(corrupt_head, 0, 2)  # [B, K] index of the replaced column
        negatives = positive[:, None, :].repeat(1, k, 1)  # [B, K, 3]
        original = negatives.gather(2, column[..., None]).squeeze(2)  # [B, K]
        # Draw from the other N - 1 entities: shift draws at or above the original entity by one.
        draw = torch.randint(self.num_entities - 1, (batch, k), generator=generator)  # [B, K]
        draw = draw + (draw >= original).long()
        negatives.scatter_(2, column[..., None], draw[..., None])
        mask = None
        if self._known is not None:
            keys = self._keys(negatives)  # [B, K]
            pos = torch.searchsorted(self._known, keys).clamp_(max=max(len(self._known) - 1, 0))
            mask = (
                self._known[pos] != keys
                if len(self._known)
                else torch.ones_like(keys, dtype=torch.bool)
            )
        return NegativeBatch(negatives=negatives, corrupt_head=corrupt_head, mask=mask)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_negatives={self.num_negatives}, filtered={self.filtered})"
        )


class UniformNegativeSampler(NegativeSampler):
    """Replace the head or the tail with probability 1/2 each (Bordes et al., 2013)."""


class BernoulliNegativeSampler(NegativeSampler):
    r"""Replace the head with probability :math:`\frac{tph_r}{tph_r + hpt_r}` (Wang et al., 2014,
    `TransH <https://ojs.aaai.org/index.php/AAAI/article/view/8870>`_).

    ``tph_r`` is the mean number of distinct tails per distinct head of relation ``r``, ``hpt_r`` the mean
    number of heads per tail, both from the training triples; for 1-to-N relations the head (the "1" side)
    is corrupted more often, which makes false negatives rarer.
    """

    def __init__(
        self, triples: Tensor, num_entities: int, *, num_negatives: int = 1, filtered: bool = False
    ) -> None:
        super().__init__(triples, num_entities, num_negatives=num_negatives, filtered=filtered)
        triples = torch.unique(triples.long(), dim=0)
        h, r, t = triples.unbind(1)
        num_rel = max(self.num_relations, 1)
        per_relation = torch.bincount(r, minlength=num_rel).double()  # triples per relation
        heads = torch.bincount(
            torch.unique(r * self.num_entities + h) // self.num_entities, minlength=num_rel
        )
        tails = torch.bincount(
            torch.unique(r * self.num_entities + t) // self.num_entities, minlength=num_rel
        )
        tph = per_relation / heads.clamp_min(1)  # [R] tails per head
        hpt = per_relation / tails.clamp_min(1)  # [R] heads per tail
        prob = tph / (tph + hpt).clamp_min(1e-12)
        self.head_probs = torch.where(
            per_relation > 0, prob, torch.full_like(prob, 0.5)
        ).float()  # [R]

    def head_probability(self, relations: Tensor) -> Tensor:
        return self.head_probs[relations]


sampler_resolver: DottedPathResolver[NegativeSampler] = DottedPathResolver(
    [UniformNegativeSampler, BernoulliNegativeSampler],
    base=NegativeSampler,
    default=UniformNegativeSampler,
    suffix="NegativeSampler",
)
"""Samplers by name: ``uniform``, ``bernoulli`` (register a :class:`NegativeSampler` subclass to add one)."""
