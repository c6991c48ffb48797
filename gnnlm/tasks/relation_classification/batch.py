"""Batches of marked sentences: the fused LM's text + subgraph batch and where the head reads.

:class:`RelationCollator` makes the :class:`~gnnlm.fusion.TextGraphBatch` with
:class:`~gnnlm.fusion.TextGraphCollator` (tokens, the WordNet subgraph around each sentence's linked
synsets, mention tokens pointing at their synset's node) and adds, per sentence, the token positions of
the two start markers and the batched node ids of the two linked synsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gnnlm.fusion import TextGraphBatch, TextGraphCollator
from gnnlm.tasks.relation_classification.data import RelationItem


@dataclass
class RelationBatch:
    """Marked sentences.

    Attributes:
        inputs: tokens ``[batch, seq]``, subgraphs and token -> node links.
        markers: ``[batch, 2]`` token position of the e1 and the e2 start marker (0 where the marker
            was truncated away).
        linked: ``[batch, 2]`` batched node id of the e1 and the e2 synset, ``-1`` where not linked.
        labels: ``[batch]`` label ids, when known.
        truncated: start markers cut away by ``max_length`` in this batch.
    """

    inputs: TextGraphBatch
    markers: Tensor
    linked: Tensor
    labels: Tensor | None = None
    truncated: int = 0

    def to(self, device: torch.device | str) -> RelationBatch:
        labels = self.labels.to(device) if self.labels is not None else None
        return RelationBatch(
            self.inputs.to(device), self.markers.to(device), self.linked.to(device), labels,
            self.truncated,
        )  # fmt: skip


class RelationCollator:
    """``[RelationItem, ...]`` -> :class:`RelationBatch`.

    Args:
        tokenizer: a fast HF tokenizer (offsets find the marker tokens).
        sampler: the WordNet subgraph sampler.
        max_length: tokens per sentence.
        max_positions: the LM's positions (checked against ``max_length``).
    """

    def __init__(
        self, tokenizer, sampler, *, max_length: int = 128, max_positions: int | None = None
    ) -> None:
        self.inner = TextGraphCollator(
            tokenizer, sampler, max_length=max_length, max_positions=max_positions
        )
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, items: Sequence[RelationItem]) -> RelationBatch:
        if not items:
            raise ValueError("cannot collate an empty list of sentences")
        inputs = self.inner([item.example for item in items])
        # the same call as the inner collator's, for the offsets it does not keep
        offsets = self.tokenizer(
            [item.example.text for item in items], padding=True, truncation=True,
            max_length=self.max_length, return_offsets_mapping=True, return_tensors="pt",
        )["offset_mapping"]  # fmt: skip  # [batch, seq, 2]
        start, end = offsets[..., 0], offsets[..., 1]  # [batch, seq]
        markers = torch.zeros(len(items), 2, dtype=torch.long)
        linked = torch.full((len(items), 2), -1, dtype=torch.long)
        truncated = 0
        for i, item in enumerate(items):
            for k, char in enumerate(item.starts):
                hit = ((start[i] == char) & (end[i] > start[i])).nonzero()
                if len(hit):
                    markers[i, k] = hit[0, 0]
                else:
                    truncated += 1
            local = {entity: n for n, entity in enumerate(item.example.seeds)}  # seeds first
            for k, link in enumerate(item.links):
                if link.entity is not None:
                    linked[i, k] = int(inputs.graph.ptr[i]) + local[link.entity]
        return RelationBatch(inputs, markers, linked, inputs.labels, truncated)
