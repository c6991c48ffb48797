"""The one registry class of every pluggable family, and the one dotted-path importer.

:class:`DottedPathResolver` is a :class:`class_resolver.ClassResolver` that also imports
``"pkg.module:Class"`` strings. Every registry of gnnlm (datasets, interactions, encoders, injection
modes, losses, loops, negative samplers, regularizers) is one, so each accepts the same four forms:

* a registered name (``"complex"``; case, ``-`` and ``_`` are ignored),
* a class (``ComplEx``), an instance (``make(ComplEx())`` returns it unchanged),
* a dotted path (``"mypkg.scoring:MyInteraction"``), imported on use, so a user's class works from a
  config file without registering it first.

Like every resolver built from a fixed list, a registry finds a user's class *by name* only after
``resolver.register(MyClass)``.

Importing a module runs its code. A config the user wrote may do that; a *saved* model folder (which may
come from anywhere) may not, unless the user says so: loaders run inside :func:`refuse_code_imports`, where
every dotted path is refused with :class:`UntrustedCodeError` *before* anything is imported
(``from_pretrained(..., trust_remote_code=True)`` lifts it, as in HF ``transformers``).

Only ``class_resolver`` and the standard library are imported here: the dataset registry uses this
module, and ``import gnnlm.data`` must not load torch.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Collection, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from class_resolver import ClassResolver

X = TypeVar("X")

#: ``scheme:rest`` prefixes that name something other than a module (``pyg:GATConv``, ``tsv:DIR``).
NON_IMPORT_SCHEMES = ("pyg", "tsv")

_IDENTIFIERS = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_DOTTED_PATH = re.compile(rf"({_IDENTIFIERS}):({_IDENTIFIERS})")

#: where the config being loaded came from, while dotted-path imports are refused (else ``None``).
_UNTRUSTED_SOURCE: ContextVar[str | None] = ContextVar("gnnlm_untrusted_source", default=None)


class UntrustedCodeError(RuntimeError):
    """A saved file names code to import (``pkg.mod:Class``) and the user has not trusted it."""


def is_dotted_path(spec: Any) -> bool:
    """Whether ``spec`` is an import path ``"pkg.module:Name"``.

    ``"pyg:GATConv"`` and ``"tsv:data/my_kg"`` are not (:data:`NON_IMPORT_SCHEMES`), nor is any string
    whose parts are not dotted Python identifiers (``"tsv:/data/kg"``).
    """
    if not isinstance(spec, str):
        return False
    match = _DOTTED_PATH.fullmatch(spec)
    return match is not None and match.group(1) not in NON_IMPORT_SCHEMES


def untrusted_code_message(source: str, path: str) -> str:
    """The error text for a dotted ``path`` named by an untrusted ``source`` (a file name)."""
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
        ValueError: ``path`` is not of the form ``module:attr``.
        ImportError: the module cannot be imported or has no such attribute.
    """
    check_import_allowed(path)
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected a dotted path 'package.module:Name', got {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"cannot import module {module_name!r} ({error})") from error
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(
                f"module {module_name!r} has no attribute {attr!r} (from {path!r})"
            ) from None
    return obj


class DottedPathResolver(ClassResolver[X]):
    """A ``ClassResolver`` whose :meth:`lookup` (and so ``make``) also imports ``"pkg.module:Class"``.

    Args:
        classes: the registered classes.
        base: their base class; a dotted path must name a subclass of it.
        name_attribute: a class attribute holding a class's registry name (``Injection.name``,
            ``Dataset.name``); a class without it is registered under its class name, as in
            ``class_resolver`` (less ``suffix``).
        **kwargs: ``ClassResolver``'s (``default``, ``suffix``, ``synonyms``, ...).
    """

    def __init__(
        self,
        classes: Collection[type[X]] | None = None,
        *,
        base: type[X],
        name_attribute: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.name_attribute = name_attribute  # set first: registering the classes reads it
        super().__init__(classes, base=base, **kwargs)

    def extract_name(self, element: type[X]) -> str:
        """``element``'s registry name: its ``name_attribute`` when set, else its class name."""
        name = getattr(element, self.name_attribute, None) if self.name_attribute else None
        return name if isinstance(name, str) else element.__name__

    def normalize_cls(self, cls: type[X]) -> str:
        """The registry key of ``cls`` (the key :meth:`register` files it under)."""
        return self.normalize(self.extract_name(cls))

    def lookup(self, query: Any, default: type[X] | None = None) -> type[X]:
        """The class for a registered name, a class, an instance or a dotted path.

        Raises:
            KeyError: an unknown name (the message lists the registered ones).
            TypeError: a dotted path naming something that is not a subclass of ``base``.
            ImportError: a dotted path whose module or attribute does not exist.
            UntrustedCodeError: a dotted path inside :func:`refuse_code_imports`.
        """
        if is_dotted_path(query):
            cls = import_object(query)
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"{query!r} is {cls!r}, not a subclass of {self.base.__name__}")
            return cls
        return super().lookup(query, default=default)
