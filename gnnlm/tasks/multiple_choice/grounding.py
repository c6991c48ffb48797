"""Grounding: the ConceptNet concepts a text mentions, by lemmatised n-gram matching (KagNet / QA-GNN).

Every concept string and every text is tokenised (lower-cased words), each token lemmatised with
`simplemma <https://pypi.org/project/simplemma/>`_ (a dictionary lemmatiser shipped as pure Python with its
data; ``running -> run``, ``dogs -> dog``), and the text's n-grams of up to ``max_ngram`` tokens are looked
up among the concepts' lemma sequences. Matches are kept longest first, without overlap, so ``"ice cream"``
is one concept rather than ``"ice"`` and ``"cream"``. A concept made only of stop words (:data:`STOP_WORDS`)
is never matched: ``"is"``, ``"what"`` or ``"a lot"`` would ground nearly every question to the same hubs.

::

    matcher = ConceptMatcher(["run", "dog", "ice cream", "ice", "cream"])
    [m.concept for m in matcher.ground("Dogs running for ice cream")]   # [1, 0, 2]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

#: English function words (articles, pronouns, auxiliaries, prepositions, conjunctions, question
#: words), after the NLTK / SMART lists; a stop word alone, or a run of them, is never a concept.
STOP_WORDS: frozenset[str] = frozenset(
    """a about above after again against all am an and any are as at be been before being below
    between both but by can could did do does doing down during each either else ever every few for
    from further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me might more most must my myself neither no nor not now of off on once only or
    other ought our ours ourselves out over own same shall she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up upon
    us very was we were what when where whether which while who whom whose why will with would yet
    you your yours yourself yourselves also may many much one ones something someone anything thing
    things get got go going let like make made put say said take use used want way well""".split()
)

#: a word: letters and digits, with an inner apostrophe (``don't``) or hyphen (``x-ray``)
TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


@dataclass(frozen=True)
class Match:
    """A grounded concept: characters ``[start, end)`` of the text mention concept ``concept``."""

    start: int
    end: int
    concept: int


def english_lemmatizer() -> Callable[[str], str]:
    """simplemma's English lemmatiser (imported here, so that gnnlm needs it only for QA).

    Raises:
        ImportError: simplemma is not installed (``pip install 'gnnlm[qa]'``).
    """
    try:
        import simplemma
    except ImportError:
        raise ImportError(
            "grounding needs the lemmatiser simplemma: pip install simplemma (or 'gnnlm[qa]')"
        ) from None

    @cache
    def lemma(token: str) -> str:
        return simplemma.lemmatize(token, lang="en").lower()

    return lemma


def tokenize(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, word)`` of every lower-cased word of ``text`` (characters ``[start, end)``)."""
    return [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text.lower())]


class ConceptMatcher:
    """Finds the concepts of a vocabulary that a text mentions (see the module docstring).

    Args:
        concepts: the concept strings, indexed by concept id (e.g. ConceptNet node texts).
        max_ngram: the longest concept matched, in words (longer concepts are never found).
        stop_words: words that never form a concept on their own (lower-case surface forms; a
            token counts as one when its surface form or its lemma is listed).
        lemmatize: ``word -> lemma`` (default :func:`english_lemmatizer`).

    Attributes:
        num_indexed: concepts that can be matched (not too long, not only stop words).
    """

    def __init__(
        self,
        concepts: Sequence[str],
        *,
        max_ngram: int = 4,
        stop_words: Iterable[str] = STOP_WORDS,
        lemmatize: Callable[[str], str] | None = None,
    ) -> None:
        if max_ngram < 1:
            raise ValueError(f"max_ngram must be >= 1, got {max_ngram}")
        self.max_ngram = max_ngram
        self.stop_words = frozenset(stop_words)
        self.lemmatize = lemmatize or english_lemmatizer()
        self.concepts = list(concepts)
        # lemma sequence -> concept ids; a surface form equal to the text wins at match time
        self.index: dict[tuple[str, ...], list[int]] = {}
        self.surface: dict[str, int] = {}
        for i, text in enumerate(self.concepts):
            words = [w for _, _, w in tokenize(text)]
            if not words or len(words) > max_ngram or all(self._is_stop(w) for w in words):
                continue
            self.index.setdefault(tuple(self.lemmatize(w) for w in words), []).append(i)
            self.surface.setdefault(" ".join(words), i)
        self.num_indexed = sum(len(ids) for ids in self.index.values())

    def _is_stop(self, word: str) -> bool:
        return word in self.stop_words or self.lemmatize(word) in self.stop_words

    def ground(self, text: str) -> list[Match]:
        """The concepts ``text`` mentions, in text order, each once (its first mention).

        Longest match first: every n-gram (``n <= max_ngram``) whose lemmas are a concept's is a
        candidate; candidates are accepted longest first (then leftmost) unless they overlap an
        accepted one.
        """
        tokens = tokenize(text)
        lemmas = [self.lemmatize(w) for _, _, w in tokens]
        candidates = []  # (-length, start token, end token, concept)
        for i in range(len(tokens)):
            for n in range(1, min(self.max_ngram, len(tokens) - i) + 1):
                ids = self.index.get(tuple(lemmas[i : i + n]))
                if ids:
                    surface = " ".join(w for _, _, w in tokens[i : i + n])
                    exact = self.surface.get(surface)
                    candidates.append((-n, i, i + n, exact if exact in ids else ids[0]))
        taken = [False] * len(tokens)
        accepted = []
        for _, i, j, concept in sorted(candidates):
            if not any(taken[i:j]):
                taken[i:j] = [True] * (j - i)
                accepted.append((i, j, concept))
        seen: set[int] = set()
        out = []
        for i, j, concept in sorted(accepted):
            if concept not in seen:
                seen.add(concept)
                out.append(Match(tokens[i][0], tokens[j - 1][1], concept))
        return out

    def concepts_of(self, text: str) -> list[int]:
        """The concept ids of :meth:`ground`, in text order."""
        return [m.concept for m in self.ground(text)]
