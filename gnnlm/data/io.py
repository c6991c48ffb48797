"""Strict readers for delimited text files: every problem names the file, the line and the value."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from gnnlm.data.errors import DataFormatError


def read_text(path: str | os.PathLike, *, encoding: str = "utf-8") -> str:
    """The whole file decoded, with the line of the first undecodable byte in the error.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        DataFormatError: bytes that are not valid ``encoding``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start : err.end]
        raise DataFormatError(path, line, f"bytes that are not valid {encoding}", bad) from None
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r} for {path}") from None


def iter_lines(
    path: str | os.PathLike, *, encoding: str = "utf-8", skip_header: bool = False
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based, line ending removed).

    Only ``\\n`` (and ``\\r\\n``) end a line, unlike :meth:`str.splitlines`, which would also split at
    the form feeds and unicode separators that free-text fields may hold. A final newline is optional.
    """
    text = read_text(path, encoding=encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if number == 1 and skip_header:
            continue
        yield number, line[:-1] if line.endswith("\r") else line


def read_rows(
    path: str | os.PathLike,
    num_columns: int,
    *,
    delimiter: str = "\t",
    encoding: str = "utf-8",
    skip_header: bool = False,
    allow_empty_columns: tuple[int, ...] = (),
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each line, checking the column count and empty fields.

    Args:
        path: the file.
        num_columns: the exact number of fields each line must have.
        delimiter: the field separator.
        encoding: the text encoding.
        skip_header: skip the first line.
        allow_empty_columns: columns (0-based) that may be empty.

    Raises:
        DataFormatError: a line with another number of fields, or an empty (or all-blank) field.
    """
    shown = {"\t": "tabs", ",": "commas", ";": "semicolons", " ": "spaces"}.get(delimiter)
    shown = shown or repr(delimiter)
    for number, line in iter_lines(path, encoding=encoding, skip_header=skip_header):
        fields = line.split(delimiter)
        if len(fields) != num_columns:
            raise DataFormatError(
                path,
                number,
                f"expected {num_columns} columns separated by {shown}, found {len(fields)}",
                line,
            )
        for column, value in enumerate(fields):
            if not value.strip() and column not in allow_empty_columns:
                raise DataFormatError(path, number, f"empty field in column {column + 1}", line)
        yield number, fields
