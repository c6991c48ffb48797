"""BERT's masked-language-modelling corruption, drawn from a given generator.

Each maskable token (not special, not padding) is selected with probability ``probability``; of the
selected, ``mask_fraction`` become ``[MASK]``, ``random_fraction`` a uniformly random token and the rest
stay as they are (Devlin et al., 2019: 15%, 80/10/10). Every draw comes from the caller's
``torch.Generator`` (the engine's run generator in training), so a resumed run masks exactly as the
uninterrupted one did.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

#: the label of a token that is not predicted (``cross_entropy``'s default ``ignore_index``).
IGNORE = -100


def maskable_tokens(
    input_ids: Tensor, attention_mask: Tensor, special_ids: Iterable[int]
) -> Tensor:
    """``[batch, seq]`` bool: real tokens that are not special tokens (``[CLS]``, ``[SEP]``, ...)."""
    special = torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype)
    return attention_mask.bool() & ~torch.isin(input_ids, special)


def mask_tokens(
    input_ids: Tensor,
    maskable: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    probability: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Corrupt ``input_ids`` for masked language modelling.

    Args:
        input_ids: ``[batch, seq]`` token ids (CPU, like ``generator``).
        maskable: ``[batch, seq]`` bool, the tokens that may be selected (:func:`maskable_tokens`).
        mask_token_id: the ``[MASK]`` id.
        vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        generator: the source of every random draw.
        probability: selection rate of maskable tokens.
        mask_fraction: share of the selected replaced by ``[MASK]``.
        random_fraction: share of the selected replaced by a random token.

    Returns:
        ``(inputs, labels)``, both ``[batch, seq]``: the corrupted ids, and the original id at selected
        positions with :data:`IGNORE` everywhere else.
    """
    shape = input_ids.shape
    # three draws of the full shape, always in this order: the stream does not depend on the data
    select = torch.rand(shape, generator=generator) < probability
    action = torch.rand(shape, generator=generator)
    random_ids = torch.randint(vocab_size, shape, generator=generator, dtype=input_ids.dtype)
    selected = select & maskable
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE))
    to_mask = selected & (action < mask_fraction)
    to_random = selected & (action >= mask_fraction) & (action < mask_fraction + random_fraction)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


__all__ = ["IGNORE", "mask_tokens", "maskable_tokens"]
