"""Linking a nominal to a WordNet synset through WN18RR's synset names.

WN18RR's ``entity2text.txt`` names each synset by one lemma (``"stool, solid excretory product ..."``:
name ``stool``; KG-BERT's text), lower-case, with spaces in multi-word names (``"mountain peak"``). A
nominal is tokenised and lemmatised as in QA grounding
(:mod:`gnnlm.tasks.multiple_choice.grounding`: lower-cased words, simplemma's English lemmas) and looked up
in this order, the first hit winning:

1. ``exact``: its words are a synset name (``"Mountain peak"`` -> ``mountain peak``);
2. ``lemma``: its lemmas are the lemmas of a name (``"elements"`` -> ``element``);
3. ``head``: a multi-word nominal's last word, the head of an English base NP, as a name
   (``"student association"`` -> ``association``);
4. ``head_lemma``: that word's lemma (``"antenna elements"`` -> ``element``).

A name shared by several synsets (``run``: 33 in WN18RR, nouns and verbs alike; the ids carry no part of
speech) is resolved to the synset with the most edges in the training graph, a stand-in for WordNet's
sense frequency (the most frequent sense is a strong word-sense baseline), then the lowest id.

::

    linker = WordNetLinker(kg.entity_text.names, degree)
    linker.link("Dogs")        # Link(entity=<id of dog>, how="lemma")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gnnlm.tasks.multiple_choice.grounding import english_lemmatizer, tokenize

#: how a nominal was linked, in the order tried (``None``: not linked)
HOW: tuple[str, ...] = ("exact", "lemma", "head", "head_lemma")


@dataclass(frozen=True)
class Link:
    """A nominal's synset: ``entity`` (an id of the graph, ``None`` when not linked) and ``how`` (one
    of :data:`HOW`, ``None`` when not linked)."""

    entity: int | None
    how: str | None


class WordNetLinker:
    """Links nominals to synsets by name (see the module docstring).

    Args:
        names: the synset names, indexed by entity id (``None`` for an entity without one).
        degree: edges per entity (ranks the synsets sharing a name; higher first).
        lemmatize: ``word -> lemma`` (default simplemma's English lemmatiser).
    """

    def __init__(
        self,
        names: Sequence[str | None],
        degree: Sequence[int],
        *,
        lemmatize: Callable[[str], str] | None = None,
    ) -> None:
        if len(names) != len(degree):
            raise ValueError(f"{len(names)} names but {len(degree)} degrees")
        self.lemmatize = lemmatize or english_lemmatizer()
        surface: dict[str, list[int]] = {}
        lemmas: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            words = [w for _, _, w in tokenize(name or "")]
            if not words:
                continue
            surface.setdefault(" ".join(words), []).append(i)
            lemmas.setdefault(" ".join(self.lemmatize(w) for w in words), []).append(i)

        def best(ids: list[int]) -> int:
            return min(ids, key=lambda i: (-int(degree[i]), i))

        self.surface = {key: best(ids) for key, ids in surface.items()}
        self.lemmas = {key: best(ids) for key, ids in lemmas.items()}

    def link(self, nominal: str) -> Link:
        """The synset of ``nominal`` (a word or a base NP), or ``Link(None, None)``."""
        words = [w for _, _, w in tokenize(nominal)]
        if not words:
            return Link(None, None)
        tries = [
            ("exact", self.surface, " ".join(words)),
            ("lemma", self.lemmas, " ".join(self.lemmatize(w) for w in words)),
        ]
        if len(words) > 1:
            tries += [("head", self.surface, words[-1]),
                      ("head_lemma", self.lemmas, self.lemmatize(words[-1]))]  # fmt: skip
        for how, index, key in tries:
            entity = index.get(key)
            if entity is not None:
                return Link(entity, how)
        return Link(None, None)


def link_counts(links: Sequence[Link]) -> dict[str, float | int]:
    """``{"nominals", "linked", "share", "<how>": n for each of HOW}`` of a split's nominal links."""
    n = len(links)
    linked = sum(link.entity is not None for link in links)
    out: dict[str, float | int] = {
        "nominals": n,
        "linked": linked,
        "share": linked / n if n else 0.0,
    }
    for how in HOW:
        out[how] = sum(link.how == how for link in links)
    return out
