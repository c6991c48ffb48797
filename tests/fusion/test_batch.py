"""Collating text + subgraphs: one PyG Batch, tokens linked to their entity's node."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import TextGraphCollator
from tests.fusion.helpers import EXAMPLES, NAMES, collator, tokenizer


def test_mention_tokens_point_at_their_entity_node():
    batch = collator()(EXAMPLES)
    graph = batch.graph
    assert graph.num_graphs == len(EXAMPLES)
    for i, ex in enumerate(EXAMPLES):
        ids = batch.input_ids[i]
        for start, end, entity in ex.mentions:
            pieces = tokenizer()(ex.text[start:end], add_special_tokens=False)["input_ids"]
            nodes = batch.token_node[i][batch.token_node[i] >= 0]
            linked = (graph.n_id[batch.token_node[i].clamp_min(0)] == entity) & (
                batch.token_node[i] >= 0
            )
            assert ids[linked].tolist() == pieces, NAMES[entity]
            assert torch.all(graph.batch[nodes] == i)  # never another example's node
        assert batch.anchor[i] == (graph.ptr[i] if ex.seeds else -1)
    assert batch.token_node[3].eq(-1).all() and batch.anchor[3] == -1
    assert batch.labels.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_batch_moves_to_a_device_as_a_copy():
    batch = collator()(EXAMPLES)
    moved = batch.to("cpu")
    assert moved is not batch and torch.equal(moved.input_ids, batch.input_ids)
    assert moved.graph.num_nodes == batch.graph.num_nodes
    moved.graph.n_id = moved.graph.n_id + 1  # the copy's graph is its own
    assert not torch.equal(moved.graph.n_id, batch.graph.n_id)


def test_slow_tokenizers_and_empty_batches_are_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="Slow is not a fast tokenizer"):
        TextGraphCollator(Slow(), collator().sampler)
    with pytest.raises(ValueError, match="empty list"):
        collator()([])
