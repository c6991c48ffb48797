"""Text generation with decoders: greedy decoding of a :class:`~gnnlm.fusion.GraphDecoder` (any graph
style) and answers constrained to a knowledge graph's entity names by a prefix trie."""

from __future__ import annotations

from gnnlm.generation.decode import Generation, generate, hf_generate
from gnnlm.generation.trie import NameTrie

__all__ = ["Generation", "NameTrie", "generate", "hf_generate"]
