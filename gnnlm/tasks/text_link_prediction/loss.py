r"""SimKGC's contrastive loss: InfoNCE over in-batch, pre-batch and self negatives.

For a batch of queries :math:`q_i` (head text + relation text) and keys :math:`k_j` (entity text),
all L2-normalised, with :math:`\phi = 1 / \tau` the (learnable) inverse temperature and :math:`\gamma`
the additive margin (`Wang et al. 2022, "SimKGC" <https://arxiv.org/abs/2203.02167>`_):

.. math::
    \ell_{ij} = \phi\,(q_i^\top k_j - \gamma\,[i = j]), \qquad
    \mathcal{L} = -\log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}} + \sum_p e^{w \phi q_i^\top p}
    \ [+\ e^{\phi q_i^\top h_i}]}

where :math:`p` runs over the keys of the previous ``pre_batch`` batches (a queue,
:class:`PreBatchQueue`, their logits scaled by ``w`` as in SimKGC) and :math:`h_i` is the key of the query's own
head (the self-negative). The loss adds the same cross-entropy over the transposed in-batch block
(each key choosing its query), as SimKGC does. The margin is subtracted from the positives only.

False negatives are masked (logit ``-inf``): an in-batch key whose entity is a known true answer of
query ``i`` (the positive's own entity included, e.g. a duplicate tail in the batch), a pre-batch
key of the positive's own entity or of any known answer, and the self-negative where the head is
itself a known answer. "Known" means a training triple (:class:`KnownTriples`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class KnownTriples:
    """Membership test for ``(h, r, t)`` among the training triples and their inverses.

    Args:
        triples: ``[n, 3]`` training triples.
        num_entities: ``N``.
        num_relations: ``R`` of the KG; the inverse of ``r`` is ``r + R`` (``(t, r + R, h)`` is added).
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int) -> None:
        self.num_entities = num_entities
        self.num_relations = num_relations
        h, r, t = triples.long().unbind(1)
        codes = torch.cat([self._code(h, r, t), self._code(t, r + num_relations, h)])
        self.codes = torch.unique(codes)  # sorted

    def _code(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (h * (2 * self.num_relations) + r) * self.num_entities + t

    def contains(self, heads: Tensor, relations: Tensor, entities: Tensor) -> Tensor:
        """``[B, M]`` bool: ``(heads[i], relations[i], entities[i, m])`` is known.

        Args:
            heads, relations: ``[B]``.
            entities: ``[B, M]`` (or ``[M]``, broadcast over the batch).
        """
        entities = entities.expand(len(heads), -1) if entities.ndim == 1 else entities
        codes = self._code(heads[:, None], relations[:, None], entities)  # [B, M]
        if len(self.codes) == 0:
            return torch.zeros_like(codes, dtype=torch.bool)
        pos = torch.searchsorted(self.codes, codes).clamp_max(len(self.codes) - 1)
        return self.codes[pos] == codes


class PreBatchQueue:
    """The keys (and their entity ids) of the last ``size`` batches, detached: extra negatives.

    Args:
        size: number of batches kept (0: the queue stays empty).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: list[Tensor] = []
        self._entities: list[Tensor] = []

    def __len__(self) -> int:
        return sum(len(e) for e in self._entities)

    def get(self) -> tuple[Tensor, Tensor] | None:
        """``(keys [P, d], entities [P])`` or ``None`` when empty."""
        if not self._keys:
            return None
        return torch.cat(self._keys), torch.cat(self._entities)

    def push(self, keys: Tensor, entities: Tensor) -> None:
        """Add a batch's ``keys [B, d]`` (detached) with their ``entities [B]``; the oldest batch
        leaves when more than ``size`` are held."""
        if self.size == 0:
            return
        self._keys.append(keys.detach())
        self._entities.append(entities.detach())
        if len(self._keys) > self.size:
            self._keys.pop(0)
            self._entities.pop(0)

    def clear(self) -> None:
        self._keys.clear()
        self._entities.clear()


def pre_batch_mask(
    heads: Tensor,
    relations: Tensor,
    tails: Tensor,
    queue_entities: Tensor,
    known: KnownTriples | None,
) -> Tensor:
    """``[B, P]`` bool, True where queue entry ``p`` is a valid negative of query ``i``: never the
    positive's own entity (its key, however old), nor a known answer of ``(h_i, r_i)``."""
    valid = queue_entities[None, :] != tails[:, None]  # [B, P]
    if known is not None:
        valid &= ~known.contains(heads, relations, queue_entities)
    return valid


def in_batch_mask(
    heads: Tensor, relations: Tensor, tails: Tensor, known: KnownTriples | None
) -> Tensor:
    """``[B, B]`` bool, True where key ``j`` may be a negative of query ``i`` (the diagonal, the
    positive, is True): False where ``t_j`` equals ``t_i`` or is a known answer of ``(h_i, r_i)``."""
    valid = tails[None, :] != tails[:, None]  # [B, B]
    if known is not None:
        valid &= ~known.contains(heads, relations, tails)
    valid.fill_diagonal_(True)
    return valid


def contrastive_logits(
    query: Tensor,
    keys: Tensor,
    inverse_temperature: Tensor | float,
    *,
    margin: float = 0.0,
    valid: Tensor | None = None,
    pre_keys: Tensor | None = None,
    pre_valid: Tensor | None = None,
    pre_weight: float = 1.0,
    self_keys: Tensor | None = None,
    self_valid: Tensor | None = None,
) -> Tensor:
    """The InfoNCE logits ``[B, B + P (+ 1)]``; column ``i`` of row ``i`` is the positive.

    Args:
        query: ``[B, d]`` normalised query vectors.
        keys: ``[B, d]`` normalised keys; ``keys[i]`` is the positive of ``query[i]``.
        inverse_temperature: ``1 / tau`` (a scalar tensor keeps it learnable).
        margin: subtracted from the positive cosines (the diagonal) only.
        valid: ``[B, B]`` bool, False entries are masked (see :func:`in_batch_mask`).
        pre_keys: ``[P, d]`` queued keys, with ``pre_valid`` ``[B, P]`` and weight ``pre_weight``.
        self_keys: ``[B, d]`` the key of each query's head, with ``self_valid`` ``[B]``.
    """
    batch = len(query)
    cos = query @ keys.t()  # [B, B]
    cos = cos - margin * torch.eye(batch, dtype=cos.dtype, device=cos.device)
    logits = cos * inverse_temperature
    if valid is not None:
        logits = logits.masked_fill(~valid, float("-inf"))
    columns = [logits]
    if pre_keys is not None and len(pre_keys):
        pre = (query @ pre_keys.t()) * (inverse_temperature * pre_weight)  # [B, P]
        if pre_valid is not None:
            pre = pre.masked_fill(~pre_valid, float("-inf"))
        columns.append(pre)
    if self_keys is not None:
        own = (query * self_keys).sum(-1, keepdim=True) * inverse_temperature  # [B, 1]
        if self_valid is not None:
            own = own.masked_fill(~self_valid[:, None], float("-inf"))
        columns.append(own)
    return torch.cat(columns, 1)


def info_nce(logits: Tensor) -> Tensor:
    """The loss of :func:`contrastive_logits`' output ``[B, B + extra]``: cross-entropy of the
    diagonal, plus that of the transposed in-batch block (each key picks its query)."""
    batch = len(logits)
    labels = torch.arange(batch, device=logits.device)
    loss = F.cross_entropy(logits, labels)
    return loss + F.cross_entropy(logits[:, :batch].t(), labels)
