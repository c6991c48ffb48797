"""Training mentions generated from the KB's own names and descriptions.

The real training files are small (OKE 2015 + 2016 train: about 1,200 mentions with a Wikidata id,
fewer in FB15k-237), so training adds one short document per sampled entity ``e``: its text
``"<name of e>: <description of e>"`` (``"Denton: city in Texas, United States"``) with

* the name at the start, linked to ``e`` itself (the label in its own description: the model learns
  which of the entities sharing a name the description fits);
* the names found in the description by :func:`~gnnlm.tasks.entity_linking.detection.detect_mentions`
  (``Texas``, ``United States``), each linked to the one entity with that name that is a KG neighbour
  of ``e``. A name with no such neighbour, or several, is left unlinked (counted as
  ``ambiguous_or_unrelated``): its gold entity is unknown.

Caveat: the second kind of label is chosen *by* the graph (the neighbour of ``e``), so these documents
are coherent by construction; they are training data only, never validation or test.
"""

from __future__ import annotations

import random
from collections import Counter

from gnnlm.tasks.entity_linking.candidates import CandidateGenerator, normalize, stem
from gnnlm.tasks.entity_linking.detection import detect_mentions
from gnnlm.tasks.entity_linking.kb import KnowledgeBase
from gnnlm.tasks.entity_linking.reader import Document, GoldMention


def generate_documents(
    kb: KnowledgeBase, generator: CandidateGenerator, *, num_documents: int, seed: int = 0
) -> tuple[list[Document], dict[str, int]]:
    """``num_documents`` documents of entities drawn with ``seed`` among those with a description and
    a Wikidata id (all of them when there are fewer), and their counts: ``entities_eligible``,
    ``documents``, ``own_name_mentions``, ``description_mentions`` (linked), ``ambiguous_or_unrelated``
    (names found but not linked)."""
    eligible = [e for e in range(kb.num_entities) if kb.descriptions[e] and kb.qids[e]]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(eligible, min(num_documents, len(eligible))))
    counts: Counter[str] = Counter(entities_eligible=len(eligible))
    documents = []
    for e in chosen:
        name = kb.names[e]
        prefix = f"{name}: "
        text = prefix + kb.descriptions[e]
        mentions = [GoldMention(0, len(name), kb.qids[e], "qid")]
        counts["own_name_mentions"] += 1
        for start, end in detect_mentions(kb.descriptions[e], generator):
            key = normalize(kb.descriptions[e][start:end])
            named = generator.exact.get(key, set()) | generator.stemmed.get(stem(key), set())
            linked = [n for n in named if n in kb.neighbours[e] and kb.qids[n]]
            if len(linked) != 1:
                counts["ambiguous_or_unrelated"] += 1
                continue
            offset = len(prefix)
            mentions.append(GoldMention(offset + start, offset + end, kb.qids[linked[0]], "qid"))
            counts["description_mentions"] += 1
        documents.append(Document(f"kb:{kb.identifiers[e]}", text, mentions, f"kb:{e}"))
    counts["documents"] = len(documents)
    keys = ("entities_eligible", "documents", "own_name_mentions", "description_mentions",
            "ambiguous_or_unrelated")  # fmt: skip
    return documents, {k: counts[k] for k in keys}


__all__ = ["generate_documents"]
