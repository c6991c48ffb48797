"""Batches of multiple-choice questions: every (question, choice) pair with its own subgraph.

A question with ``C`` choices becomes ``C`` pairs, each the text pair ``question [SEP] choice`` (the
tokenizer's pair encoding: segment ids tell the question from the choice) and the pair's subgraph
(:class:`~gnnlm.tasks.multiple_choice.extraction.BridgeExtractor`). The pairs of a batch are flattened in
question order into one :class:`~gnnlm.fusion.TextGraphBatch`, so the fused LM runs once per batch;
``num_choices`` regroups their scores per question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from gnnlm.fusion import TextGraphBatch


@dataclass
class ChoicePair:
    """One (question, choice) pair.

    Attributes:
        question: the question text (segment A).
        choice: the choice text (segment B).
        graph: the pair's subgraph (``n_id``, ``edge_index``, ``edge_type``, ``num_seeds``,
            ``node_type``, ``relevance``; see ``BridgeExtractor.extract``).
        mentions: ``(segment, char_start, char_end, local node)``: the grounded spans whose concept is
            in ``graph`` (segment 0: the question, 1: the choice); their tokens point at that node.
    """

    question: str
    choice: str
    graph: Data
    mentions: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass
class MultipleChoiceBatch:
    """Questions with all their choices.

    Attributes:
        pairs: every pair of the batch, flattened in question order (``[num_pairs, seq]`` text and
            the batched subgraphs; graph attributes ``node_type`` / ``relevance``: ``[num_nodes]``).
        num_choices: ``[batch]`` pairs per question.
        labels: ``[batch]`` index of each question's correct choice, when known.
    """

    pairs: TextGraphBatch
    num_choices: Tensor
    labels: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.num_choices.numel())

    def to(self, device: torch.device | str) -> MultipleChoiceBatch:
        labels = self.labels.to(device) if self.labels is not None else None
        return MultipleChoiceBatch(self.pairs.to(device), self.num_choices.to(device), labels)


class MultipleChoiceCollator:
    """``[(pairs of a question, label or None), ...]`` -> :class:`MultipleChoiceBatch`.

    Args:
        tokenizer: a fast HF tokenizer (offsets and segment ids map mentions to tokens).
        max_length: tokens per pair; the question is truncated first, the choice is kept.
    """

    def __init__(self, tokenizer, *, max_length: int = 64) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer (offsets needed)")
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(
        self, questions: Sequence[tuple[Sequence[ChoicePair], int | None]]
    ) -> MultipleChoiceBatch:
        if not questions:
            raise ValueError("cannot collate an empty list of questions")
        pairs = [pair for choices, _ in questions for pair in choices]
        encoded = self.tokenizer(
            [p.question for p in pairs], [p.choice for p in pairs], padding=True,
            truncation="only_first", max_length=self.max_length, return_offsets_mapping=True,
            return_tensors="pt",
        )  # fmt: skip
        offsets = encoded.pop("offset_mapping")  # [pairs, seq, 2]
        graph = Batch.from_data_list([p.graph for p in pairs])
        token_node = torch.full(encoded["input_ids"].shape, -1, dtype=torch.long)  # [pairs, seq]
        anchor = torch.full((len(pairs),), -1, dtype=torch.long)
        start, end = offsets[..., 0], offsets[..., 1]
        for i, pair in enumerate(pairs):
            base = int(graph.ptr[i])
            if pair.graph.num_nodes:
                anchor[i] = base
            segment = torch.tensor([-1 if s is None else s for s in encoded.sequence_ids(i)])
            for seg, char_start, char_end, node in pair.mentions:
                inside = (segment == seg) & (start[i] < char_end) & (end[i] > char_start)
                token_node[i, inside & (end[i] > start[i])] = base + node
        labels = [label for _, label in questions]
        return MultipleChoiceBatch(
            pairs=TextGraphBatch(
                input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                token_type_ids=encoded.get("token_type_ids"), graph=graph,
                token_node=token_node, anchor=anchor,
            ),
            num_choices=torch.tensor([len(choices) for choices, _ in questions]),
            labels=None if any(x is None for x in labels) else torch.tensor(labels),
        )  # fmt: skip
