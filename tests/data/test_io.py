from __future__ import annotations

import re

import pytest

from gnnlm.data.build import read_triples
from gnnlm.data.errors import DataFormatError


def test_reads_lines_and_line_numbers(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a\tr\tb\r\nc\tr\td\n")  # CRLF line endings are accepted
    raw = read_triples(path)
    assert raw.triples == [("a", "r", "b"), ("c", "r", "d")]
    assert raw.lines == [1, 2]


def test_free_text_with_unicode_separators_stays_on_one_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("a\u2028b\tr\tc\x0cd\n", encoding="utf-8")  # str.splitlines would split both
    assert read_triples(path).triples == [("a\u2028b", "r", "c\x0cd")]


def test_wrong_column_count(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("a\tr\tb\nc\tr\n")
    with pytest.raises(DataFormatError) as err:
        read_triples(path)
    assert str(err.value) == f"{path}:2: expected 3 columns separated by tabs, found 2: 'c\\tr'"
    assert (err.value.line, err.value.value) == (2, "c\tr")


def test_empty_field(tmp_path):
    path = tmp_path / "valid.txt"
    path.write_text("a\tr\tb\na\t \tb\n")
    with pytest.raises(
        DataFormatError, match=re.escape(f"{path}:2: empty field in column 2: 'a\\t \\tb'")
    ):
        read_triples(path)


def test_blank_line_in_the_middle(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text("a\tr\tb\n\nc\tr\td\n")
    with pytest.raises(
        DataFormatError,
        match=re.escape(f"{path}:2: expected 3 columns separated by tabs, found 1: ''"),
    ):
        read_triples(path)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a\tr\tb\nc\tr\td\ne\tr\t\xff\xfe\n")
    with pytest.raises(DataFormatError) as err:
        read_triples(path)
    assert str(err.value) == f"{path}:3: bytes that are not valid utf-8: b'\\xff'"


def test_other_encoding_reads(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("Mich\u00e8le\tr\tb\n".encode("latin-1"))
    assert read_triples(path, encoding="latin-1").triples == [("Mich\u00e8le", "r", "b")]


def test_missing_file(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{tmp_path / 'nope.txt'}: file not found")
    ):
        read_triples(tmp_path / "nope.txt")


def test_column_order(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("IsA\tdog\tanimal\n")
    assert read_triples(path, columns=(1, 0, 2)).triples == [("dog", "IsA", "animal")]
