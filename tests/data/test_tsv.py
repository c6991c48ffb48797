from __future__ import annotations

import pytest

from gnnlm.data import DataFormatError, DatasetNotFoundError, load_dataset


def test_auto_discovery_of_csv_files(tmp_path):
    (tmp_path / "train.csv").write_text("a,r,b\nb,r,c\n")
    (tmp_path / "valid.csv").write_text("a,r,c\n")
    (tmp_path / "test.csv").write_text("")
    kg = load_dataset(f"tsv:{tmp_path}")  # comma because every file is .csv; an empty test file
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
        "test": "test.csv",
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
    kg = load_dataset("tsv:kg", data_dir=tmp_path, columns=[1, 0, 2], files={"train": "train.tsv"})
    assert (kg.entities.names, kg.relations.names) == (("dog", "animal"), ("IsA",))


def test_inconsistent_column_count_names_file_and_line(tmp_path):
    (tmp_path / "train.txt").write_text("a\tr\tb\nc\tr\td\te\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}", files={"train": "train.txt"})
    assert (
        str(err.value)
        == f"{tmp_path / 'train.txt'}:2:7: expected 3 columns separated by tabs, found 4 (a triple "
        "file has 3; to read files with more, set num_columns and pick head, relation and tail with "
        "columns): 'c\\tr\\td\\te'"
    )


def test_missing_header_column(tmp_path):
    (tmp_path / "train.csv").write_text("h,r,t\na,r,b\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(
            f"tsv:{tmp_path}", header=True, columns=["head", "r", "t"], files={"train": "train.csv"}
        )
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
    with pytest.raises(DatasetNotFoundError, match="no train or test file"):
        load_dataset(f"tsv:{tmp_path}")


def test_empty_training_file(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert str(err.value) == f"{tmp_path / 'train.txt'}: the training file holds no triples"


def test_bad_config(tmp_path):
    (tmp_path / "train.txt").write_text("a\tr\tb\n")
    with pytest.raises(ValueError, match="columns by name .* need header=true"):
        load_dataset(f"tsv:{tmp_path}", columns=["h", "r", "t"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'delimeter'"):
        load_dataset(f"tsv:{tmp_path}", delimeter=",")


# -- nothing dropped silently (issue 8) -------------------------------------------------------------
def splits(folder, train="a\tr\tb\nb\tr\tc\n", valid="a\tr\tc\n", test="b\tr\ta\n", ext=".txt"):
    folder.mkdir(exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        if text is not None:
            (folder / f"{split}{ext}").write_text(text, encoding="utf-8")
    return folder


def test_header_true_on_a_file_without_header_is_an_error(tmp_path):
    splits(tmp_path)
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}", header=True)
    assert str(err.value).startswith(
        f"{tmp_path / 'train.txt'}:1: header=true, but the first line looks like a triple: its "
        f"tail 'b' is also an entity at {tmp_path / 'train.txt'}:2; header=false reads it as data"
    )


def test_header_true_on_one_file_without_header_is_an_error(tmp_path):
    head = "head\trel\ttail\n"
    splits(tmp_path, head + "a\tr\tb\nb\tr\tc\n", head + "a\tr\tc\n", "b\tr\ta\n")
    with pytest.raises(DataFormatError, match="first line differs from the header of train.txt"):
        load_dataset(f"tsv:{tmp_path}", header=True)


def test_a_real_header_is_skipped_and_recorded(tmp_path):
    head = "subject\tpredicate\tobject\n"
    splits(tmp_path, head + "a\tr\tb\nb\tr\tc\n", head + "a\tr\tc\n", head + "b\tr\ta\n")
    kg = load_dataset(f"tsv:{tmp_path}", header=True)
    assert kg.statistics()["num_train"] == 2 and "subject" not in kg.entities
    assert kg.extra["header"] == head.strip()


@pytest.mark.parametrize("kind", ["dangling", "loop", "folder"])
def test_a_broken_split_file_is_named_not_skipped(tmp_path, kind):
    splits(tmp_path, test=None)
    if kind == "dangling":
        (tmp_path / "test.txt").symlink_to(tmp_path / "elsewhere.txt")
    elif kind == "loop":
        (tmp_path / "test.txt").symlink_to(tmp_path / "test.txt")
    else:
        (tmp_path / "test.txt").mkdir()
    expected = {
        "dangling": f"a symbolic link to a file that does not exist (-> {tmp_path / 'elsewhere.txt'})",
        "loop": f"a symbolic link that loops (-> {tmp_path / 'test.txt'})",
        "folder": "not a regular file",
    }[kind]
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert str(err.value) == f"{tmp_path / 'test.txt'}: {expected}"


def test_a_broken_required_file_of_a_registered_dataset_is_named(tmp_path):
    folder = splits(tmp_path / "nations", test=None)
    (folder / "test.txt").symlink_to(folder / "gone.txt")
    with pytest.raises(DatasetNotFoundError, match="test.txt: a symbolic link to a file that does"):
        load_dataset("nations", data_dir=tmp_path)


def test_a_fourth_column_is_an_error_unless_asked_for(tmp_path):
    splits(tmp_path, test="b\tr\ta\t0.5\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert str(err.value).startswith(
        f"{tmp_path / 'test.txt'}:1:7: expected 3 columns separated by tabs, found 4"
    )
    assert (err.value.line, err.value.column) == (1, 7)
    splits(tmp_path, "a\tr\tb\t1\nb\tr\tc\t2\n", "a\tr\tc\t3\n", "b\tr\ta\t4\n")
    kg = load_dataset(f"tsv:{tmp_path}", num_columns=4)  # extra columns on purpose
    assert kg.statistics()["num_test"] == 1


def test_a_missing_valid_file_is_an_error_naming_the_folder_and_its_files(tmp_path):
    splits(tmp_path, valid=None)
    (tmp_path / "dev.txt").write_text("a\tr\tc\n")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert str(err.value) == (
        f"{tmp_path}: no valid file (looked for valid.txt, valid.tsv, valid.csv; the folder holds "
        "dev.txt, test.txt, train.txt). Name the files with files={train: ..., valid: ..., test: "
        "...}; a dataset without a valid split names only the files it has: "
        "files={train: train.txt, test: test.txt}"
    )
    kg = load_dataset(f"tsv:{tmp_path}", files={"train": "train.txt", "test": "test.txt"})
    assert kg.statistics()["num_valid"] == 0 and kg.statistics()["num_test"] == 1
    kg = load_dataset(f"tsv:{tmp_path}", files={"train": "train.txt", "valid": "dev.txt"})
    assert kg.statistics()["num_valid"] == 1


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    splits(tmp_path)
    (tmp_path / "train.txt").write_text("a\tr\tb\nb\tr\tc\n", encoding="utf-8-sig")
    kg = load_dataset(f"tsv:{tmp_path}")
    assert kg.entities.names[0] == "a"


def test_quoted_csv_fields_lose_their_quotes(tmp_path):
    train = '"New York, NY",located in,USA\n"a ""b""",r,USA\n'
    splits(tmp_path, train, '"New York, NY",located in,USA\n', "USA,r,USA\n", ext=".csv")
    kg = load_dataset(f"tsv:{tmp_path}")
    assert kg.entities.names == ("New York, NY", "USA", 'a "b"')
    assert kg.relations.names == ("located in", "r")
    (tmp_path / "test.csv").write_text('USA,r,"USA\n')
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"tsv:{tmp_path}")
    assert str(err.value) == f"{tmp_path / 'test.csv'}:1:7: unterminated quote: 'USA,r,\"USA'"
    literal = splits(
        tmp_path / "literal", 'USA,r,"USA"\n', "USA,r,USA\n", "USA,r,USA\n", ext=".csv"
    )
    kg = load_dataset(f"tsv:{literal}", quotechar=None)  # read quotes as part of the names
    assert kg.entities.names == ("USA", '"USA"')
