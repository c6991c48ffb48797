"""A prefix trie over tokenised names: which next tokens keep a generation inside a set of names.

Constrained decoding for KGQA (as in GENRE, De Cao et al., 2021, https://arxiv.org/abs/2010.00904): at
each step only the tokens that extend the generated prefix towards some entity name are allowed, and
the end-of-sequence token only once a whole name has been generated. Names are tokenised as the model
sees its targets (:meth:`~gnnlm.fusion.decoder_batch.DecoderCollator.target_ids`: ``prefix + name``
without special tokens), so a name generated under the trie is exactly one of the names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class NameTrie:
    """A trie of token sequences, each ending in ``eos_id``.

    Args:
        sequences: ``(token ids, name)`` pairs; names whose tokens coincide share a leaf (e.g. two
            names that an uncased tokenizer cannot tell apart).
        eos_id: the end-of-sequence token closing every name.
    """

    def __init__(self, sequences: Iterable[tuple[Sequence[int], str]], eos_id: int) -> None:
        self.eos_id = int(eos_id)
        self.root: dict[int, dict] = {}
        self.names: dict[tuple[int, ...], list[str]] = {}
        for ids, name in sequences:
            ids = tuple(int(i) for i in ids)
            if not ids:
                continue  # an empty name cannot be generated
            node = self.root
            for token in (*ids, self.eos_id):
                node = node.setdefault(token, {})
            self.names.setdefault(ids, []).append(name)

    @classmethod
    def from_names(
        cls, names: Iterable[str], tokenizer, *, prefix: str = " ", max_length: int | None = None
    ) -> NameTrie:
        """Tokenise ``prefix + name`` for every name (one batched tokenizer call).

        Args:
            names: entity names.
            tokenizer: the model's tokenizer (with ``eos_token_id``).
            prefix: what precedes a name in the targets (a space for byte-level BPE tokenizers).
            max_length: cut tokenised names to this many tokens (as the collator cuts targets).
        """
        names = list(names)
        ids = tokenizer([prefix + n for n in names], add_special_tokens=False)["input_ids"]
        if max_length is not None:
            ids = [i[:max_length] for i in ids]
        return cls(zip(ids, names), tokenizer.eos_token_id)

    def __len__(self) -> int:
        return len(self.names)

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """The tokens that may follow ``prefix`` (empty when ``prefix`` left the trie or is complete)."""
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return []
        return list(node)

    def lookup(self, ids: Sequence[int]) -> list[str]:
        """The names tokenised as ``ids`` (without the end of sequence), ``[]`` when none."""
        ids = [int(i) for i in ids]
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return list(self.names.get(tuple(ids), []))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(names={sum(map(len, self.names.values()))}, sequences={len(self)})"


__all__ = ["NameTrie"]
