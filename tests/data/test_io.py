from __future__ import annotations

import re

import pytest

from gnnlm.data.build import read_triples
from gnnlm.data.errors import DataFormatError
from gnnlm.data.io import split_fields


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
    assert str(err.value) == f"{path}:2:4: expected 3 columns separated by tabs, found 2: 'c\\tr'"
    assert (err.value.line, err.value.column, err.value.value) == (2, 4, "c\tr")


def test_empty_field(tmp_path):
    path = tmp_path / "valid.txt"
    path.write_text("a\tr\tb\na\t \tb\n")
    with pytest.raises(
        DataFormatError, match=re.escape(f"{path}:2:3: empty field in column 2: 'a\\t \\tb'")
    ):
        read_triples(path)


def test_blank_line_in_the_middle(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text("a\tr\tb\n\nc\tr\td\n")
    with pytest.raises(
        DataFormatError,
        match=re.escape(f"{path}:2:1: expected 3 columns separated by tabs, found 1: ''"),
    ):
        read_triples(path)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a\tr\tb\nc\tr\td\ne\tr\t\xff\xfe\n")
    with pytest.raises(DataFormatError) as err:
        read_triples(path)
    assert str(err.value) == f"{path}:3:5: bytes that are not valid utf-8: b'\\xff'"


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


def test_a_long_bad_line_is_quoted_in_part(tmp_path):
    path = tmp_path / "train.txt"
    long_line = "x" * 5000 + "\tr"
    path.write_text(f"a\tr\tb\n{long_line}\n")
    with pytest.raises(DataFormatError) as err:
        read_triples(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2:5003: expected 3 columns separated by tabs, found 2: 'xxx")
    assert message.endswith("' (first 200 of 5002 characters)") and len(message) < 400
    assert err.value.value == long_line  # the whole line stays on the exception


@pytest.mark.parametrize(
    ("line", "fields", "starts"),
    [
        ("a,b,c", ["a", "b", "c"], [1, 3, 5]),
        ('"a, b",c,d', ["a, b", "c", "d"], [1, 8, 10]),
        ('"say ""hi""",r,x', ['say "hi"', "r", "x"], [1, 14, 16]),
        ('a,"",c', ["a", "", "c"], [1, 3, 6]),
        ("a,b,", ["a", "b", ""], [1, 3, 5]),
    ],
)
def test_split_fields_with_quotes(line, fields, starts):
    assert split_fields(line, ",", '"') == (fields, starts)


@pytest.mark.parametrize(
    ("line", "problem", "column"),
    [
        ('a,"b', "unterminated quote", 3),
        ('"a"x,b', 'text after the closing "', 4),
        ('a,b"c', '" inside an unquoted field', 4),
    ],
)
def test_split_fields_names_the_column_of_a_bad_quote(line, problem, column):
    with pytest.raises(ValueError) as err:
        split_fields(line, ",", '"')
    assert err.value.args[0].startswith(problem) and err.value.args[1] == column
