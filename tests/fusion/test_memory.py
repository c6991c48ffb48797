"""Chunked memory retrieval equals brute-force top-k."""

from __future__ import annotations

import pytest
import torch

from gnnlm.fusion import memory_topk


@pytest.mark.parametrize("chunk,qchunk", [(7, 5), (64, 1000), (1000, 3)])
def test_chunked_topk_equals_brute_force(chunk, qchunk):
    g = torch.Generator().manual_seed(0)
    query, memory = torch.randn(37, 8, generator=g), torch.randn(203, 8, generator=g)
    scores, index = memory_topk(query, memory, 5, chunk_size=chunk, query_chunk_size=qchunk)
    ref = (query @ memory.t()).topk(5, dim=1)
    assert torch.equal(index, ref.indices)
    torch.testing.assert_close(scores, ref.values)


def test_k_is_checked():
    with pytest.raises(ValueError, match=r"need 0 < k <= memory size \(4\), got k=5"):
        memory_topk(torch.randn(2, 3), torch.randn(4, 3), 5)


def test_memory_injection_retrieves_the_brute_force_entries():
    from tests.fusion.helpers import build

    model = build("bert", "memory", injection_kwargs={"memory": {"top_k": 4, "chunk_size": 5}})
    memory = model.injections["memory"]
    q = torch.randn(9, memory.memory_channels)
    scores, index = memory.retrieve(q)
    ref = (q @ memory.memory.weight.t()).topk(4, dim=1)
    assert torch.equal(index, ref.indices)
    torch.testing.assert_close(scores, ref.values)
    assert "top_k=4" in repr(memory)
