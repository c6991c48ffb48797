"""Import costs: the data layer and the command line start without the heavy libraries.

PyG pulls in transformers and pandas when imported, and torch alone takes seconds on a busy machine.
The check runs in a fresh interpreter, since this test session has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torch_geometric", "transformers", "pandas")

#: (step, heavy modules it may load), run in this order in one interpreter
STEPS = [
    ("import gnnlm, gnnlm.data", set()),
    ("from gnnlm.data import DataError, DataFormatError, DatasetNotFoundError", set()),
    ("import gnnlm.train.config", set()),
    ("from gnnlm.eval import HEADLINE_METRICS", set()),  # for configs and the command line
    ("from gnnlm.cli import build_parser; build_parser()", set()),  # gnnlm --help
    ("from gnnlm.data import dataset_names, get_dataset; get_dataset(dataset_names()[0])", set()),
    ("from gnnlm.data import load_dataset, KnowledgeGraph", {"torch"}),  # gnnlm datasets NAME
]


def test_imports_do_not_load_heavy_modules():
    lines = ["import json, sys"]
    for step, _ in STEPS:
        lines += [step, f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"]
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    loaded = [set(json.loads(line)) for line in out.stdout.strip().splitlines()]
    assert len(loaded) == len(STEPS)
    for (step, allowed), found in zip(STEPS, loaded):
        assert found <= allowed, f"{step!r} imported {sorted(found - allowed)}"
