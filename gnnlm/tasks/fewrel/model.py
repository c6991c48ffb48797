r"""A prototypical network over a fused LM's entity-marker states.

Prototypical networks (Snell et al., 2017, https://arxiv.org/abs/1703.05175): an instance is embedded as
:math:`f(x) = [h_{@}; h_{\#}]`, the encoder's final states at the head and tail start markers
(:mod:`.markers`); class :math:`k`'s prototype is the mean embedding of its support instances, and a query
is classified by a softmax over negative squared Euclidean distances:

.. math::
    c_k = \frac{1}{|S_k|} \sum_{x \in S_k} f(x), \qquad
    p(y = k \mid q) = \frac{\exp(-\lVert f(q) - c_k \rVert^2)}{\sum_{k'} \exp(-\lVert f(q) - c_{k'} \rVert^2)}

The model has no classifier weights, so it classifies relations it never saw from their support sets. A
training batch of any instances is an episode of the relations it holds (:func:`leave_one_out_logits`):
each instance is a query against prototypes of the other instances, its own class's prototype without it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnlm.fusion import FusedLM
from gnnlm.tasks.fewrel.markers import FewRelBatch


class ProtoEncoder(nn.Module):
    """A fused LM that embeds a marked sentence as its two start markers' final states.

    Args:
        fused: the fused LM (:func:`~gnnlm.tasks.fused.build_fused_lm`).
        temperature: the embedding is divided by ``sqrt(temperature)``, so squared distances (the
            logits) are divided by ``temperature``. 1 is Snell et al.'s; a larger value keeps the
            softmax of an encoder whose states are not yet discriminative (a random LM) out of
            saturation, where shrinking every embedding to one point is the easiest way down.
    """

    def __init__(self, fused: FusedLM, *, temperature: float = 1.0) -> None:
        super().__init__()
        self.fused = fused
        self.temperature = float(temperature)

    @property
    def out_channels(self) -> int:
        return 2 * self.fused.lm.hidden_size

    def forward(self, batch: FewRelBatch) -> Tensor:
        """``[batch, 2 * hidden]`` embeddings ``[h_head_marker; h_tail_marker]``."""
        hidden = self.fused(batch.inputs).last_hidden_state  # [batch, seq, hidden]
        rows = torch.arange(hidden.size(0), device=hidden.device)
        head = hidden[rows, batch.head_position]  # [batch, hidden]
        tail = hidden[rows, batch.tail_position]  # [batch, hidden]
        return torch.cat([head, tail], -1) / self.temperature**0.5

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, temperature={self.temperature}"


def prototypes(support: Tensor, labels: Tensor, ways: int) -> Tensor:
    """``[ways, d]`` class means of ``support: [n, d]`` with ``labels: [n]`` in ``0..ways-1``.

    Raises:
        ValueError: a class without support instances.
    """
    counts = torch.bincount(labels, minlength=ways)  # [ways]
    if bool((counts == 0).any()):
        raise ValueError(
            f"every class needs a support instance; counts per class {counts.tolist()}"
        )
    sums = support.new_zeros(ways, support.size(-1)).index_add(0, labels, support)  # [ways, d]
    return sums / counts.unsqueeze(-1).to(support.dtype)


def prototypical_logits(query: Tensor, protos: Tensor) -> Tensor:
    """``[q, ways]`` negative squared Euclidean distances of ``query: [q, d]`` to ``protos: [ways, d]``."""
    diff = query.float().unsqueeze(1) - protos.float().unsqueeze(0)  # [q, ways, d]
    return -diff.pow(2).sum(-1)


def episode_logits(support: Tensor, support_labels: Tensor, query: Tensor, ways: int) -> Tensor:
    """``[q, ways]`` logits of an episode's queries against its support prototypes."""
    return prototypical_logits(query, prototypes(support, support_labels, ways))


def leave_one_out_logits(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A set of instances as an episode: each instance against the prototypes of the others.

    The classes are the distinct ``labels``; instance ``i`` is scored against every class mean, its own
    class's taken without it: :math:`(S_{y_i} - f(x_i)) / (n_{y_i} - 1)`. An instance alone in its class
    is no query (its class has no prototype without it), but its class still competes in the softmax
    of the others.

    Args:
        embeddings: ``[n, d]``.
        labels: ``[n]`` any integer class ids.

    Returns:
        ``(logits [m, classes], targets [m], queries [m])``: the ``m`` instances whose class has another
        member, their class (index into the distinct labels, sorted) and their row in ``embeddings``.

    Raises:
        ValueError: no class has two instances, or there is only one class.
    """
    classes, target = torch.unique(labels, return_inverse=True)  # [c], [n]
    c = len(classes)
    counts = torch.bincount(target, minlength=c)  # [c]
    queries = (counts[target] >= 2).nonzero().squeeze(-1)  # [m]
    if c < 2 or len(queries) == 0:
        raise ValueError(
            f"a prototypical loss needs at least two classes and a class with two instances; got "
            f"{c} classes with {counts.tolist()} instances (meta-learning: shots and queries >= 2)"
        )
    x = embeddings.float()
    sums = x.new_zeros(c, x.size(-1)).index_add(0, target, x)  # [c, d]
    logits = prototypical_logits(x[queries], sums / counts.unsqueeze(-1))  # [m, c]
    own = target[queries]  # [m]
    held_out = (sums[own] - x[queries]) / (counts[own] - 1).unsqueeze(-1)  # [m, d]
    own_logit = -(x[queries] - held_out).pow(2).sum(-1)  # [m]
    rows = torch.arange(len(queries), device=x.device)
    logits = logits.index_put((rows, own), own_logit)
    return logits, own, queries


__all__ = [
    "ProtoEncoder",
    "episode_logits",
    "leave_one_out_logits",
    "prototypes",
    "prototypical_logits",
]
