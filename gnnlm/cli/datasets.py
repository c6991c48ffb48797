"""``gnnlm datasets``: list the registered datasets, where each resolves, and their statistics.

Examples::

    gnnlm datasets                                  # table of every registered dataset
    gnnlm datasets fb15k-237 --json                 # one JSON object (num_entities, num_train, ...)
    gnnlm datasets conceptnet -o subset=CN-82K
    gnnlm datasets tsv:/path/to/dir --config my_kg.yaml   # files / columns / delimiter
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# the registry (and with it torch) is imported when a dataset is asked for, not for `gnnlm --help`
from gnnlm.data.errors import DataError
from gnnlm.utils.strict_yaml import ConfigError, load_yaml, quote

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

#: report keys printed (besides the statistics) when non-empty
REPORT_KEYS = (
    "unseen_triples",
    "unseen_entities",
    "unseen_relations",
    "duplicate_triples",
    "overlapping_triples",
    "dropped_triples",
    "corrected_lines",
    "entities_without_name",
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list datasets, where they resolve, and their statistics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="a registered name or tsv:DIR (default: list all)")
    parser.add_argument("--data-dir", help="folder holding the dataset (else $GNNLM_DATA_DIR, ...)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, e.g. subset=CN-82K or unseen=drop (repeatable; values parsed as YAML)",
    )
    parser.add_argument("--config", help="YAML/JSON file of dataset options (e.g. for tsv:DIR)")
    parser.add_argument("--no-cache", action="store_true", help="ignore the processed-graph cache")
    parser.add_argument(
        "--download", action="store_true", help="download missing datasets (listing never does)"
    )
    parser.set_defaults(func=run)


def parse_options(pairs: list[str], config: str | None) -> dict:
    """``KEY=VALUE`` strings (values parsed as YAML) on top of an optional YAML/JSON file.

    Raises:
        ConfigError: invalid YAML or a YAML tag (file, line and column), or a pair without ``=``.
    """
    options: dict = {}
    if config:
        loaded = load_yaml(Path(config).read_text(encoding="utf-8"), config)[0] or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config}:1: expected a mapping of dataset options")
        options.update(loaded.get("dataset_kwargs", loaded))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {quote(pair)}: expected KEY=VALUE")
        options[key.replace("-", "_")] = load_yaml(value, f"--option {quote(pair)}")[0]
    return options


def _get_dataset(name: str, **options):
    """:func:`get_dataset`, with an unknown name or option as a one-line :class:`ConfigError`."""
    from gnnlm.data import get_dataset

    try:
        return get_dataset(name, **options)  # builds the loader; reads nothing
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


def describe(kg: KnowledgeGraph) -> dict:
    """One JSON-ready summary: statistics first, then everything the loader reported."""
    out = {"name": kg.name, **kg.statistics()}
    for split in kg.splits:
        if split not in ("train", "valid", "test"):
            out[f"num_{split}"] = len(kg.splits[split])
    if len(kg.node_types) > 1:
        out["node_types"] = {
            t: int(kg.type_ptr[k + 1] - kg.type_ptr[k]) for k, t in enumerate(kg.node_types)
        }
    out["has_entity_text"] = kg.entity_text is not None
    out.update(kg.extra)
    return out


def _total(value) -> int:
    if isinstance(value, dict):
        return sum(int(v) for v in value.values())
    if isinstance(value, list):
        return len(value)
    return int(value or 0)


def _print_one(info: dict) -> None:
    print(f"{info['name']}  ({info.get('source', '?')}: {info.get('path', '?')})")
    print(
        f"  entities {info['num_entities']:,}  relations {info['num_relations']:,}  "
        f"train {info['num_train']:,}  valid {info['num_valid']:,}  test {info['num_test']:,}"
    )
    for key in REPORT_KEYS:
        value = info.get(key)
        if value is None or _total(value) == 0:
            continue
        if key == "corrected_lines":
            for fix in value:
                print(
                    f"  corrected {fix['file']}:{fix['line']}: id {fix['found']!r} -> {fix['used']}"
                )
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v:,}" for k, v in value.items())
        else:
            shown = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"  {key.replace('_', ' ')}: {shown}")
    print(
        f"  policies: unseen={info.get('unseen_policy')} duplicates={info.get('duplicates_policy')}"
        f"  (loaded in {info.get('load_seconds', 0):.2f}s{', cached' if info.get('from_cache') else ''})"
    )


def _list_all(args, options: dict) -> int:
    from gnnlm.data import dataset_names, get_dataset

    rows, infos, status = [], {}, 0
    for name in dataset_names():
        try:
            dataset = get_dataset(name, download=args.download, cache=not args.no_cache, **options)
            location = dataset.locate(args.data_dir)
            if location is None and not args.download:
                infos[name] = {"name": name, "path": None, "error": "not found"}
                rows.append((name, "not found", "", "", "", "", "", "", ""))
                continue
            # a cached graph is described from the cache's JSON, without torch
            info = dataset.summary(args.data_dir) or describe(dataset.load(args.data_dir))
        except (DataError, OSError, ValueError, TypeError, ImportError) as err:
            status = 1
            infos[name] = {"name": name, "error": str(err)}
            rows.append((name, f"error: {err}", "", "", "", "", "", "", ""))
            continue
        infos[name] = info
        rows.append(
            (
                name,
                f"{info['path']} ({info['source']})",
                f"{info['num_entities']:,}",
                f"{info['num_relations']:,}",
                f"{info['num_train']:,}",
                f"{info['num_valid']:,}",
                f"{info['num_test']:,}",
                f"{_total(info.get('unseen_triples')):,}",
                f"{_total(info.get('duplicate_triples')) + _total(info.get('overlapping_triples')):,}",
            )
        )
    if args.json:
        print(json.dumps(infos, indent=2))
        return status
    header = (
        "dataset",
        "location",
        "entities",
        "relations",
        "train",
        "valid",
        "test",
        "unseen",
        "dup",
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for k, row in enumerate([header, *rows]):
        cells = [
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "\nunseen: valid/test triples with an entity or relation absent from train; dup: repeated "
        "triples (within or across splits). `gnnlm datasets NAME` for details."
    )
    return status


def run(args: argparse.Namespace) -> int:
    """Errors in the arguments, the options or the files are raised as ``ConfigError`` /
    ``DataError`` for the dispatcher (one line, exit status 2); the listing reports them per row."""
    options = parse_options(args.option, args.config)
    if args.name is None:
        return _list_all(args, options)
    dataset = _get_dataset(args.name, cache=not args.no_cache, **{"download": True, **options})
    try:
        # a cached graph is described from the cache's JSON, without torch
        info = dataset.summary(args.data_dir) or describe(dataset.load(args.data_dir))
    except ImportError as err:  # an optional dependency of this dataset (ogb, ...)
        print(f"gnnlm datasets: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info))
    else:
        _print_one(info)
    return 0
