"""Mention detection by alias matching, longest match first (for new text and KG-generated mentions).

The text is split into words (runs of letters and digits, with inner periods and apostrophes:
``U.S.``, ``O'Neill``); from left to right, the longest run of at most ``max_words`` words whose
normalised (or stemmed) key is a surface form of the KB becomes a mention, and matching resumes after
it. Runs without a capital letter or digit are skipped (common nouns such as ``film`` or ``red`` are
names of FB15k-237 entities too; a proper name is what a linker is asked about), as are keys in
:data:`STOPWORDS`.
"""

from __future__ import annotations

import re

from gnnlm.tasks.entity_linking.candidates import CandidateGenerator, normalize, stem

_WORD = re.compile(r"[^\W_]+(?:[.'\u2019][^\W_]+)*\.?")
#: keys never detected on their own (surface forms of some entity, but mostly function words)
STOPWORDS = frozenset(
    "a an and as at by for from he her his i in is it of on or she the they this to we with you"
    .split()
)  # fmt: skip


def detect_mentions(
    text: str, generator: CandidateGenerator, *, max_words: int = 6
) -> list[tuple[int, int]]:
    """``[(start, end)]`` character spans of the mentions of ``text``, left to right, not
    overlapping (a leading "the" and a sentence's final period left out)."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        found = None
        for j in range(min(len(words), i + max_words) - 1, i - 1, -1):
            start, end = words[i][0], words[j][1]
            surface = text[start:end]
            if not any(c.isupper() or c.isdigit() for c in surface):
                continue
            key = normalize(surface)
            if not key or key in STOPWORDS:
                continue
            if key in generator.exact or stem(key) in generator.stemmed:
                # a final period belongs to the sentence unless the word has inner ones (U.S.)
                if surface.endswith(".") and "." not in surface.split()[-1][:-1]:
                    end -= 1
                # a leading article is not part of the name ("the Caribbean")
                if surface[:4].lower() == "the " and normalize(surface[4:]) == key:
                    start += 4
                found = (start, end, j)
                break
        if found is None:
            i += 1
        else:
            spans.append(found[:2])
            i = found[2] + 1
    return spans


__all__ = ["STOPWORDS", "detect_mentions"]
