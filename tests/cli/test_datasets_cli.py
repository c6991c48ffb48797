from __future__ import annotations

import json
import os

import pytest

from gnnlm.cli import main
from gnnlm.data import dataset_names


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path_factory.mktemp("cli-cache")))


@pytest.fixture
def kg_dir(tmp_path):
    folder = tmp_path / "mykg"
    folder.mkdir()
    (folder / "train.txt").write_text("a\tr\tb\nb\tr\tc\na\tr\tb\n")
    (folder / "valid.txt").write_text("a\tr\tc\n")
    (folder / "test.txt").write_text("c\ts\td\n")
    return folder


def test_json_for_a_tsv_folder(kg_dir, capsys):
    assert main(["datasets", f"tsv:{kg_dir}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {
        k: info[k] for k in ("num_entities", "num_relations", "num_train", "num_valid", "num_test")
    } == {
        "num_entities": 4,
        "num_relations": 2,
        "num_train": 3,
        "num_valid": 1,
        "num_test": 1,
    }
    assert info["unseen_triples"] == {"valid": 0, "test": 1}
    assert info["duplicate_triples"] == {"train": 1, "valid": 0, "test": 0}
    assert info["path"] == str(kg_dir)


def test_options_reach_the_loader(kg_dir, capsys):
    assert (
        main(["datasets", f"tsv:{kg_dir}", "--json", "-o", "unseen=drop", "-o", "duplicates=drop"])
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert (info["num_train"], info["num_test"], info["num_entities"]) == (2, 0, 3)
    assert info["dropped_triples"] == {"train": 1, "valid": 0, "test": 1}


def test_text_report(kg_dir, capsys):
    assert main(["datasets", f"tsv:{kg_dir}"]) == 0
    out = capsys.readouterr().out
    assert "entities 4  relations 2  train 3  valid 1  test 1" in out
    assert "unseen triples: valid 0, test 1" in out and "duplicate triples: train 1" in out


def test_bad_input_exits_nonzero_with_file_and_line(kg_dir, capsys):
    (kg_dir / "valid.txt").write_text("a\tr\tc\na\tr\n")
    assert main(["datasets", f"tsv:{kg_dir}", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"gnnlm datasets: {kg_dir / 'valid.txt'}:2")
    assert captured.err.endswith(": 'a\\tr'\n") and captured.err.count("\n") == 1


def test_unknown_dataset(capsys):
    assert main(["datasets", "fb15k", "--json"]) == 2
    assert (
        "gnnlm datasets: unknown dataset 'fb15k'; known: fb15k-237, wn18rr"
        in capsys.readouterr().err
    )


def test_listing_names_every_dataset_and_never_downloads(tmp_path, monkeypatch, capsys):
    from gnnlm.data import sources

    monkeypatch.setattr(sources, "_fetch", lambda *a, **k: pytest.fail("network used"))
    monkeypatch.setenv("GNNLM_DATA_DIR", str(tmp_path))
    (tmp_path / "nations").mkdir()
    for split in ("train", "valid", "test"):
        (tmp_path / "nations" / f"{split}.txt").write_text("usa\tr\tuk\n")
    assert main(["datasets", "-o", "verify=false"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {
        line.split()[0]: line
        for line in lines[2:]
        if line.strip() and not line.startswith("unseen")
    }
    assert list(rows) == dataset_names()
    assert "not found" in rows["umls"]
    assert f"{tmp_path / 'nations'} (GNNLM_DATA_DIR)" in rows["nations"] and rows[
        "nations"
    ].split()[-5:] == ["1", "1", "1", "0", "2"]


@pytest.mark.skipif(not os.environ.get("GNNLM_DATA_DIR"), reason="GNNLM_DATA_DIR is not set")
def test_real_listing_matches_published_statistics(capsys, tmp_path_factory, monkeypatch):
    # the session's cache of real datasets (tests/data/conftest.py), so each is parsed once
    cache = tmp_path_factory.getbasetemp() / "real-data-cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(cache))
    assert main(["datasets", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert [
        infos["fb15k-237"][k]
        for k in ("num_entities", "num_relations", "num_train", "num_valid", "num_test")
    ] == [
        14541,
        237,
        272115,
        17535,
        20466,
    ]
    assert infos["wn18rr"]["unseen_triples"]["test"] == 210
    assert infos["metaqa"]["corrected_lines"][0]["line"] == 22447
    assert infos["ogbl-biokg"]["error"] == "not found" or "num_entities" in infos["ogbl-biokg"]
