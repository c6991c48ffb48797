"""Entity markers: the sentence as the encoder reads it, and the token positions of the markers.

Head and tail are wrapped in punctuation the tokenizer already knows (the "entity marker (punct)" input
of Zhou & Chen, 2021, https://arxiv.org/abs/2102.01373; matching the blanks, Baldini Soares et al., 2019,
https://arxiv.org/abs/1906.03158, adds new marker tokens instead, which would change the LM's
vocabulary)::

    tokens   In June 1987 , ... Mississippi River bridge ... Cape Girardeau Bridge .
    text     In June 1987 , ... # Mississippi River # bridge ... @ Cape Girardeau Bridge @ .
                                ^ tail marker                   ^ head marker

The relation representation is the concatenation of the encoder's final states at the two start markers
(:mod:`.model`). For the KG arm, the whole marked span ``@ Cape Girardeau Bridge @`` is the entity's
mention, so the start marker itself receives the injected entity vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gnnlm.fusion import TextGraphBatch, TextGraphCollator, TextGraphExample
from gnnlm.tasks.fewrel.reader import Instance

HEAD_MARKER = "@"
TAIL_MARKER = "#"


@dataclass(frozen=True)
class MarkedText:
    """A sentence with its entity markers.

    Attributes:
        text: the tokens joined by spaces, head and tail wrapped in their markers.
        head_span: ``(char_start, char_end)`` of the marked head, markers included (``end`` exclusive);
            ``tail_span`` likewise.
    """

    text: str
    head_span: tuple[int, int]
    tail_span: tuple[int, int]


def mark(instance: Instance) -> MarkedText:
    """The marked text of ``instance`` (see the module docstring)."""
    opening = {instance.head.start: HEAD_MARKER, instance.tail.start: TAIL_MARKER}
    closing = {instance.head.end - 1: HEAD_MARKER, instance.tail.end - 1: TAIL_MARKER}
    words: list[str] = []
    spans: dict[str, list[int]] = {}
    length = 0

    def add(word: str) -> None:
        nonlocal length
        length += (1 if words else 0) + len(word)
        words.append(word)

    for i, token in enumerate(instance.tokens):
        if i in opening:
            add(opening[i])
            spans[opening[i]] = [length - 1]
        add(token)
        if i in closing:
            add(closing[i])
            spans[closing[i]].append(length)
    head, tail = spans[HEAD_MARKER], spans[TAIL_MARKER]
    return MarkedText(" ".join(words), (head[0], head[1]), (tail[0], tail[1]))


@dataclass
class FewRelBatch:
    """Marked sentences ready for the encoder.

    Attributes:
        inputs: the tokenizer tensors ``[batch, seq]`` and the subgraphs of the linked entities
            (:class:`~gnnlm.fusion.TextGraphBatch`; empty graphs where nothing links).
        head_position: ``[batch]`` token index of the head's start marker; ``tail_position`` likewise.
        truncated: ``[batch]`` whether a marker fell beyond ``max_length`` (its position is then 0,
            the first token; counted in the metrics).
    """

    inputs: TextGraphBatch
    head_position: Tensor
    tail_position: Tensor
    truncated: Tensor

    def to(self, device: torch.device | str) -> FewRelBatch:
        return FewRelBatch(
            self.inputs.to(device),
            self.head_position.to(device),
            self.tail_position.to(device),
            self.truncated.to(device),
        )


class FewRelCollator:
    """Instances -> :class:`FewRelBatch`.

    Args:
        tokenizer: a fast HF tokenizer (character offsets locate the markers).
        sampler: the :class:`~gnnlm.data.SubgraphSampler` over the KG.
        max_length: tokens per sentence (longer ones are truncated).
        max_positions: the LM's positions (checked against ``max_length``).
    """

    def __init__(
        self,
        tokenizer,
        sampler,
        *,
        max_length: int,
        max_positions: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.text_graph = TextGraphCollator(
            tokenizer, sampler, max_length=max_length, max_positions=max_positions
        )

    def __call__(
        self, instances: Sequence[Instance], links: Sequence[tuple[int | None, int | None]]
    ) -> FewRelBatch:
        """Collate ``instances``; ``links[i]`` is the KG entity id of instance ``i``'s head and tail
        (``None``: not linked, or the arm injects nothing)."""
        marked = [mark(x) for x in instances]
        examples = []
        for m, (head, tail) in zip(marked, links):
            pairs = ((m.head_span, head), (m.tail_span, tail))
            mentions = [(*span, e) for span, e in pairs if e is not None]
            examples.append(TextGraphExample(m.text, mentions=mentions))
        inputs = self.text_graph(examples)
        starts = self.tokenizer(
            [m.text for m in marked], truncation=True, max_length=self.max_length,
            return_offsets_mapping=True,
        )["offset_mapping"]  # fmt: skip
        head = [_token_at(o, m.head_span[0]) for o, m in zip(starts, marked)]
        tail = [_token_at(o, m.tail_span[0]) for o, m in zip(starts, marked)]
        truncated = torch.tensor([h is None or t is None for h, t in zip(head, tail)])
        return FewRelBatch(
            inputs,
            torch.tensor([h or 0 for h in head]),
            torch.tensor([t or 0 for t in tail]),
            truncated,
        )


def _token_at(offsets: Sequence[tuple[int, int]], char: int) -> int | None:
    """The index of the token that starts at character ``char`` (``None``: truncated away)."""
    for k, (start, end) in enumerate(offsets):
        if start == char and end > start:
            return k
    return None


__all__ = ["FewRelBatch", "FewRelCollator", "HEAD_MARKER", "MarkedText", "TAIL_MARKER", "mark"]
