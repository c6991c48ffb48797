"""Candidate generation: the KB entities a mention may refer to, from their names and aliases.

A mention's text and every surface form of every entity are normalised (:func:`normalize`: Unicode
accents removed, lower case, possessive ``'s`` and periods dropped, other punctuation as spaces, a
leading "the" dropped) and, for inflection, stemmed (:func:`stem`: a plural ``s`` dropped from each word).
Candidates come in three groups, in this order, up to ``k`` in all:

1. ``exact``: entities with a surface form of the same normalised key;
2. ``stem``: entities with a surface form of the same stemmed key (``Germans`` / ``German``);
3. ``partial``: entities with a surface form of two words or more that contains every word of the
   mention (a partial name: ``Steve`` for ``Steve Jobs``, ``Jobs`` too);
4. ``fuzzy``: entities of the keys most similar to the mention's by rapidfuzz's normalised edit
   similarity ``fuzz.ratio`` (at least ``fuzzy_cutoff`` of 100: spelling variants, ``Gadhafi`` /
   ``Gaddafi``) among the keys of the same first character, ranked by that similarity.

Within a group entities rank by the *alias prior* (how often the mention's key linked to the entity in
the training mentions, :meth:`CandidateGenerator.set_prior`), then by KG degree. The first candidate is
therefore the alias-prior baseline's answer: the most frequent entity for the alias in training, else
the best-connected one.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from gnnlm.tasks.entity_linking.kb import KnowledgeBase

#: candidate sources in rank order
SOURCES = ("exact", "stem", "partial", "fuzzy")
#: width of :meth:`Candidate.features`
NUM_FEATURES = 4

_POSSESSIVE = re.compile(r"(?<=\w)'s\b|(?<=s)'(?=\s|$)")
_DROPPED = re.compile(r"[.'`]")
_SPACE = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """The matching key of a name: ``"The Beatles'"`` -> ``"beatles"``, ``"U.S."`` -> ``"us"``,
    ``"Hewlett-Packard"`` -> ``"hewlett packard"``, ``"Ségolène"`` -> ``"segolene"``."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = _DROPPED.sub("", _POSSESSIVE.sub("", text))
    text = _SPACE.sub(" ", text).strip()
    return text[4:] if text.startswith("the ") and len(text) > 4 else text


def stem(key: str) -> str:
    """A normalised key with a plural ``s`` dropped from each word of four letters or more
    (``"germans"`` -> ``"german"``; ``"swiss"`` stays)."""
    return " ".join(
        w[:-1] if len(w) >= 4 and w.endswith("s") and not w.endswith("ss") else w
        for w in key.split()
    )


@dataclass(frozen=True)
class Candidate:
    """A candidate entity of a mention.

    Attributes:
        entity: the KB entity id.
        source: ``"exact"``, ``"stem"``, ``"partial"`` or ``"fuzzy"``.
        similarity: string similarity in ``[0, 1]`` (1 for exact and stem matches; for partial ones the
            share of the surface form's words the mention has).
        prior: the entity's count for the mention's key in the training mentions.
        degree: the entity's KG degree.
    """

    entity: int
    source: str
    similarity: float
    prior: int
    degree: int

    def features(self) -> list[float]:
        """``[NUM_FEATURES]``: full-name match (exact or stem), similarity, ``log(1 + prior)``,
        ``log(1 + degree) / 10`` (mention-entity features both arms' scores read)."""
        return [
            float(self.source in ("exact", "stem")),
            self.similarity,
            math.log1p(self.prior),
            math.log1p(self.degree) / 10,
        ]


class CandidateGenerator:
    """The candidates of mentions over a KB's surface forms (see the module docstring).

    Args:
        kb: the knowledge base.
        k: candidates per mention at most.
        fuzzy_cutoff: least ``fuzz.ratio`` (0-100) of a fuzzy match.
    """

    def __init__(self, kb: KnowledgeBase, *, k: int = 16, fuzzy_cutoff: float = 85.0) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.kb, self.k, self.fuzzy_cutoff = kb, k, fuzzy_cutoff
        self.exact: dict[str, set[int]] = defaultdict(set)
        self.stemmed: dict[str, set[int]] = defaultdict(set)
        # word -> (entity, words of the form) of every surface form of two words or more
        self.words: dict[str, list[tuple[int, frozenset[str]]]] = defaultdict(list)
        for entity, forms in enumerate(kb.surface_forms):
            for form in forms:
                key = normalize(form)
                if key:
                    self.exact[key].add(entity)
                    self.stemmed[stem(key)].add(entity)
                    words = key.split()
                    if len(words) > 1:
                        for w in set(words):
                            self.words[w].append((entity, frozenset(words)))
        # fuzzy matching compares keys of the same first character only (spelling variants keep
        # it), a 20x smaller search than all keys
        self.keys: dict[str, list[str]] = defaultdict(list)
        for key in self.exact:
            self.keys[key[0]].append(key)
        self.degree = kb.degree.tolist()
        self.prior: dict[str, Counter[int]] = {}
        self._memo: dict[str, list[Candidate]] = {}

    def set_prior(self, links: Iterable[tuple[str, int]]) -> None:
        """Count ``(mention text, entity)`` links of the training mentions (the alias prior)."""
        prior: dict[str, Counter[int]] = defaultdict(Counter)
        for text, entity in links:
            prior[normalize(text)][entity] += 1
        self.prior = dict(prior)
        self._memo.clear()

    def prior_count(self, text: str, entity: int) -> int:
        """How often ``text``'s key linked to ``entity`` in training."""
        return self.prior.get(normalize(text), Counter())[entity]

    def __call__(self, text: str) -> list[Candidate]:
        """The candidates of the mention ``text``, best first (at most ``k``)."""
        key = normalize(text)
        if key not in self._memo:
            self._memo[key] = self._generate(key)
        return self._memo[key]

    def _generate(self, key: str) -> list[Candidate]:
        from rapidfuzz import fuzz, process

        if not key:
            return []
        counts = self.prior.get(key, Counter())
        out: dict[int, Candidate] = {}

        def add(entities: Iterable[int], source: str, similarity: float) -> None:
            ranked = sorted(entities, key=lambda e: (-counts[e], -self.degree[e], e))
            for e in ranked:
                if e not in out and len(out) < self.k:
                    out[e] = Candidate(e, source, similarity, counts[e], self.degree[e])

        add(self.exact.get(key, ()), "exact", 1.0)
        add(self.stemmed.get(stem(key), ()), "stem", 1.0)
        words = set(key.split())
        # the rarest word's forms, filtered to those holding every word of the mention
        rarest = min(words, key=lambda w: len(self.words.get(w, ())))
        partial: dict[int, float] = {}
        for e, form in self.words.get(rarest, ()):
            if words <= form:
                partial[e] = max(partial.get(e, 0.0), len(words) / len(form))
        for e in sorted(partial, key=lambda e: (-counts[e], -partial[e], -self.degree[e], e)):
            add([e], "partial", partial[e])
        if len(out) < self.k:
            matches = process.extract(
                key, self.keys.get(key[0], []), scorer=fuzz.ratio, limit=4 * self.k,
                score_cutoff=self.fuzzy_cutoff,
            )  # fmt: skip
            scored: dict[int, float] = {}
            for match, score, _ in matches:
                for e in self.exact[match]:
                    scored[e] = max(scored.get(e, 0.0), score / 100)
            for e in sorted(scored, key=lambda e: (-scored[e], -counts[e], -self.degree[e], e)):
                add([e], "fuzzy", scored[e])
        return list(out.values())


def recall_at(candidates: list[list[int]], gold: list[int | None], ks: Iterable[int]) -> dict:
    """``{k: share of mentions whose gold entity is among their first k candidates}`` (a mention
    without a gold entity in the KB counts as a miss; ``None`` without mentions)."""
    out = {}
    for k in ks:
        hits = sum(g is not None and g in c[:k] for c, g in zip(candidates, gold))
        out[k] = hits / len(gold) if gold else None
    return out


def feature_tensor(candidates: list[list[Candidate]], k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Padded tensors of the candidates of ``M`` mentions.

    Returns:
        ``(entities [M, k] long (0 at padding), mask [M, k] bool, features [M, k, NUM_FEATURES])``.
    """
    m = len(candidates)
    entities = torch.zeros(m, k, dtype=torch.long)
    mask = torch.zeros(m, k, dtype=torch.bool)
    features = torch.zeros(m, k, NUM_FEATURES)
    for i, cands in enumerate(candidates):
        for j, c in enumerate(cands[:k]):
            entities[i, j], mask[i, j] = c.entity, True
            features[i, j] = torch.tensor(c.features())
    return entities, mask, features


__all__ = [
    "NUM_FEATURES",
    "SOURCES",
    "Candidate",
    "CandidateGenerator",
    "feature_tensor",
    "normalize",
    "recall_at",
    "stem",
]
