"""Helpers for ``torch.nn.Module``s that every stage uses (imports torch: keep it out of light paths)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M")


@contextlib.contextmanager
def eval_mode(module: M) -> Iterator[M]:
    """Run a block with ``module`` in eval mode and without autograd, then restore its modes.

    Every submodule gets back its own ``training`` flag, not the parent's: ``module.train(flag)`` alone
    would also switch a submodule that was deliberately left in eval mode (a frozen LM, a BatchNorm
    kept on running statistics) back to training. The modes are restored even when the block raises.

    >>> with eval_mode(model) as m:  # doctest: +SKIP
    ...     scores = m(batch)

    Args:
        module: an ``nn.Module`` (or any object with ``training`` and ``train(bool)``, e.g. a
            :class:`~gnnlm.eval.rank_based.RankableModel`).

    Yields:
        ``module`` itself.
    """
    flags = _training_flags(module)
    module.train(False)
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(flags[0][1])  # through train(): a subclass may do more there than set flags
        for sub, flag in flags[1:]:
            sub.training = flag


def _training_flags(module: Any) -> list[tuple[Any, bool]]:
    """``(submodule, its training flag)`` for ``module`` (first) and everything under it."""
    if isinstance(module, nn.Module):
        return [(sub, sub.training) for sub in module.modules()]
    return [(module, module.training)]
