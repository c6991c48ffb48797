"""ConceptNet as the graph of commonsense QA: the union of the CN-100K and CN-82K training triples.

QA-GNN grounds CommonsenseQA in the full ConceptNet 5 English graph (799k nodes); the local copy holds the
two standard completion subsets instead (``$GNNLM_DATA_DIR/conceptnet``, ``relation<TAB>head<TAB>tail``,
free-text English nodes such as ``"rest area"``). Their union has about 78k distinct concepts. Only the
*training* triples are read: valid/test of the completion benchmarks add little and would make the
graph depend on another task's evaluation split.

A concept's text is its node string with underscores as spaces (ConceptNet's URI form ``ice_cream``;
these files already use spaces), which is what grounding matches and what ``node_features: text``
encodes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gnnlm.data.build import RawTriples, build_knowledge_graph, read_triples
from gnnlm.data.errors import DataError
from gnnlm.data.schema import EntityText

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

#: the subsets whose training triples make the graph
DEFAULT_SUBSETS: tuple[str, ...] = ("CN-100K", "CN-82K")


def concept_text(node: str) -> str:
    """The readable text of a ConceptNet node string (``"ice_cream"`` -> ``"ice cream"``)."""
    return " ".join(node.replace("_", " ").split())


def load_conceptnet(
    folder: str | os.PathLike, subsets: Sequence[str] = DEFAULT_SUBSETS
) -> KnowledgeGraph:
    """A :class:`~gnnlm.data.KnowledgeGraph` of the union of ``subsets``' ``train.txt`` triples.

    A triple present in several subsets is kept once (``kg.extra["duplicate_triples"]`` and
    ``"overlapping_triples"`` count the repeats dropped). Entity names are :func:`concept_text`.

    Args:
        folder: the ``conceptnet`` folder (one sub-folder per subset).
        subsets: sub-folder names, e.g. ``["CN-100K", "CN-82K"]``.

    Raises:
        DataError: a subset folder without ``train.txt``.
        DataFormatError: a malformed line (file and line named).
    """
    folder = Path(folder)
    if not subsets:
        raise DataError(f"{folder}: no ConceptNet subsets given")
    parts = []
    for subset in subsets:
        path = folder / subset / "train.txt"
        if not path.is_file():
            raise DataError(f"{path}: no such file (ConceptNet subset {subset!r} in {folder})")
        parts.append(read_triples(path, columns=(1, 0, 2)))  # relation, head, tail on disk
    kg = build_knowledge_graph(
        {"train": RawTriples.concat(parts)},
        name="conceptnet/" + "+".join(subsets),
        duplicates="drop",
        extra={"subsets": list(subsets)},
    )
    kg.entity_text = EntityText(names=[concept_text(n) for n in kg.entities.names])
    return kg
