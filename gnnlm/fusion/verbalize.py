"""Textualised knowledge: a subgraph's triples written into the prompt, within a token budget.

The retrieval-augmented baseline every graph-injection method is compared against: the example's
subgraph (the same :class:`~gnnlm.data.subgraph.SubgraphSampler` output the GNN reads) is verbalised
as ``"head relation tail."`` sentences, the triples touching the linked entities first, and as many
*whole* triples as fit in ``budget`` tokens are kept (a triple is never cut mid-way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def subgraph_triples(graph, *, inverse_offset: int | None = None) -> Tensor:
    """``[num_triples, 3]`` (head, relation, tail) global ids of a sampled subgraph, the triples that
    touch a linked entity (a seed) first, then the rest, each group in the sampler's edge order.

    Args:
        graph: one :meth:`SubgraphSampler.sample` output (``n_id``, local ``edge_index``,
            ``edge_type``, ``num_seeds``).
        inverse_offset: edge types ``>= inverse_offset`` are inverse edges and are skipped (their
            forward edge carries the same fact); ``None`` keeps every edge.
    """
    edge_type = graph.edge_type
    keep = torch.ones_like(edge_type, dtype=torch.bool)
    if inverse_offset is not None:
        keep = edge_type < inverse_offset
    src, dst = graph.edge_index[0][keep], graph.edge_index[1][keep]  # [e] local ids
    rel = edge_type[keep]
    seeds = int(graph.num_seeds)
    near = (src < seeds) | (dst < seeds)  # [e]
    order = torch.cat([near.nonzero().view(-1), (~near).nonzero().view(-1)])
    n_id = graph.n_id
    return torch.stack([n_id[src[order]], rel[order], n_id[dst[order]]], 1)  # [e, 3]


def verbalize_triples(
    triples: Sequence[tuple[str, str, str]],
    count_tokens: Callable[[str], int],
    budget: int,
    *,
    separator: str = " ",
) -> tuple[str, int]:
    """Write triples as ``"head relation tail."`` sentences until the next would pass ``budget``.

    Args:
        triples: ``(head, relation, tail)`` names, in order of preference.
        count_tokens: the number of tokens of a text (e.g. ``len(tokenizer(t, add_special_tokens=False)
            ["input_ids"])``); the *joined* text is counted, so merges across sentence boundaries are
            accounted for.
        budget: the most tokens the text may take (0: no triples).
        separator: between sentences.

    Returns:
        ``(text, kept)``: the verbalised prefix and how many triples it holds (the first ``kept``).
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    text, kept = "", 0
    for head, relation, tail in triples:
        sentence = f"{head} {relation.replace('_', ' ')} {tail}."
        candidate = sentence if not text else f"{text}{separator}{sentence}"
        if count_tokens(candidate) > budget:
            break  # whole triples only: stop at the first that does not fit
        text, kept = candidate, kept + 1
    return text, kept


__all__ = ["subgraph_triples", "verbalize_triples"]
