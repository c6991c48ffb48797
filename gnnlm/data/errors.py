"""Errors of the data layer: every message names the file, the line and the offending value."""

from __future__ import annotations

import os

#: longest value (a field or a whole line) quoted in a message
MAX_SHOWN = 200


def shorten(value: object, limit: int = MAX_SHOWN) -> object:
    """``value``, cut to its first ``limit`` characters when it is a longer string."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return value[:limit]
    return value


class DataError(ValueError):
    """Input data that cannot be loaded as asked (malformed, inconsistent, or the wrong dataset)."""


class DataFormatError(DataError):
    """A malformed line of an input file.

    The message reads ``{path}:{line}:{column}: {problem}: {value!r}`` (the column only when known,
    counted from 1 in characters, as compilers print it) so editors and terminals can jump to it. A
    value longer than :data:`MAX_SHOWN` characters is cut, and the message says how much was left out.

    Args:
        path: the file.
        line: 1-based line number (``None`` for a whole-file problem).
        problem: what is wrong, in a few words.
        value: the offending value (a field, a line, or a count).
        column: 1-based character column of the problem within the line, when known.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        line: int | None,
        problem: str,
        value: object = None,
        *,
        column: int | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.problem = problem
        self.value = value
        where = self.path
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        suffix = ""
        if value is not None:
            shown = shorten(value)
            suffix = f": {shown!r}"
            if shown is not value:
                suffix += f" (first {MAX_SHOWN} of {len(value)} characters)"  # type: ignore[arg-type]
        super().__init__(f"{where}: {problem}{suffix}")


class DatasetNotFoundError(DataError):
    """A dataset that none of the data locations holds and that could not be downloaded."""
