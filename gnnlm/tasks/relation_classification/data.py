"""The prepared data of a relation-classification run: splits, marked sentences and WordNet links.

Reads the SemEval files (:mod:`.reader`), holds out the validation split (:mod:`.config`), wraps each
sentence's nominals in markers (:mod:`.markers`) and links each nominal to a WN18RR synset
(:mod:`.linking`). Every sentence becomes a :class:`RelationItem`: the marked text as a
:class:`~gnnlm.fusion.TextGraphExample` whose mentions are the linked nominals (each with its two
markers, so entity injection reaches the start-marker tokens the head reads) and the characters of the
two start markers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gnnlm.config import ConfigError
from gnnlm.fusion import TextGraphExample
from gnnlm.tasks.relation_classification.linking import Link, WordNetLinker, link_counts
from gnnlm.tasks.relation_classification.markers import insert_markers
from gnnlm.tasks.relation_classification.reader import (
    RelationExample,
    example_counts,
    read_examples,
)

#: prepared data of recent runs in this process (see RelationData.shared); two entries at most
_SHARED: dict[str, RelationData] = {}


@dataclass
class RelationItem:
    """One sentence ready to collate.

    Attributes:
        example: the marked text, the linked nominals as mentions and the label id.
        starts: characters of the e1 and the e2 start marker in ``example.text``.
        links: the e1 and the e2 :class:`~.linking.Link`.
        source: the sentence as read.
    """

    example: TextGraphExample
    starts: tuple[int, int]
    links: tuple[Link, Link]
    source: RelationExample


def make_item(example: RelationExample, linker: WordNetLinker, markers: list[str]) -> RelationItem:
    """The :class:`RelationItem` of one sentence (its nominals marked and linked)."""
    marked = insert_markers(example.sentence, example.e1, example.e2, markers)
    links = (linker.link(example.e1_text), linker.link(example.e2_text))
    mentions = [
        (start, end, link.entity)
        for (start, end), link in zip(marked.spans, links)
        if link.entity is not None
    ]
    text_example = TextGraphExample(marked.text, mentions, label=example.label, id=example.source)
    return RelationItem(text_example, marked.starts, links, example)


class RelationData:
    """The prepared data of a run (see the module docstring).

    Args:
        config: the run (``data:`` is read; ``at()`` locates errors).
        kg: the WordNet graph (WN18RR) with synset names.

    Attributes:
        items: ``{"train" | "valid" | "test": [RelationItem, ...]}``.
        counts: ``files`` (per file: :func:`~.reader.example_counts`), ``splits`` (sentences per split)
            and ``linking`` (per split: :func:`~.linking.link_counts` of its 2 nominals per sentence).
    """

    def __init__(self, config: Any, kg: Any) -> None:
        self.config, self.kg = config, kg
        d = config.data
        if kg.entity_text is None or not kg.entity_text.names:
            raise ConfigError(
                f"{kg.name}: relation classification needs synset names (entity_text)"
            )
        files = d.files()
        train, test = read_examples(files["train"]), read_examples(files["test"])
        self.counts: dict[str, Any] = {
            "files": {str(files["train"]): example_counts(train),
                      str(files["test"]): example_counts(test)},
        }  # fmt: skip
        if d.valid_size >= len(train):
            raise ConfigError(
                f"{config.at('data.valid_size')}data.valid_size={d.valid_size} leaves none of the "
                f"{len(train)} sentences of {files['train']} to train on"
            )
        order = list(range(len(train)))
        random.Random(d.split_seed).shuffle(order)
        splits = {
            "train": [train[i] for i in order[d.valid_size :]],
            "valid": [train[i] for i in order[: d.valid_size]],
            "test": test,
        }
        for split, limit in (("train", d.num_train), ("valid", d.num_valid), ("test", d.num_test)):
            if limit:
                splits[split] = splits[split][:limit]
        self.counts["splits"] = {s: len(x) for s, x in splits.items()}
        edges = kg.train[:, [0, 2]].reshape(-1)  # both ends of every training edge
        degree = torch.bincount(edges, minlength=kg.num_entities)  # [num_entities]
        self.linker = WordNetLinker(kg.entity_text.names, degree.tolist())
        self.items = {
            s: [make_item(x, self.linker, list(d.markers)) for x in examples]
            for s, examples in splits.items()
        }
        self.counts["linking"] = {
            s: link_counts([link for item in items for link in item.links])
            for s, items in self.items.items()
        }

    @classmethod
    def shared(cls, config: Any, kg: Any) -> RelationData:
        """The instance of an earlier run of this process with the same ``data:``, graph and unchanged
        files, else a new one."""
        files = {k: str(v) for k, v in config.data.files().items()}
        stamps = {k: [Path(v).stat().st_size, Path(v).stat().st_mtime_ns] for k, v in files.items()}
        key = json.dumps(
            [config.data.to_dict(), files, stamps, kg.name, kg.num_entities, id(kg)], sort_keys=True
        )
        if key not in _SHARED:
            while len(_SHARED) >= 2:
                _SHARED.pop(next(iter(_SHARED)))
            _SHARED[key] = cls(config, kg)
        return _SHARED[key]
