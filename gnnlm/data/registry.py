"""The dataset registry and :func:`load_dataset`, the one entry point of the data layer.

``load_dataset("fb15k-237")`` looks the name up in :data:`dataset_resolver` (a
:class:`~gnnlm.utils.registry.DottedPathResolver`; names are matched case- and hyphen-insensitively),
finds the files (explicit ``data_dir``, ``$GNNLM_DATA_DIR``, the user cache, then a download; see
:mod:`gnnlm.data.sources`), parses them strictly and caches the processed graph. ``"tsv:/path/to/dir"``
loads a user's own files.

A user's own :class:`~gnnlm.data.dataset.Dataset` subclass is found by its ``name`` only after
``dataset_resolver.register(MyDataset)``; its dotted path ``"mypkg.kgs:MyDataset"`` always works.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gnnlm.data.conceptnet import ConceptNetDataset
from gnnlm.data.conve_format import (
    FB15k237Dataset,
    KinshipDataset,
    NationsDataset,
    UMLSDataset,
    WN18RRDataset,
)
from gnnlm.data.dataset import Dataset
from gnnlm.data.metaqa import MetaQADataset
from gnnlm.data.ogb import OGBLBioKGDataset, OGBLWikiKG2Dataset
from gnnlm.data.tsv import TSVDataset
from gnnlm.utils.registry import DottedPathResolver

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

#: every registered dataset, by its ``name``
dataset_resolver: DottedPathResolver[Dataset] = DottedPathResolver(
    [
        FB15k237Dataset,
        WN18RRDataset,
        UMLSDataset,
        KinshipDataset,
        NationsDataset,
        ConceptNetDataset,
        MetaQADataset,
        OGBLBioKGDataset,
        OGBLWikiKG2Dataset,
    ],
    base=Dataset,
    suffix="Dataset",
    name_attribute="name",
)


def dataset_names() -> list[str]:
    """The registered datasets' names, in registration order."""
    return [cls.name for cls in dataset_resolver]


def get_dataset(name: str | Dataset | type[Dataset], /, **options) -> Dataset:
    """A dataset object for ``name``: a registered name, ``tsv:DIR``, ``"pkg.mod:MyDataset"``, a class or
    an instance."""
    if isinstance(name, Dataset):
        if options:
            raise TypeError("options cannot be combined with a Dataset instance")
        return name
    if isinstance(name, type):
        return name(**options)
    if name.startswith("tsv:"):
        return TSVDataset(path=name[len("tsv:") :], **options)
    if name == "tsv":  # path given as an option (YAML configs)
        return TSVDataset(**options)
    try:
        cls = dataset_resolver.lookup(name)
    except (KeyError, ValueError):
        known = ", ".join(dataset_names() + ["tsv:DIR"])
        raise ValueError(f"unknown dataset {name!r}; known: {known}") from None
    try:
        return cls(**options)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from None


def load_dataset(
    name: str | Dataset | type[Dataset], /, data_dir: str | os.PathLike | None = None, **options
) -> KnowledgeGraph:
    """Load a knowledge graph by name.

    Args:
        name: ``fb15k-237``, ``wn18rr``, ``umls``, ``kinship``, ``nations``, ``conceptnet``,
            ``metaqa``, ``ogbl-biokg``, ``ogbl-wikikg2``, ``tsv:/path/to/dir``, a dotted path
            ``"pkg.mod:MyDataset"``, or a :class:`~gnnlm.data.dataset.Dataset` class or instance.
        data_dir: a folder holding the dataset's folder (or the dataset folder itself); default:
            ``$GNNLM_DATA_DIR``, then the user cache, then a download.
        **options: dataset options: ``unseen``, ``duplicates``, ``verify``, ``download``, ``cache``
            for all; more per dataset (``subset`` for ConceptNet, ``files``/``columns``/``delimiter``
            for ``tsv:``).

    Returns:
        The graph; ``kg.extra`` holds what the loader found (unseen, duplicate, dropped counts, the
        folder it read and whether it came from the processed cache).

    Raises:
        DatasetNotFoundError: no local copy and no download possible.
        DataFormatError: a malformed file; the message names file, line and value.
    """
    return get_dataset(name, **options).load(data_dir)
