from __future__ import annotations

import pytest

from gnnlm.data import Vocabulary


def test_round_trip_both_directions():
    names = ["/m/0abc", "dog", "Mich\u00e8le Mercier", "a b"]
    vocab = Vocabulary(names)
    assert [vocab.id(n) for n in names] == [0, 1, 2, 3]
    assert [vocab.name(i) for i in range(len(vocab))] == names
    assert vocab.names == tuple(names) and list(vocab) == names
    assert vocab.ids(reversed(names)) == [3, 2, 1, 0]
    assert Vocabulary(vocab.names) == vocab


def test_add_is_idempotent_and_appends():
    vocab = Vocabulary()
    assert [vocab.add(n) for n in ["x", "y", "x", "z"]] == [0, 1, 0, 2]
    assert len(vocab) == 3 and "y" in vocab and "w" not in vocab


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate name in vocabulary: 'x'"):
        Vocabulary(["x", "y", "x"])


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown name 'w'"):
        Vocabulary(["x"]).id("w")


def test_real_vocabulary_round_trip(real_data_dir):
    from gnnlm.data import load_dataset

    kg = load_dataset("fb15k-237")
    for vocab in (kg.entities, kg.relations):
        assert all(vocab.id(vocab.name(i)) == i for i in range(len(vocab)))
    assert kg.entities.name(int(kg.train[0, 0])) == "/m/027rn"  # first line of train.txt
    assert kg.relations.name(int(kg.train[0, 1])) == "/location/country/form_of_government"
