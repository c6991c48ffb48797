"""Text + graph batches: tokenizer tensors and one PyG ``Batch`` of per-example subgraphs.

An example is a text, the character spans of its entity mentions (with the entity each links to), and
optional extra linked entities and triples to keep out of its subgraph. :class:`TextGraphCollator`
tokenizes a list of examples, samples each one's subgraph (:class:`~gnnlm.data.subgraph.SubgraphSampler`)
and joins the subgraphs with ``Batch.from_data_list``, so the GNN runs once per layer for the whole batch.
Each token that falls inside a mention points at its entity's node (``token_node``, an index into the
batched nodes), which is what entity and relation injection use.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gnnlm.data.subgraph import SubgraphSampler


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
        id: optional identifier, named in error messages (with the example's index in its batch).
        relation_weight: ``[num_relations]`` pruning weights of this example's subgraph (e.g. its
            question's relevance to each relation), in place of the sampler's (see
            :meth:`~gnnlm.data.subgraph.SubgraphSampler.node_set`).
    """

    text: str
    mentions: list[tuple[int, int, int]] = field(default_factory=list)
    entities: list[int] = field(default_factory=list)
    exclude: Tensor | None = None
    label: float | int | None = None
    id: str | int | None = None
    relation_weight: Tensor | None = None

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

    Every example is checked first: mention spans must lie inside the text (``0 <= start < end <=
    len(text)``) and entity ids inside the graph; the error names the example (index in the batch and
    ``id``), the mention and the value.

    Args:
        tokenizer: a *fast* HF tokenizer (character offsets map mentions to tokens).
        sampler: the subgraph sampler over the KG.
        max_length: truncation length of the text, in tokens.
        max_positions: the most tokens the LM can embed (:func:`text_positions` of the model); a
            longer ``max_length`` is refused here rather than failing deep inside the model. The
            tokenizer's own ``model_max_length`` is checked too when it states one.
    """

    def __init__(
        self,
        tokenizer,
        sampler: SubgraphSampler,
        *,
        max_length: int = 64,
        max_positions: int | None = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; mention spans need offsets "
                "(load it with AutoTokenizer.from_pretrained(..., use_fast=True))"
            )
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        limits = []
        if max_positions is not None:
            limits.append((max_positions, "the language model's positions"))
        model_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(model_max, int) and model_max < NO_LIMIT:
            limits.append((model_max, f"{type(tokenizer).__name__}.model_max_length"))
        for limit, what in limits:
            if max_length > limit:
                raise ValueError(
                    f"max_length={max_length} is longer than the {limit} tokens of {what}; "
                    f"use max_length <= {limit}"
                )
        self.tokenizer = tokenizer
        self.sampler = sampler
        self.max_length = max_length

    def check(self, index: int, example: TextGraphExample) -> None:
        """Raise if ``example`` (``index`` in its batch) has a bad mention, entity or exclusion.

        Raises:
            TypeError: a text that is not a string, or a span / id that is not an integer.
            ValueError: a span outside the text, reversed, negative or empty; an entity id outside
                ``[0, num_entities)``; ``exclude`` not of shape ``[k, 3]``.
        """
        name = f"example {index}" + (f" (id {example.id!r})" if example.id is not None else "")
        text = example.text
        if not isinstance(text, str):
            raise TypeError(f"{name}: text must be a string, got {type(text).__name__}")
        num_nodes = self.sampler.num_nodes
        for k, mention in enumerate(example.mentions):
            what = f"{name}, mention {k} {tuple(mention)!r}"
            if len(mention) != 3:
                raise ValueError(f"{what}: expected (char_start, char_end, entity_id)")
            start, end, entity = (_integer(v, what) for v in mention)
            problem = None
            if start < 0:
                problem = "negative start"
            elif end > len(text):
                problem = f"span past the end of the text ({len(text)} characters)"
            elif end < start:
                problem = "reversed span (end before start)"
            elif end == start:
                problem = "empty span (end == start; end is exclusive)"
            elif not 0 <= entity < num_nodes:
                problem = f"entity id outside [0, {num_nodes})"
            if problem is not None:
                raise ValueError(f"{what}: {problem}; text {_excerpt(text)!r}")
        for entity in example.entities:
            if not 0 <= _integer(entity, f"{name}, entities") < num_nodes:
                raise ValueError(f"{name}: linked entity {entity!r} outside [0, {num_nodes})")
        exclude = example.exclude
        if exclude is not None and (
            not isinstance(exclude, Tensor) or exclude.dim() != 2 or exclude.size(1) != 3
        ):
            shape = tuple(exclude.shape) if isinstance(exclude, Tensor) else type(exclude).__name__
            raise ValueError(f"{name}: exclude must be a [k, 3] tensor of triples, got {shape}")

    def __call__(self, examples: Sequence[TextGraphExample]) -> TextGraphBatch:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        for i, ex in enumerate(examples):
            self.check(i, ex)
        encoded = self.tokenizer(
            [ex.text for ex in examples],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping")  # [batch, seq, 2]
        graphs = [self.sampler.sample(ex.seeds, ex.exclude, ex.relation_weight) for ex in examples]
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


#: ``model_max_length`` of a tokenizer that states no limit (HF's ``VERY_LARGE_INTEGER``)
NO_LIMIT = 10**9
#: model types whose position ids start after the padding index (RoBERTa's scheme)
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "roberta-prelayernorm", "mpnet"}


def text_positions(model) -> int | None:
    """How many tokens ``model`` can embed: a :class:`~gnnlm.fusion.FusedLM`, a
    :class:`~gnnlm.lm.TransformerBackbone`, an HF model or its config; ``None`` when it does not say.

    That is ``max_position_embeddings``, less RoBERTa's offset (its positions start at
    ``pad_token_id + 1``: 514 positions embed 512 tokens).
    """
    config = model
    for attribute in ("lm", "model", "config"):
        config = getattr(config, attribute, config)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        positions -= int(getattr(config, "pad_token_id", None) or 0) + 1
    return positions


def _integer(value, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{what}: expected an integer, got {value!r} ({type(value).__name__})"
        ) from None


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
