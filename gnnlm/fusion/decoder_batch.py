"""Batches for decoders: a prompt (with its entity mentions and subgraph) and an optional target.

A decoder example is a :class:`~gnnlm.fusion.TextGraphExample` whose ``text`` is the *prompt* plus a
``target`` continuation (an answer's name). :class:`DecoderCollator` tokenizes the two separately and
joins them, ``[bos] prompt target [eos]``, so the target's tokens are exactly those of the target
tokenized alone (what the constrained-generation trie holds); ``labels`` are the target's tokens and
the end of sequence, ``-100`` elsewhere (HF's convention: the model shifts them). The subgraphs are
sampled and batched by the encoders' :class:`~gnnlm.fusion.TextGraphCollator` machinery (same checks
of mentions and entity ids, same :class:`~gnnlm.fusion.TextGraphBatch`).

Prompts longer than ``max_length`` tokens lose their *beginning* (the question sits at the end of a
prompt; verbalised triples before it are budgeted by :func:`~gnnlm.fusion.verbalize.verbalize_triples`).
Padding is on the left (``padding_side="left"``, for batched generation: every row's last token is
real) or on the right (training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch_geometric.data import Batch

from gnnlm.fusion.batch import TextGraphBatch, TextGraphCollator, TextGraphExample

#: label of positions without a target (ignored by the loss)
IGNORE_INDEX = -100


@dataclass
class DecoderExample(TextGraphExample):
    """A prompt with its mentions / linked entities (``text``, ``mentions``, ``entities`` as in
    :class:`~gnnlm.fusion.TextGraphExample`) and an optional ``target`` continuation (e.g. ``" Paris"``,
    tokenized as it is, without special tokens)."""

    target: str | None = None


class DecoderCollator(TextGraphCollator):
    """``DecoderExample`` list -> :class:`~gnnlm.fusion.TextGraphBatch` for a decoder.

    The batch's ``labels`` are ``[batch, seq]`` token targets aligned with ``input_ids`` (``-100`` on
    the prompt and padding; when no example has a target, ``None``). ``token_node`` and ``anchor`` are
    as for encoders.

    Args:
        tokenizer: a fast tokenizer with an end-of-sequence token
            (:func:`~gnnlm.lm.load_causal_tokenizer`).
        sampler: the subgraph sampler (or ``None``: no subgraphs, ``graph`` empty per example).
        max_length: the most prompt tokens kept (the end of the prompt).
        max_target_length: the most target tokens kept (before the end of sequence).
        padding_side: ``"right"`` (training) or ``"left"`` (generation).
        add_bos: put the tokenizer's ``bos_token`` first (when it has one; default: only for tokenizers
            that add it themselves, e.g. Llama's).
    """

    def __init__(
        self,
        tokenizer,
        sampler,
        *,
        max_length: int = 64,
        max_target_length: int = 16,
        padding_side: str = "right",
        add_bos: bool | None = None,
        max_positions: int | None = None,
    ) -> None:
        super().__init__(tokenizer, sampler, max_length=max_length, max_positions=max_positions)
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{type(tokenizer).__name__} has no eos_token (a decoder needs one)")
        self.max_target_length = max_target_length
        self.padding_side = padding_side
        probe = tokenizer("a")["input_ids"]
        if add_bos is None:
            add_bos = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
        self.bos = (
            [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
        )
        self.eos = int(tokenizer.eos_token_id)
        self.pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos)

    def target_ids(self, target: str) -> list[int]:
        """The token ids of a target (no special tokens), before the end of sequence."""
        ids = self.tokenizer(target, add_special_tokens=False)["input_ids"]
        return ids[: self.max_target_length]

    def __call__(self, examples: Sequence[DecoderExample]) -> TextGraphBatch:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        if self.sampler is not None:
            for i, ex in enumerate(examples):
                self.check(i, ex)
        encoded = self.tokenizer(
            [ex.text for ex in examples], add_special_tokens=False, return_offsets_mapping=True
        )
        rows, nodes, targets = [], [], []
        graphs = [
            self.sampler.sample(ex.seeds, ex.exclude) if self.sampler is not None else None
            for ex in examples
        ]
        graph = Batch.from_data_list(graphs) if self.sampler is not None else None
        for i, ex in enumerate(examples):
            ids = encoded["input_ids"][i][-self.max_length :]  # keep the end of the prompt
            offsets = encoded["offset_mapping"][i][-self.max_length :]
            local = {entity: k for k, entity in enumerate(ex.seeds)}  # seeds come first
            base = int(graph.ptr[i]) if graph is not None else 0
            node = [-1] * (len(self.bos) + len(ids))
            for char_start, char_end, entity in ex.mentions:
                for t, (start, end) in enumerate(offsets):
                    if start < char_end and end > char_start and end > start and graph is not None:
                        node[len(self.bos) + t] = base + local[int(entity)]
            target = [] if ex.target is None else self.target_ids(ex.target) + [self.eos]
            rows.append(self.bos + list(ids) + target)
            nodes.append(node + [-1] * len(target))
            targets.append([IGNORE_INDEX] * len(node) + target)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
        token_node = torch.full((len(rows), width), -1, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, (row, node, target) in enumerate(zip(rows, nodes, targets)):
            cols = (
                slice(0, len(row))
                if self.padding_side == "right"
                else slice(width - len(row), width)
            )
            input_ids[i, cols] = torch.tensor(row)
            attention_mask[i, cols] = 1
            token_node[i, cols] = torch.tensor(node)
            labels[i, cols] = torch.tensor(target)
        anchor = torch.full((len(rows),), -1, dtype=torch.long)
        if graph is not None:
            for i, ex in enumerate(examples):
                if ex.seeds:
                    anchor[i] = int(graph.ptr[i])
        has_targets = any(ex.target is not None for ex in examples)
        return TextGraphBatch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            graph=graph,
            token_node=token_node,
            anchor=anchor,
            labels=labels if has_targets else None,
        )


def position_ids(attention_mask) -> torch.Tensor:
    """``[batch, seq]`` positions counted over real tokens (``0`` on padding): left and right padding
    give every real token the position it would have unpadded."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


__all__ = ["IGNORE_INDEX", "DecoderCollator", "DecoderExample", "position_ids"]
