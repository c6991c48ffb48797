from __future__ import annotations

import pytest

from gnnlm.data import DataFormatError, DatasetNotFoundError, load_dataset


def test_auto_discovery_of_csv_files(tmp_path):
    (tmp_path / "train.csv").write_text("a,r,b\nb,r,c\n")
    (tmp_path / "valid.csv").write_text("a,r,c\n")
    kg = load_dataset(f"tsv:{tmp_path}")  # comma because every file is .csv; no test file
    assert kg.statistics() == {
        "num_entities": 3,
        "num_relations": 1,
        "num_train": 2,
        "num_valid": 1,
        "num_test": 0,
    }
    assert kg.extra["delimiter"] == "," and kg.extra["files"] == {
        "train": "train.csv",
        "valid": "valid.csv",
    }
    assert kg.name == tmp_path.name


def test_config_with_header_names_and_column_order(tmp_path):
    (tmp_path / "edges_train.csv").write_text("relation;object;subject\nr1;b;a\nr2;c;b\n")
    (tmp_path / "edges_test.csv").write_text("relation;object;subject\nr1;c;a\n")
    (tmp_path / "names.tsv").write_text("a\tAlice\nb\tBob\n")
    config = {
        "files": {"train": "edges_train.csv", "test": "edges_test.csv"},
        "delimiter": ";",
        "header": True,
        "columns": ["subject", "relation", "object"],
        "entity_text": "names.tsv",
        "name": "mine",
    }
    kg = load_dataset(f"tsv:{tmp_path}", **config)
    triples = [
        (kg.entities.name(h), kg.relations.name(r), kg.entities.name(t))
        for h, r, t in kg.train.tolist()
    ]
    assert triples == [("a", "r1", "b"), ("b", "r2", "c")]
    assert kg.name == "mine" and kg.entity_label(0) == "Alice" and kg.entity_label(2) == "c"
    assert kg.extra["entities_without_name"] == 1
    # the same through the "tsv" name with path as an option (YAML dataset_kwargs)
    again = load_dataset("tsv", path=str(tmp_path), **config)
    assert again.train.tolist() == kg.train.tolist()


def test_index_columns_and_relative_path(tmp_path):
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.tsv").write_text("IsA\tdog\tanimal\n")
    kg = load_dataset("tsv:kg", data_dir=tmp_path, columns=[1, 0, 2])
    assert (kg.entities.names, kg.relations.names) == (("dog", "animal"), ("IsA",))


def test_inconsistent_column_count_names_file_and_line(tmp_path):
    (tmp_path / "train.txt").write_text("a\tr\tb\nc\tr\td\te\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert (
        str(err.value)
        == f"{tmp_path / 'train.txt'}:2: expected 3 columns separated by tabs, found 4: 'c\\tr\\td\\te'"
    )


def test_missing_header_column(tmp_path):
    (tmp_path / "train.csv").write_text("h,r,t\na,r,b\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}", header=True, columns=["head", "r", "t"])
    assert str(err.value) == f"{tmp_path / 'train.csv'}:1: header has no column 'head': 'h,r,t'"


def test_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(f"tsv:{tmp_path / 'nope'}")
    assert str(err.value) == f"{tmp_path / 'nope'}: no such folder"
    (tmp_path / "train.txt").write_text("a\tr\tb\n")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(f"tsv:{tmp_path}", files={"train": "train.txt", "test": "test.txt"})
    assert str(err.value) == f"{tmp_path / 'test.txt'}: file not found"
    (tmp_path / "train.txt").unlink()
    (tmp_path / "valid.txt").write_text("a\tr\tb\n")
    with pytest.raises(DatasetNotFoundError, match="no train file"):
        load_dataset(f"tsv:{tmp_path}")


def test_empty_training_file(tmp_path):
    (tmp_path / "train.txt").write_text("")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert str(err.value) == f"{tmp_path / 'train.txt'}: the training file holds no triples"


def test_bad_config(tmp_path):
    (tmp_path / "train.txt").write_text("a\tr\tb\n")
    with pytest.raises(ValueError, match="columns by name .* need header=true"):
        load_dataset(f"tsv:{tmp_path}", columns=["h", "r", "t"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'delimeter'"):
        load_dataset(f"tsv:{tmp_path}", delimeter=",")
