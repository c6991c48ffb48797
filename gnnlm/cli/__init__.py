"""The ``gnnlm`` command line: one sub-command per module in this package.

Each sub-command module exposes ``add_parser(subparsers)`` (registers its arguments and sets
``func``) so the dispatcher stays a list of names.

A user error (a bad config, file, dataset, checkpoint or plug-in: the exception types in
:data:`USER_ERRORS`) ends the command with one line, ``gnnlm <command>: message``, and exit status 2;
anything else is a bug and keeps its traceback. A
:class:`~gnnlm.utils.strict_yaml.ConfigWarning` is shown as ``gnnlm <command>: warning: message``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings

#: sub-command modules, in the order ``gnnlm --help`` lists them.
COMMANDS = ("datasets", "train", "tune", "evaluate", "predict", "generate", "plot", "task")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gnnlm", description="Knowledge-graph-enhanced language models"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gnnlm.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"gnnlm.cli.{name}":
                raise
            continue  # not written yet
        module.add_parser(sub)
    return parser


#: ``(module, class)`` of the exceptions that report a user's mistake, not a bug. Looked up in
#: ``sys.modules`` only: an error class whose module was never imported cannot have been raised.
USER_ERRORS = (
    ("gnnlm.utils.strict_yaml", "ConfigError"),  # gnnlm.train.ConfigError
    ("gnnlm.train.checkpoint", "CheckpointError"),  # RunDirError too
    ("gnnlm.data.errors", "DataError"),  # DataFormatError, DatasetNotFoundError
    ("gnnlm.encoders.resolver", "EncoderProtocolError"),
    ("gnnlm.kge.resolver", "UntrustedCodeError"),
)
#: OS errors about a path the user gave (a missing config, an unreadable folder).
_PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def user_error_types() -> tuple[type[BaseException], ...]:
    """The loaded classes of :data:`USER_ERRORS`, plus OS errors about a given path."""
    found = [
        getattr(sys.modules[module], name, None)
        for module, name in USER_ERRORS
        if module in sys.modules
    ]
    return tuple(cls for cls in found if isinstance(cls, type)) + _PATH_ERRORS


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (an OS error as ``path: reason``)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return re.sub(r"\s*\n\s*", " ", text.strip())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefix = f"gnnlm {args.command}"
    with warnings.catch_warnings():
        _show_config_warnings(prefix)
        try:
            return int(args.func(args) or 0)
        except user_error_types() as err:
            print(f"{prefix}: {one_line(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"\n{prefix}: interrupted", file=sys.stderr)
            return 130


def _show_config_warnings(prefix: str) -> None:
    """Inside ``warnings.catch_warnings()``: print ConfigWarnings as ``prefix: warning: message``."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        config = sys.modules.get("gnnlm.utils.strict_yaml")  # where ConfigWarning lives
        if config is not None and issubclass(category, config.ConfigWarning):
            print(f"{prefix}: warning: {one_line(message)}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
