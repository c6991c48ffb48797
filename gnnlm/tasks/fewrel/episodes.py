"""N-way K-shot episodes over relations.

An episode draws ``ways`` distinct relations, then for each of them ``shots`` support and ``queries``
query instances, all distinct (so support and query are disjoint). Class ``k`` of the episode is its
``k``-th drawn relation; support and query are ordered class by class. Every draw comes from the given
generator, so a seed gives the same episode; :func:`fixed_episodes` draws the evaluation set of a setting
once from its own seed, so every arm and every training seed is judged on the same episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gnnlm.config import ConfigError


@dataclass
class FewShotEpisode:
    """One N-way K-shot episode: indices into a split's instances.

    Attributes:
        support: ``[ways * shots]`` instance indices, class by class.
        query: ``[ways * queries]`` instance indices, class by class.
        support_labels: ``[ways * shots]`` class of each support instance (``0..ways-1``).
        query_labels: ``[ways * queries]`` class of each query instance.
        relations: the relation of each class, in class order.
    """

    support: Tensor
    query: Tensor
    support_labels: Tensor
    query_labels: Tensor
    relations: list[str]


def group_by_relation(relations: Sequence[str]) -> dict[str, list[int]]:
    """``{relation: indices}`` of a split whose instance ``i`` has relation ``relations[i]``, relations
    in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, relation in enumerate(relations):
        groups.setdefault(relation, []).append(i)
    return groups


def sample_episode(
    groups: Mapping[str, Sequence[int]],
    generator: torch.Generator,
    *,
    ways: int,
    shots: int,
    queries: int,
    at: str = "",
) -> FewShotEpisode:
    """A ``ways``-way ``shots``-shot episode with ``queries`` queries per class.

    Args:
        groups: relation -> its instance indices (:func:`group_by_relation`).
        generator: every draw comes from it: the relations, then each class's instances.
        ways / shots / queries: the setting.
        at: ``"file.yaml:12: "`` prefix of error messages.

    Raises:
        ConfigError: fewer than ``ways`` relations with ``shots + queries`` instances each.
    """
    need = shots + queries
    eligible = [r for r, members in groups.items() if len(members) >= need]
    if len(eligible) < ways:
        raise ConfigError(
            f"{at}a {ways}-way episode with shots + queries = {need} instances per relation needs "
            f"{ways} relations with that many instances, but only {len(eligible)} of the split's "
            f"{len(groups)} relations have them; lower ways, shots or queries, or add relations"
        )
    chosen = torch.randperm(len(eligible), generator=generator)[:ways].tolist()
    support, query, relations = [], [], []
    for k in chosen:
        members = torch.as_tensor(list(groups[eligible[k]]), dtype=torch.long)
        picked = members[torch.randperm(len(members), generator=generator)[:need]]
        support.append(picked[:shots])
        query.append(picked[shots:])
        relations.append(eligible[k])
    classes = torch.arange(ways)
    return FewShotEpisode(
        support=torch.cat(support),
        query=torch.cat(query),
        support_labels=classes.repeat_interleave(shots),
        query_labels=classes.repeat_interleave(queries),
        relations=relations,
    )


def fixed_episodes(
    groups: Mapping[str, Sequence[int]],
    *,
    ways: int,
    shots: int,
    queries: int,
    count: int,
    seed: int,
    at: str = "",
) -> list[FewShotEpisode]:
    """``count`` episodes of one setting drawn from a generator seeded with ``seed`` alone."""
    generator = torch.Generator().manual_seed(seed)
    return [
        sample_episode(groups, generator, ways=ways, shots=shots, queries=queries, at=at)
        for _ in range(count)
    ]


__all__ = ["FewShotEpisode", "fixed_episodes", "group_by_relation", "sample_episode"]
