"""Unseen entities: which evaluation triples touch an entity absent from training, and an inductive split.

A text model ranks an entity that never occurs in training like any other (its key is its text), so
nothing is dropped; these triples are counted and reported on their own. On WN18RR, 210 test triples
(and 210 validation triples) have an entity that is not in the training triples: 209 distinct
entities in test (the ConvE README counts 212 unseen entities, over valid and test together by
another count).

:func:`inductive_split` builds a fully inductive evaluation from the transductive splits: a seeded
share of the entities is held out, training keeps only the triples free of them, and validation and
test hold the triples that touch exactly one of them (the other entity is known), split evenly at
random; the old validation and test triples free of held-out entities are left out (counted).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnnlm.data import KnowledgeGraph


def seen_entities(kg: KnowledgeGraph) -> Tensor:
    """``[N]`` bool: the entity occurs in a training triple."""
    seen = torch.zeros(kg.num_entities, dtype=torch.bool)
    seen[kg.train[:, [0, 2]].reshape(-1)] = True
    return seen


def unseen_mask(triples: Tensor, seen: Tensor) -> Tensor:
    """``[n]`` bool: the head or the tail of ``triples`` ``[n, 3]`` is not in ``seen`` ``[N]``."""
    return ~(seen[triples[:, 0]] & seen[triples[:, 2]])


def inductive_split(kg: KnowledgeGraph, fraction: float, seed: int = 0) -> KnowledgeGraph:
    """``kg`` with the splits rebuilt so that a share of the entities never occurs in training.

    Entities are drawn (``torch.Generator`` seeded by ``seed``) among those of any triple, ``round(
    fraction * count)`` of them. New train: the old training triples with neither entity held out.
    New valid / test: all triples (train, valid, test) with exactly one held-out entity, shuffled
    with the same generator and split in half. Triples between two held-out entities and old valid /
    test triples free of them are left out (counted in ``extra["inductive"]``). The filter of the
    new graph is its own three splits.

    Raises:
        ValueError: ``fraction`` outside ``(0, 1)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    everything = torch.cat([kg.splits[s] for s in ("train", "valid", "test")])
    present = torch.unique(everything[:, [0, 2]].reshape(-1))
    count = max(1, round(fraction * len(present)))
    held = torch.zeros(kg.num_entities, dtype=torch.bool)
    held[present[torch.randperm(len(present), generator=generator)[:count]]] = True
    train = kg.train[~(held[kg.train[:, 0]] | held[kg.train[:, 2]])]
    touching = held[everything[:, 0]].int() + held[everything[:, 2]].int()  # [n] 0, 1 or 2
    one = torch.unique(everything[touching == 1], dim=0)
    one = one[torch.randperm(len(one), generator=generator)]
    half = len(one) // 2
    extra = dict(kg.extra)
    extra["inductive"] = {
        "fraction": fraction,
        "seed": seed,
        "held_out_entities": int(count),
        "train_triples_removed": int(len(kg.train) - len(train)),
        "triples_between_held_out_entities": int(
            len(torch.unique(everything[touching == 2], dim=0))
        ),
        # valid / test triples free of held-out entities are in no split of the new graph
        "evaluation_triples_left_out": int(
            len(torch.unique(everything[touching == 0], dim=0)) - len(torch.unique(train, dim=0))
        ),
    }
    return KnowledgeGraph(
        kg.entities, kg.relations, {"train": train, "valid": one[:half], "test": one[half:]},
        name=f"{kg.name}-inductive", node_types=kg.node_types, entity_type=kg.entity_type,
        entity_text=kg.entity_text, relation_text=kg.relation_text, extra=extra,
    )  # fmt: skip
