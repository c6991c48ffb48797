"""Strict readers for delimited text files: every problem names the file, the line and the value.

Columns in messages are counted from 1, in characters of the line (``path:line:column``), as compilers
print them. A UTF-8 byte-order mark at the start of a file (Excel and Notepad write one) is an artefact
of the encoding, not part of the first field, and is removed.
"""

from __future__ import annotations

import codecs
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from gnnlm.data.errors import DataFormatError

BOM = "\ufeff"


def read_text(path: str | os.PathLike, *, encoding: str = "utf-8") -> str:
    """The whole file decoded, with the line of the first undecodable byte in the error.

    A leading UTF-8 byte-order mark is dropped (for ``utf-8``, as ``utf-8-sig`` would).

    Raises:
        FileNotFoundError: the file does not exist (the message names it; a symbolic link that
            leads nowhere, or in a loop, is named as such).
        DataFormatError: bytes that are not valid ``encoding``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(describe_missing(path))
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        bad = data[err.start : err.end]
        raise DataFormatError(
            path, line, f"bytes that are not valid {encoding}", bad, column=column
        ) from None
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r} for {path}") from None
    if text.startswith(BOM) and codecs.lookup(encoding).name == "utf-8":
        text = text[1:]
    return text


def describe_missing(path: Path) -> str:
    """Why ``path`` is not a readable file, in one line (no such file, a broken link, a folder)."""
    if path.is_symlink():
        target = os.readlink(path)
        try:
            path.resolve(strict=True)
        except RuntimeError:  # a loop, before Python 3.13
            return f"{path}: a symbolic link that loops (-> {target})"
        except OSError as err:
            if err.errno == errno.ELOOP:
                return f"{path}: a symbolic link that loops (-> {target})"
            return f"{path}: a symbolic link to a file that does not exist (-> {target})"
    if path.exists():
        return f"{path}: not a regular file"
    return f"{path}: file not found"


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


def split_fields(
    line: str, delimiter: str, quotechar: str | None = None
) -> tuple[list[str], list[int]]:
    """The fields of ``line`` and the 1-based column where each starts.

    With ``quotechar`` (``'"'`` for CSV), a field may be quoted as in RFC 4180 / pandas: the quotes are
    removed, a delimiter inside quotes is part of the field and a doubled quote stands for one.

    Raises:
        ValueError: an unterminated quote or text after a closing quote; ``args[1]`` is the column.
    """
    if quotechar is None or quotechar not in line:
        fields = line.split(delimiter)
        starts, pos = [], 1
        for value in fields:
            starts.append(pos)
            pos += len(value) + len(delimiter)
        return fields, starts
    fields, starts = [], []
    i, n, width = 0, len(line), len(delimiter)
    while True:
        starts.append(i + 1)
        if line.startswith(quotechar, i):
            opening = i
            i += 1
            value = []
            while True:
                close = line.find(quotechar, i)
                if close < 0:
                    raise ValueError("unterminated quote", opening + 1)
                value.append(line[i:close])
                if line.startswith(quotechar, close + 1):  # "" -> "
                    value.append(quotechar)
                    i = close + 2
                    continue
                i = close + 1
                break
            fields.append("".join(value))
            if i < n and not line.startswith(delimiter, i):
                raise ValueError(f"text after the closing {quotechar}", i + 1)
        else:
            end = line.find(delimiter, i)
            end = n if end < 0 else end
            if quotechar in line[i:end]:
                raise ValueError(
                    f"{quotechar} inside an unquoted field (quote the whole field, doubling inner "
                    f"{quotechar}s, or read with quotechar=None)",
                    line.index(quotechar, i) + 1,
                )
            fields.append(line[i:end])
            i = end
        if i >= n:
            return fields, starts
        i += width
        if i == n:  # a trailing delimiter: one more, empty field
            starts.append(i + 1)
            fields.append("")
            return fields, starts


def read_rows(
    path: str | os.PathLike,
    num_columns: int,
    *,
    delimiter: str = "\t",
    encoding: str = "utf-8",
    skip_header: bool = False,
    allow_empty_columns: tuple[int, ...] = (),
    quotechar: str | None = None,
    hint: str = "",
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each line, checking the column count and empty fields.

    Args:
        path: the file.
        num_columns: the exact number of fields each line must have.
        delimiter: the field separator.
        encoding: the text encoding.
        skip_header: skip the first line.
        allow_empty_columns: columns (0-based) that may be empty.
        quotechar: fields may be quoted with this character (see :func:`split_fields`).
        hint: appended to a wrong-column-count message (how to read such files on purpose).

    Raises:
        DataFormatError: a line with another number of fields, an empty (or all-blank) field or a
            malformed quote.
    """
    shown = column_separator_name(delimiter)
    for number, line in iter_lines(path, encoding=encoding, skip_header=skip_header):
        try:
            fields, starts = split_fields(line, delimiter, quotechar)
        except ValueError as err:
            problem, column = err.args
            raise DataFormatError(path, number, problem, line, column=column) from None
        if len(fields) != num_columns:
            # where the line goes wrong: the first extra field, or the end of a short line
            column = starts[num_columns] if len(fields) > num_columns else len(line) + 1
            raise DataFormatError(
                path,
                number,
                f"expected {num_columns} columns separated by {shown}, found {len(fields)}{hint}",
                line,
                column=column,
            )
        for k, value in enumerate(fields):
            if not value.strip() and k not in allow_empty_columns:
                raise DataFormatError(
                    path, number, f"empty field in column {k + 1}", line, column=starts[k]
                )
        yield number, fields


def column_separator_name(delimiter: str) -> str:
    """``"tabs"``, ``"commas"``, ... for messages."""
    shown = {"\t": "tabs", ",": "commas", ";": "semicolons", " ": "spaces"}.get(delimiter)
    return shown or repr(delimiter)
