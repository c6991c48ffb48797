"""Greedy decoding of a :class:`~gnnlm.fusion.GraphDecoder`, optionally constrained by a
:class:`~gnnlm.generation.trie.NameTrie`.

:func:`generate` re-runs the fused forward over the growing sequence at every step (the graph side, GNN
states and soft prompts, is computed once per batch): cross-attention to the nodes sits between the LM's
layers, where HF's KV cache cannot follow, and answers are a few tokens long. :func:`hf_generate` is the
plain LM's path through HF's own ``generate`` (KV cache, the same trie through
``prefix_allowed_tokens_fn``); the tests check both pick the same tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gnnlm.generation.trie import NameTrie


@dataclass
class Generation:
    """One generated continuation.

    Attributes:
        token_ids: the generated ids, without the end of sequence.
        text: their decoding (``skip_special_tokens``), when a tokenizer was given.
        names: with a trie, the entity names tokenised as ``token_ids`` (``[]`` when the generation
            is not a name: stopped by ``max_new_tokens``).
        finished: whether the end of sequence was generated.
    """

    token_ids: list[int]
    text: str | None = None
    names: list[str] = field(default_factory=list)
    finished: bool = False


def _mask_to_trie(logits: Tensor, generated: list[list[int]], tries: Sequence[NameTrie]) -> Tensor:
    """``[batch, vocab]`` logits with every token row ``i``'s trie does not allow after its prefix at
    ``-inf`` (a row that left its trie may only end)."""
    allowed = torch.full_like(logits, float("-inf"))
    for i, prefix in enumerate(generated):
        tokens = tries[i].allowed(prefix) or [tries[i].eos_id]
        allowed[i, tokens] = 0.0
    return logits + allowed


@torch.no_grad()
def generate(
    model,
    batch,
    *,
    eos_id: int,
    max_new_tokens: int = 16,
    trie: NameTrie | Sequence[NameTrie] | None = None,
    tokenizer=None,
) -> list[Generation]:
    """Greedy continuations of a left-padded batch of prompts.

    Args:
        model: a :class:`~gnnlm.fusion.GraphDecoder` (any ``knowledge``, ``[]`` for the plain LM).
        batch: prompts from a :class:`~gnnlm.fusion.DecoderCollator` with ``padding_side="left"``
            (every row's last token is real) and no targets.
        eos_id: the end-of-sequence token.
        max_new_tokens: the most tokens generated per row.
        trie: restrict every continuation to the trie's names (or one trie per row, e.g. the names of
            each question's subgraph).
        tokenizer: decode the generations to text.

    Returns:
        One :class:`Generation` per row.
    """
    if not bool(batch.attention_mask[:, -1].all()):
        raise ValueError(
            "generate needs left-padded prompts (DecoderCollator(padding_side='left'))"
        )
    was_training = model.training
    model.eval()
    try:
        graph = model.encode_graph(batch)
        b = batch.batch_size
        tries = [trie] * b if isinstance(trie, NameTrie) else trie
        if tries is not None and len(tries) != b:
            raise ValueError(f"{len(tries)} tries for a batch of {b}")
        generated: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool)
        current = batch
        for _ in range(max_new_tokens):
            logits = (
                model(current, graph=graph, logits="last").logits[:, -1].float()
            )  # [batch, vocab]
            if tries is not None:
                logits = _mask_to_trie(logits, generated, tries)
            token = logits.argmax(-1).cpu()  # [batch]
            token = torch.where(done, torch.full_like(token, eos_id), token)
            for i in range(b):
                if not done[i] and int(token[i]) != eos_id:
                    generated[i].append(int(token[i]))
            done |= token == eos_id
            if bool(done.all()):
                break
            device = current.input_ids.device
            ones = torch.ones(b, 1, dtype=current.attention_mask.dtype, device=device)
            current = dataclasses.replace(
                current,
                input_ids=torch.cat([current.input_ids, token.to(device).view(b, 1)], 1),
                attention_mask=torch.cat([current.attention_mask, ones], 1),
                token_node=torch.cat([current.token_node, -ones.long()], 1),
                labels=None,
            )
    finally:
        model.train(was_training)
    return [
        Generation(
            token_ids=ids,
            text=tokenizer.decode(ids, skip_special_tokens=True) if tokenizer is not None else None,
            names=tries[i].lookup(ids) if tries is not None and bool(done[i]) else [],
            finished=bool(done[i]),
        )
        for i, ids in enumerate(generated)
    ]


@torch.no_grad()
def hf_generate(
    lm,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int = 16,
    trie: NameTrie | None = None,
) -> list[list[int]]:
    """The plain decoder's greedy continuations through HF's ``generate`` (with its KV cache).

    Args:
        lm: a :class:`~gnnlm.lm.CausalBackbone`.
        input_ids: ``[batch, seq]`` left-padded prompts.
        attention_mask: ``[batch, seq]``.
        eos_id, pad_id: end-of-sequence and padding ids.
        max_new_tokens: the most tokens generated per row.
        trie: constrain to the trie's names (``prefix_allowed_tokens_fn``).

    Returns:
        Per row the generated ids, without the end of sequence and what follows it.
    """
    start = input_ids.size(1)
    allowed = None
    if trie is not None:

        def allowed(_row: int, ids: Tensor) -> list[int]:
            return trie.allowed(ids[start:].tolist()) or [trie.eos_id]

    out = lm.model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
        do_sample=False, eos_token_id=eos_id, pad_token_id=pad_id,
        prefix_allowed_tokens_fn=allowed,
    )  # fmt: skip
    result = []
    for row in out[:, start:].tolist():
        result.append(row[: row.index(eos_id)] if eos_id in row else row)
    return result


__all__ = ["Generation", "generate", "hf_generate"]
