from __future__ import annotations

import re

import pytest

from gnnlm.data import load_dataset
from gnnlm.data.errors import DataFormatError
from tests.data.conftest import TINY, write_split_files


def names(kg, split):
    return [
        (kg.entities.name(h), kg.relations.name(r), kg.entities.name(t))
        for h, r, t in kg.splits[split].tolist()
    ]


@pytest.fixture
def tiny_dir(tmp_path):
    return write_split_files(tmp_path / "tiny", TINY)


def test_default_keeps_everything_and_reports(tiny_dir):
    kg = load_dataset(f"tsv:{tiny_dir}")
    for split in ("train", "valid", "test"):
        assert names(kg, split) == TINY[split]  # nothing lost, order kept
    # ids in order of first appearance, train first: the test-only entity comes last
    assert kg.entities.names == ("a", "b", "c", "d", "e")
    assert kg.extra["unseen_triples"] == {"valid": 0, "test": 1}
    assert kg.extra["unseen_entities"] == 1
    assert kg.extra["duplicate_triples"] == {"train": 1, "valid": 0, "test": 0}
    assert kg.extra["overlapping_triples"] == {"valid": 0, "test": 1}
    assert kg.extra["dropped_triples"] == {"train": 0, "valid": 0, "test": 0}
    assert kg.extra["source_lines"] == {"train": 5, "valid": 1, "test": 2}


def test_unseen_drop_removes_triple_and_entity(tiny_dir):
    kg = load_dataset(f"tsv:{tiny_dir}", unseen="drop")
    assert "e" not in kg.entities and kg.num_entities == 4
    assert names(kg, "test") == [("c", "hates", "a")]
    assert kg.extra["unseen_triples"]["test"] == 1
    assert kg.extra["dropped_triples"]["test"] == 1


def test_unseen_error_names_file_line_value(tiny_dir):
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tiny_dir}", unseen="error")
    assert (
        str(err.value)
        == f"{tiny_dir / 'test.txt'}:1: tail entity never occurs in the training split: 'e'"
    )


def test_unseen_relation_is_caught(tmp_path):
    folder = write_split_files(
        tmp_path / "k", {"train": [("a", "r", "b")], "valid": [("a", "s", "b")], "test": []}
    )
    with pytest.raises(
        DataFormatError,
        match=re.escape("valid.txt:1: relation never occurs in the training split: 's'"),
    ):
        load_dataset(f"tsv:{folder}", unseen="error")


def test_duplicates_drop(tiny_dir):
    kg = load_dataset(f"tsv:{tiny_dir}", duplicates="drop")
    assert names(kg, "train") == [t for i, t in enumerate(TINY["train"]) if i != 3]
    assert names(kg, "test") == [("b", "likes", "e")]  # the copy of a train triple is gone
    assert kg.extra["dropped_triples"] == {"train": 1, "valid": 0, "test": 1}


def test_duplicates_error_points_to_both_lines(tiny_dir):
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tiny_dir}", duplicates="error")
    train = tiny_dir / "train.txt"
    assert str(err.value) == f"{train}:4: duplicate triple (first at {train}:1): 'a\\tlikes\\tb'"


def test_bad_policy_value(tiny_dir):
    with pytest.raises(ValueError, match="unseen='ignore': expected one of keep, drop, error"):
        load_dataset(f"tsv:{tiny_dir}", unseen="ignore")


def test_ids_match_brute_force(tiny_dir):
    kg = load_dataset(f"tsv:{tiny_dir}")
    for split in ("train", "valid", "test"):
        expected = [
            [kg.entities.id(h), kg.relations.id(r), kg.entities.id(t)] for h, r, t in TINY[split]
        ]
        assert kg.splits[split].tolist() == expected
