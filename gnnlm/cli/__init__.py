"""The ``gnnlm`` command line: one sub-command per module in this package.

Each sub-command module exposes ``add_parser(subparsers)`` (registers its arguments and sets
``func``) so the dispatcher stays a list of names.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules, in the order ``gnnlm --help`` lists them.
COMMANDS = ("datasets", "train", "evaluate", "predict", "task")


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
