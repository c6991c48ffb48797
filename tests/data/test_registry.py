"""``get_dataset``: a registered name, ``tsv:DIR``, a dotted path, a class or an instance."""

from __future__ import annotations

import pytest

from gnnlm.data import dataset_names, dataset_resolver, get_dataset
from gnnlm.data.conve_format import UMLSDataset
from gnnlm.data.tsv import TSVDataset


def test_every_form_gives_a_dataset(tmp_path):
    assert type(get_dataset("UMLS")) is UMLSDataset
    assert type(get_dataset("gnnlm.data.conve_format:UMLSDataset", verify=False)) is UMLSDataset
    assert type(get_dataset(UMLSDataset)) is UMLSDataset
    instance = UMLSDataset()
    assert get_dataset(instance) is instance
    assert type(get_dataset(f"tsv:{tmp_path}")) is TSVDataset  # a folder, never an import


def test_registry_keys_are_the_dataset_names():
    assert [dataset_resolver.normalize(name) for name in dataset_names()] == list(
        dataset_resolver.lookup_dict
    )


def test_unknown_names_and_bad_paths_are_named():
    with pytest.raises(ValueError, match="unknown dataset 'umls2'; known: fb15k-237, .*tsv:DIR"):
        get_dataset("umls2")
    with pytest.raises(ImportError, match="cannot import module 'no_such_pkg'"):
        get_dataset("no_such_pkg:MyKG")
    with pytest.raises(TypeError, match="not a subclass of Dataset"):
        get_dataset("gnnlm.data.schema:EntityText")
