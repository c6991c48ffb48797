"""Errors of the data layer: every message names the file, the line and the offending value."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Input data that cannot be loaded as asked (malformed, inconsistent, or the wrong dataset)."""


class DataFormatError(DataError):
    """A malformed line of an input file.

    The message reads ``{path}:{line}: {problem}: {value!r}`` so editors and terminals can jump to it.

    Args:
        path: the file.
        line: 1-based line number (``None`` for a whole-file problem).
        problem: what is wrong, in a few words.
        value: the offending value (a field, a line, or a count).
    """

    def __init__(
        self, path: str | os.PathLike, line: int | None, problem: str, value: object = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.value = value
        where = f"{self.path}:{line}" if line is not None else self.path
        suffix = "" if value is None else f": {value!r}"
        super().__init__(f"{where}: {problem}{suffix}")


class DatasetNotFoundError(DataError):
    """A dataset that none of the data locations holds and that could not be downloaded."""
