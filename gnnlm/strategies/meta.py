"""First-order meta-learning over episodes (``finetuning.meta``): Reptile and first-order MAML.

An episode is a small task of the training data: a support set to adapt on and a query set to judge the
adaptation. For every episode of a meta-batch, starting from the current weights ``theta``::

    theta' = theta - inner_lr * grad L_support      (inner_steps plain SGD steps, all on the support set)
    fomaml:  meta-gradient = grad L_query(theta')    (Finn et al., 2017, first order: no second derivatives)
    reptile: meta-gradient = theta - theta'          (Nichol et al., 2018: an outer SGD step of lr eps gives
                                                      theta + eps * (theta' - theta))

The mean over the meta-batch goes into the parameters' ``.grad`` for the engine's optimizer (the outer
step). Reptile's inner loop trains on the support set only (the paper's batches of one task; the query
set is evaluated for the logs), so both methods see the same inner trajectory of an episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.strategies.config import MetaConfig
from gnnlm.train.task import StepOutput


@dataclass
class Episode:
    """One episode: indices of the task's training examples (``Task.training_step``'s ``indices``).

    Attributes:
        support: ``[n_support]`` examples the inner loop trains on.
        query: ``[n_query]`` examples the adapted weights are judged on (disjoint from ``support``).
    """

    support: Tensor
    query: Tensor


def _loss(out: Tensor | StepOutput) -> Tensor:
    return out.loss if isinstance(out, StepOutput) else out


def _gradients(loss: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    """``d loss / d p`` per parameter (zeros for one the loss does not reach); ``.grad`` untouched."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def meta_gradients(
    model: nn.Module,
    params: list[nn.Parameter],
    episodes: list[Episode],
    loss_fn: Callable[[Tensor], Tensor | StepOutput],
    settings: MetaConfig,
) -> dict[str, float]:
    """Write the mean meta-gradient of ``episodes`` into ``p.grad`` of every parameter in ``params``.

    Args:
        model: the model ``params`` belong to; its buffers (e.g. batch-norm statistics the inner
            steps update) are restored with the weights after each episode.
        params: the parameters adapted in the inner loop; their ``.grad`` is overwritten by the
            meta-gradient (a parameter the losses do not reach gets zeros). Those that do not require
            grad are left alone, ``.grad`` included (an optimizer's weight decay must not move them).
        episodes: the meta-batch.
        loss_fn: ``indices [n] -> loss`` (a scalar, or a :class:`StepOutput`), e.g. the task's
            ``training_step`` on those training examples.
        settings: ``finetuning.meta`` (``method``, ``inner_steps``, ``inner_lr``).

    Returns:
        ``{"meta_query_loss": mean query loss at theta', "meta_support_loss": mean support loss at
        theta (the first inner step's)}``.

    Raises:
        ConfigError: ``settings.method`` is not set, or ``episodes`` is empty.
    """
    if settings.method not in ("reptile", "fomaml"):
        raise ConfigError(
            f"finetuning.meta.method must be reptile or fomaml, got {settings.method!r}"
        )
    if not episodes:
        raise ConfigError(
            "meta_gradients needs at least one episode (finetuning.meta.meta_batch_size)"
        )
    trained = [p for p in params if p.requires_grad]
    theta = [p.detach().clone() for p in trained]
    buffers = [b.detach().clone() for b in model.buffers()]
    meta = [torch.zeros_like(p) for p in trained]
    support_losses, query_losses = [], []
    try:
        for episode in episodes:
            for step in range(settings.inner_steps):
                loss = _loss(loss_fn(episode.support))
                if step == 0:
                    support_losses.append(float(loss.detach()))
                grads = _gradients(loss, trained)
                with torch.no_grad():
                    for p, g in zip(trained, grads):
                        p.sub_(settings.inner_lr * g)
            if settings.method == "fomaml":
                query = _loss(loss_fn(episode.query))
                grads = _gradients(query, trained)
            else:
                with torch.no_grad():  # for the logs only
                    query = _loss(loss_fn(episode.query))
                grads = [t - p.detach() for t, p in zip(theta, trained)]
            query_losses.append(float(query.detach()))
            for m, g in zip(meta, grads):
                m.add_(g)
            _restore(trained, theta, model, buffers)
    finally:  # also when a loss fails: the weights are theta again
        _restore(trained, theta, model, buffers)
    for p, m in zip(trained, meta):
        p.grad = m / len(episodes)
    return {
        "meta_query_loss": sum(query_losses) / len(query_losses),
        "meta_support_loss": sum(support_losses) / len(support_losses),
    }


def _restore(
    params: list[nn.Parameter], theta: list[Tensor], model: nn.Module, buffers: list[Tensor]
) -> None:
    with torch.no_grad():
        for p, t in zip(params, theta):
            p.copy_(t)
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)


__all__ = ["Episode", "meta_gradients"]
