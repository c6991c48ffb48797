"""Text + graph batches: tokenizer tensors and one PyG ``Batch`` of per-example subgraphs.

An example is a text, the character spans of its entity mentions (with the entity each links to), and
optional extra linked entities and triples to keep out of its subgraph. :class:`TextGraphCollator`
tokenizes a list of examples, samples each one's subgraph (:class:`~gnnlm.fusion.subgraph.SubgraphSampler`)
and joins the subgraphs with ``Batch.from_data_list``, so the GNN runs once per layer for the whole batch.
Each token that falls inside a mention points at its entity's node (``token_node``, an index into the
batched nodes), which is what entity and relation injection use.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gnnlm.fusion.subgraph import SubgraphSampler


@dataclass
class TextGraphExample:
    """One example.

    Attributes:
        text: the input text.
        mentions: ``(char_start, char_end, entity_id)`` per mention, ``end`` exclusive.
        entities: extra linked entity ids without a mention in the text (seeds of the subgraph too).
        exclude: ``[k, 3]`` (head, relation, tail) triples kept out of the subgraph (e.g. the triple a
            classifier is asked about).
        label: optional target.
    """

    text: str
    mentions: list[tuple[int, int, int]] = field(default_factory=list)
    entities: list[int] = field(default_factory=list)
    exclude: Tensor | None = None
    label: float | int | None = None

    @property
    def seeds(self) -> list[int]:
        """Linked entity ids, in order of first mention, then the extra ones."""
        seen: dict[int, None] = {}
        for _, _, entity in self.mentions:
            seen.setdefault(int(entity), None)
        for entity in self.entities:
            seen.setdefault(int(entity), None)
        return list(seen)


@dataclass
class TextGraphBatch:
    """A batch of text with its subgraphs.

    Attributes:
        input_ids: ``[batch, seq]`` token ids.
        attention_mask: ``[batch, seq]`` 1 for real tokens.
        graph: PyG ``Batch`` of the subgraphs: ``n_id: [num_nodes]`` global entity ids,
            ``edge_index: [2, num_edges]`` (batched node ids), ``edge_type: [num_edges]``,
            ``batch: [num_nodes]``, ``ptr: [batch + 1]``, ``num_seeds: [batch]``.
        token_node: ``[batch, seq]`` batched node id of the entity each token mentions, ``-1`` otherwise.
        anchor: ``[batch]`` batched node id of each example's first linked entity, ``-1`` when none.
        token_type_ids: ``[batch, seq]`` segment ids, when the tokenizer makes them.
        labels: ``[batch]`` targets, when the examples have them.
    """

    input_ids: Tensor
    attention_mask: Tensor
    graph: Batch
    token_node: Tensor
    anchor: Tensor
    token_type_ids: Tensor | None = None
    labels: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.size(0))

    def to(self, device: torch.device | str) -> TextGraphBatch:
        """A copy on ``device``."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Batch):  # PyG's .to() works in place: move a shallow copy
                value = copy.copy(value)
            values[f.name] = value.to(device) if value is not None else None
        return TextGraphBatch(**values)


class TextGraphCollator:
    """Turns a list of :class:`TextGraphExample` into a :class:`TextGraphBatch`.

    Args:
        tokenizer: a *fast* HF tokenizer (character offsets map mentions to tokens).
        sampler: the subgraph sampler over the KG.
        max_length: truncation length of the text.
    """

    def __init__(self, tokenizer, sampler: SubgraphSampler, *, max_length: int = 64) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; mention spans need offsets "
                "(load it with AutoTokenizer.from_pretrained(..., use_fast=True))"
            )
        self.tokenizer = tokenizer
        self.sampler = sampler
        self.max_length = max_length

    def __call__(self, examples: Sequence[TextGraphExample]) -> TextGraphBatch:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        encoded = self.tokenizer(
            [ex.text for ex in examples],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping")  # [batch, seq, 2]
        graphs = [self.sampler.sample(ex.seeds, ex.exclude) for ex in examples]
        graph = Batch.from_data_list(graphs)
        token_node = torch.full(encoded["input_ids"].shape, -1, dtype=torch.long)  # [batch, seq]
        anchor = torch.full((len(examples),), -1, dtype=torch.long)
        start, end = offsets[..., 0], offsets[..., 1]  # [batch, seq]
        for i, ex in enumerate(examples):
            local = {
                entity: k for k, entity in enumerate(ex.seeds)
            }  # seeds come first in the subgraph
            base = int(graph.ptr[i])
            if local:
                anchor[i] = base
            for char_start, char_end, entity in ex.mentions:
                inside = (
                    (start[i] < char_end) & (end[i] > char_start) & (end[i] > start[i])
                )  # [seq]
                token_node[i, inside] = base + local[int(entity)]
        labels = None
        if all(ex.label is not None for ex in examples):
            labels = torch.tensor([ex.label for ex in examples])
        return TextGraphBatch(
            input_ids=encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            token_type_ids=encoded.get("token_type_ids"),
            graph=graph,
            token_node=token_node,
            anchor=anchor,
            labels=labels,
        )
