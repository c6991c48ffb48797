"""Lazy package attributes (PEP 562): a package lists what it exports and where each name lives.

``import gnnlm.data`` then costs nothing; ``from gnnlm.data import load_dataset`` imports the defining
module on first use. A command that only parses its arguments or reports an error never loads torch,
PyG or transformers (importing PyG alone pulls in transformers and pandas, ~10 s on a busy machine).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        namespace: its ``globals()`` (a resolved name is stored there, so later look-ups are direct).
        exports: public name -> the module that defines it.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
