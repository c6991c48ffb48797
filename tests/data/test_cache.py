from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from gnnlm.data import cache as cache_module
from gnnlm.data import get_dataset, load_dataset
from tests.data.conftest import TINY, write_split_files


def assert_same_graph(a, b):
    assert a.statistics() == b.statistics()
    for split in a.splits:
        assert torch.equal(a.splits[split], b.splits[split])
    assert a.entities == b.entities and a.relations == b.relations
    assert torch.equal(a.entity_type, b.entity_type) and a.node_types == b.node_types
    assert a.relation_text == b.relation_text
    assert (a.entity_text is None) == (b.entity_text is None)
    if a.entity_text is not None:
        assert a.entity_text == b.entity_text
    skip = {"from_cache", "load_seconds"}
    assert {k: v for k, v in a.extra.items() if k not in skip} == {
        k: v for k, v in b.extra.items() if k not in skip
    }


@pytest.fixture
def tiny_dir(tmp_path):
    folder = write_split_files(tmp_path / "tiny", TINY)
    (folder / "names.tsv").write_text("a\tAlpha\nb\tBeta\nz\tZeta\n")
    return folder


def test_second_load_comes_from_cache_and_is_identical(tiny_dir, isolated_cache):
    before = sorted(os.listdir(tiny_dir))
    first = load_dataset(f"tsv:{tiny_dir}", entity_text="names.tsv")
    second = load_dataset(f"tsv:{tiny_dir}", entity_text="names.tsv")
    assert not first.extra["from_cache"] and second.extra["from_cache"]
    assert_same_graph(first, second)
    assert second.entity_label(0) == "Alpha" and second.entity_label(2) == "c"
    # nothing written next to the data; entries are safetensors + JSON, no temporary leftovers
    assert sorted(os.listdir(tiny_dir)) == before
    files = sorted(p.suffix for p in (isolated_cache / "processed").rglob("*") if p.is_file())
    assert files == [".json", ".safetensors"]


def test_options_and_edits_change_the_key(tiny_dir):
    load_dataset(f"tsv:{tiny_dir}")
    assert not load_dataset(f"tsv:{tiny_dir}", duplicates="drop").extra["from_cache"]
    with open(tiny_dir / "train.txt", "a") as f:
        f.write("e\tlikes\ta\n")
    kg = load_dataset(f"tsv:{tiny_dir}")
    assert not kg.extra["from_cache"] and kg.statistics()["num_train"] == 6


def test_cache_false_neither_reads_nor_writes(tiny_dir, isolated_cache):
    kg = load_dataset(f"tsv:{tiny_dir}", cache=False)
    assert not kg.extra["from_cache"]
    assert not (isolated_cache / "processed").exists()


def test_corrupt_entry_is_rebuilt_with_a_warning(tiny_dir, isolated_cache):
    first = load_dataset(f"tsv:{tiny_dir}")
    (meta,) = (isolated_cache / "processed").rglob("*.json")
    meta.write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring unreadable cache entry"):
        again = load_dataset(f"tsv:{tiny_dir}")
    assert not again.extra["from_cache"]
    assert_same_graph(first, again)
    assert load_dataset(f"tsv:{tiny_dir}").extra["from_cache"]  # rewritten


def test_clear(tiny_dir):
    load_dataset(f"tsv:{tiny_dir}")
    assert cache_module.clear() == 2
    assert not load_dataset(f"tsv:{tiny_dir}").extra["from_cache"]


def test_cached_real_graph_equals_fresh_parse(real_data_dir):
    fresh = load_dataset("fb15k-237", cache=False)
    load_dataset("fb15k-237")  # writes the entry
    cached = load_dataset("fb15k-237")
    assert cached.extra["from_cache"]
    assert_same_graph(fresh, cached)
    assert cached.entity_text.wikidata_ids == fresh.entity_text.wikidata_ids
    summary = get_dataset("fb15k-237").summary()  # the report, from the entry's JSON alone
    skip = {"from_cache", "load_seconds", "path", "source"}
    assert {k: v for k, v in summary.items() if k not in skip} == {
        k: v for k, v in cached.summary().items() if k not in skip
    }


def test_unwritable_cache_only_warns(tiny_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the cache folder path is a file: every write fails
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(blocker))
    with pytest.warns(UserWarning, match="not caching the processed tsv"):
        kg = load_dataset(f"tsv:{tiny_dir}")
    assert kg.statistics()["num_train"] == 5


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_damaged_tensor_file_is_named_and_rebuilt(tiny_dir, isolated_cache, damage):
    first = load_dataset(f"tsv:{tiny_dir}")
    (tensors,) = (isolated_cache / "processed").rglob("*.safetensors")
    data = tensors.read_bytes()
    tensors.write_bytes(
        {"empty": b"", "garbage": b"\x00" * len(data), "truncated": data[:-8]}[damage]
    )
    with pytest.warns(UserWarning, match=re.escape(f"ignoring unreadable cache entry {tensors}: ")):
        again = load_dataset(f"tsv:{tiny_dir}")
    assert not again.extra["from_cache"]
    assert_same_graph(first, again)
    # the entry was rewritten: later loads read it again
    assert load_dataset(f"tsv:{tiny_dir}").extra["from_cache"]
    assert tensors.read_bytes() == data


def test_cache_files_are_flushed_to_disk_before_the_rename(tiny_dir, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        os,
        "replace",
        lambda a, b: events.append(f"replace {os.path.basename(b)}") or real_replace(a, b),
    )
    load_dataset(f"tsv:{tiny_dir}")
    renames = [e for e in events if e.startswith("replace")]
    assert [e.rsplit(".", 1)[1] for e in renames] == ["safetensors", "json"]
    for rename in renames:  # each file is fsynced right before its rename
        assert events[events.index(rename) - 1] == "fsync"


def test_summary_from_the_cache_equals_the_report_of_the_loaded_graph(tiny_dir):
    from gnnlm.cli.datasets import describe  # the reference: the report of a loaded graph

    dataset = get_dataset(f"tsv:{tiny_dir}", entity_text="names.tsv")
    assert dataset.summary() is None  # nothing cached yet
    reference = describe(dataset.load())
    summary = dataset.summary()
    assert summary is not None and summary["from_cache"]
    skip = {"from_cache", "load_seconds"}
    assert list(summary) == list(reference)
    assert {k: v for k, v in summary.items() if k not in skip} == {
        k: v for k, v in reference.items() if k not in skip
    }
    with open(tiny_dir / "train.txt", "a") as f:  # an edited file: no summary until reloaded
        f.write("e\tlikes\ta\n")
    assert dataset.summary() is None
    assert get_dataset(f"tsv:{tiny_dir}", entity_text="names.tsv", cache=False).summary() is None


def test_gnnlm_datasets_reports_a_cached_graph_without_importing_torch(tiny_dir, isolated_cache):
    load_dataset(f"tsv:{tiny_dir}")
    script = (
        "import json, sys\n"
        "from gnnlm.cli import main\n"
        f"assert main(['datasets', {f'tsv:{tiny_dir}'!r}, '--json']) == 0\n"
        "print(json.dumps('torch' in sys.modules))"
    )
    env = dict(os.environ, GNNLM_CACHE_DIR=str(isolated_cache))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    *report, torch_loaded = out.stdout.strip().splitlines()
    assert json.loads(report[0])["num_train"] == 5 and json.loads(report[0])["from_cache"]
    assert json.loads(torch_loaded) is False
