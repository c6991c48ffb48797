"""A :class:`class_resolver.ClassResolver` that also accepts dotted paths ``"pkg.module:Class"``.

Registered names (``"complex"``), classes and instances resolve as in ``class_resolver``; a string with a
colon is imported, so a user's class works from a config file without registering it first.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from class_resolver import ClassResolver

X = TypeVar("X")


def import_object(path: str) -> Any:
    """Import ``"pkg.module:attr"`` (``attr`` may be dotted: ``"pkg.mod:Outer.Inner"``)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected a dotted path 'package.module:Name', got {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"cannot import module {module_name!r} from {path!r}: {error}") from error
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(
                f"module {module_name!r} has no attribute {attr!r} (from {path!r})"
            ) from None
    return obj


class DottedPathResolver(ClassResolver[X]):
    """``ClassResolver`` whose :meth:`lookup` also imports ``"pkg.module:Class"`` strings."""

    def lookup(self, query: Any, default: type[X] | None = None) -> type[X]:
        if isinstance(query, str) and ":" in query:
            cls = import_object(query)
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"{query!r} is {cls!r}, not a subclass of {self.base.__name__}")
            return cls
        return super().lookup(query, default=default)
