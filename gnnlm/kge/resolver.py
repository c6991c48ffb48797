"""Re-exports of :mod:`gnnlm.utils.registry` (the dotted-path registry moved there; imports stay valid)."""

from __future__ import annotations

from gnnlm.utils.registry import (
    DottedPathResolver,
    UntrustedCodeError,
    check_import_allowed,
    import_object,
    is_dotted_path,
    refuse_code_imports,
    untrusted_code_message,
)

__all__ = [
    "DottedPathResolver",
    "UntrustedCodeError",
    "check_import_allowed",
    "import_object",
    "is_dotted_path",
    "refuse_code_imports",
    "untrusted_code_message",
]
