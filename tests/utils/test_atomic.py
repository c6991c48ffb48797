"""The one atomic writer: the old file or the whole new one, never a partial file or a stray temp file."""

from __future__ import annotations

import json
import os

import pytest

from gnnlm.utils import atomic
from gnnlm.utils.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)


def test_writes_create_folders_and_replace_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=2) + "\n"
    atomic_write_json(path, {"b": 1, "a": 2}, sort_keys=True, indent=None)
    assert path.read_text() == '{"a": 2, "b": 1}\n'
    atomic_write_text(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    seen = []

    def failing(tmp):
        seen.append(tmp.name)
        tmp.write_text("partial")  # half written, then the process is interrupted
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, failing)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["metrics.json"]
    # the temp name gnnlm.train.run_dir sweeps after a crash: .<target name>.<random>.tmp
    assert seen[0].startswith(".metrics.json.") and seen[0].endswith(".tmp")


def test_the_file_is_on_disk_before_the_rename(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))
    )
    atomic_write_text(tmp_path / "x.txt", "x")
    assert calls == ["fsync", "replace", "fsync"]  # the file, the rename, then its folder
