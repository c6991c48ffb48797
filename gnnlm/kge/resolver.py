"""A :class:`class_resolver.ClassResolver` that also accepts dotted paths ``"pkg.module:Class"``.

Registered names (``"complex"``), classes and instances resolve as in ``class_resolver``; a string with a
colon is imported, so a user's class works from a config file without registering it first.

Importing a module runs its code. A config the user wrote may do that; a *saved* model folder (which may
come from anywhere) may not, unless the user says so: loaders run inside :func:`refuse_code_imports`, where
every dotted path is refused with :class:`UntrustedCodeError` *before* anything is imported
(``from_pretrained(..., trust_remote_code=True)`` lifts it, as in HF ``transformers``).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from class_resolver import ClassResolver

X = TypeVar("X")

#: where the config being loaded came from, while dotted-path imports are refused (else ``None``).
_UNTRUSTED_SOURCE: ContextVar[str | None] = ContextVar("gnnlm_untrusted_source", default=None)


class UntrustedCodeError(RuntimeError):
    """A saved file names code to import (``pkg.mod:Class``) and the user has not trusted it."""


def is_dotted_path(spec: Any) -> bool:
    """Whether ``spec`` is an import path ``"pkg.module:Name"`` (``"pyg:Conv"`` names no module)."""
    return isinstance(spec, str) and ":" in spec and not spec.startswith("pyg:")


def untrusted_code_message(source: str, path: str) -> str:
    module = path.partition(":")[0]
    return (
        f"{source} names code to import: {path!r}; loading it would import and run the module "
        f"{module!r}. Load it only if you trust where it came from: trust_remote_code=True "
        "(CLI: --trust-remote-code)"
    )


@contextlib.contextmanager
def refuse_code_imports(source: str) -> Iterator[None]:
    """Within the block, every dotted-path lookup raises :class:`UntrustedCodeError` naming ``source``."""
    token = _UNTRUSTED_SOURCE.set(str(source))
    try:
        yield
    finally:
        _UNTRUSTED_SOURCE.reset(token)


def check_import_allowed(path: str) -> None:
    """Raise :class:`UntrustedCodeError` inside :func:`refuse_code_imports`; nothing is imported."""
    source = _UNTRUSTED_SOURCE.get()
    if source is not None:
        raise UntrustedCodeError(untrusted_code_message(source, path))


def import_object(path: str) -> Any:
    """Import ``"pkg.module:attr"`` (``attr`` may be dotted: ``"pkg.mod:Outer.Inner"``).

    Raises:
        UntrustedCodeError: inside :func:`refuse_code_imports` (before importing anything).
    """
    check_import_allowed(path)
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
