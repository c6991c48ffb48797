"""Resolution order: explicit data_dir -> $GNNLM_DATA_DIR -> user cache -> download (never real)."""

from __future__ import annotations

import io
import re
import tarfile
import urllib.error

import pytest

from gnnlm.data import DatasetNotFoundError, load_dataset
from gnnlm.data import sources as sources_module
from tests.data.conftest import write_split_files

NATIONS = {
    "train": [("usa", "treaties", "uk"), ("uk", "treaties", "usa"), ("egypt", "aidenemy", "usa")],
    "valid": [("usa", "aidenemy", "egypt")],
    "test": [("uk", "aidenemy", "egypt")],
}


def nations_folder(root, name="nations"):
    return write_split_files(root / name, NATIONS)


def opts():
    return {"verify": False}  # tiny stand-ins do not have the published counts


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def offline(url, dest, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(sources_module, "_fetch", offline)
    return calls


def test_explicit_data_dir_wins(tmp_path, monkeypatch, isolated_cache, no_network):
    nations_folder(tmp_path / "explicit")
    env = nations_folder(tmp_path / "env")
    (env / "train.txt").write_text("x\ty\tz\n")
    monkeypatch.setenv("GNNLM_DATA_DIR", str(tmp_path / "env"))
    kg = load_dataset("nations", data_dir=tmp_path / "explicit", **opts())
    assert kg.extra["source"] == "data_dir" and kg.num_entities == 3
    # the dataset folder itself also works as data_dir
    kg = load_dataset("nations", data_dir=tmp_path / "explicit" / "nations", **opts())
    assert kg.extra["path"] == str(tmp_path / "explicit" / "nations")
    assert no_network == []


def test_env_then_cache(tmp_path, monkeypatch, isolated_cache, no_network):
    nations_folder(tmp_path / "env")
    nations_folder(isolated_cache / "datasets")
    monkeypatch.setenv("GNNLM_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset("nations", **opts()).extra["source"] == "GNNLM_DATA_DIR"
    monkeypatch.setenv("GNNLM_DATA_DIR", str(tmp_path / "elsewhere"))  # set, but lacks nations/
    kg = load_dataset("nations", **opts())
    assert kg.extra["source"] == "cache" and kg.extra["path"] == str(
        isolated_cache / "datasets" / "nations"
    )
    monkeypatch.delenv("GNNLM_DATA_DIR")
    assert load_dataset("nations", **opts()).extra["source"] == "cache"
    assert no_network == []


def test_explicit_data_dir_without_the_dataset_is_an_error(tmp_path, no_network):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("nations", data_dir=tmp_path / "empty")
    assert str(err.value) == (
        f"{tmp_path / 'empty'}: holds neither nations/train.txt nor train.txt "
        "(data_dir was given explicitly, so no other location is tried)"
    )
    assert no_network == []


def test_partial_copy_names_the_missing_file(tmp_path, monkeypatch, no_network):
    folder = nations_folder(tmp_path)
    (folder / "valid.txt").unlink()
    monkeypatch.setenv("GNNLM_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("nations")
    assert str(err.value) == (
        f"{folder / 'valid.txt'}: file not found (the folder has train.txt, test.txt but lacks valid.txt)"
    )


def test_offline_download_gives_a_clear_error(tmp_path, monkeypatch, isolated_cache, no_network):
    monkeypatch.delenv("GNNLM_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("umls")
    message = str(err.value)
    assert message.startswith(
        f"umls: not found locally ($GNNLM_DATA_DIR (not set); {isolated_cache / 'datasets' / 'umls'}) "
        "and the download of https://github.com/TimDettmers/ConvE/raw/master/umls.tar.gz failed:"
    )
    assert "network is unreachable" in message and "Set $GNNLM_DATA_DIR" in message
    assert no_network == ["https://github.com/TimDettmers/ConvE/raw/master/umls.tar.gz"]
    assert not (isolated_cache / "datasets" / "umls").exists()  # nothing half-written
    assert [p.name for p in (isolated_cache / "datasets").iterdir()] == []


def test_download_false_never_touches_the_network(monkeypatch, no_network):
    monkeypatch.delenv("GNNLM_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match=re.escape("(download=False)")):
        load_dataset("kinship", download=False)
    assert no_network == []


def test_download_fills_the_cache_then_loads_from_it(tmp_path, monkeypatch, isolated_cache):
    """The real download path, with the network replaced by local bytes: ConvE's tarball."""
    monkeypatch.delenv("GNNLM_DATA_DIR", raising=False)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for split, rows in NATIONS.items():
            data = "".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows).encode()
            info = tarfile.TarInfo(f"./{split}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fetched = []

    def fake_fetch(url, dest, **kwargs):
        fetched.append(url)
        dest.write_bytes(archive.getvalue())

    monkeypatch.setattr(sources_module, "_fetch", fake_fetch)
    kg = load_dataset("nations", **opts())
    assert fetched == ["https://github.com/TimDettmers/ConvE/raw/master/nations.tar.gz"]
    assert kg.extra["source"] == "download" and kg.statistics()["num_train"] == 3
    folder = isolated_cache / "datasets" / "nations"
    assert sorted(p.name for p in folder.iterdir()) == ["test.txt", "train.txt", "valid.txt"]
    kg = load_dataset("nations", **opts())
    assert kg.extra["source"] == "cache" and len(fetched) == 1
