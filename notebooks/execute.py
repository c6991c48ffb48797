"""Run the notebooks with nbclient: at their documented settings (saved with outputs), or a smoke run.

    pip install -e ".[notebooks]"
    python notebooks/execute.py notebooks/*.ipynb --in-place      # full settings, outputs saved
    python notebooks/execute.py notebooks/*.ipynb --smoke --out /tmp/nb   # tiny settings (CI)
    python notebooks/execute.py notebooks/custom_encoder.ipynb --set EPOCHS=3 --out /tmp/nb

Each notebook keeps its settings in one code cell tagged ``parameters`` (papermill's convention) and its
tiny smoke settings in ``metadata.gnnlm.smoke``. Values are given by injecting a cell tagged
``injected-parameters`` right after the ``parameters`` cell, so the notebook's own cell stays as written
and a reader sees what was overridden. The kernel is the ``python3`` kernel of the running interpreter
(ipykernel), started in ``--cwd`` (default: the folder the command runs in): a notebook's relative
paths (``runs/...``) land there. A cell that raises stops the run with nbclient's
``CellExecutionError``, which names the cell and shows its traceback.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    """The index of the notebook's cell tagged ``parameters``.

    Raises:
        ValueError: none, or more than one.
    """
    found = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])
    ]
    if len(found) != 1:
        raise ValueError(f"expected one code cell tagged {PARAMETERS_TAG!r}, found {len(found)}")
    return found[0]


def smoke_parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The notebook's tiny settings (``metadata.gnnlm.smoke``)."""
    return dict(nb.metadata.get("gnnlm", {}).get("smoke", {}))


def parametrize(nb: nbformat.NotebookNode, values: Mapping[str, Any]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a cell setting ``values`` after its ``parameters`` cell.

    Every name must be assigned in the ``parameters`` cell: a typo would otherwise leave the real setting
    in place and the run would silently be a full one.
    """
    nb = nbformat.from_dict(nb)  # a deep copy
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not values:
        return nb
    index = parameters_cell(nb)
    assigned = {
        target.id
        for node in ast.parse(nb.cells[index].source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    unknown = sorted(set(values) - assigned)
    if unknown:
        raise ValueError(
            f"not set in the parameters cell: {', '.join(unknown)} (it sets {', '.join(sorted(assigned))})"
        )
    source = "# injected by notebooks/execute.py\n" + "\n".join(
        f"{name} = {value!r}" for name, value in values.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    cell.id = INJECTED_TAG
    nb.cells.insert(index + 1, cell)
    return nb


def execute(
    path: str | Path,
    *,
    smoke: bool = False,
    parameters: Mapping[str, Any] | None = None,
    cwd: str | Path | None = None,
    timeout: int = 1800,
) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` and return it with its outputs.

    Args:
        smoke: apply the notebook's smoke settings (``metadata.gnnlm.smoke``).
        parameters: more settings (they win over the smoke ones).
        cwd: the kernel's working folder.
        timeout: seconds one cell may run.
    """
    nb = nbformat.read(str(path), as_version=4)
    values = {**(smoke_parameters(nb) if smoke else {}), **(parameters or {})}
    nb = parametrize(nb, values)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(cwd or Path.cwd()).resolve())}},
    )
    client.execute()
    return nb


def _literal(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value  # a bare string


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--smoke", action="store_true", help="the notebooks' tiny settings")
    parser.add_argument("--set", type=_literal, action="append", default=[], metavar="NAME=VALUE")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--in-place", action="store_true", help="save the outputs into each notebook"
    )
    where.add_argument("--out", type=Path, help="write the executed copies to this folder")
    parser.add_argument("--cwd", type=Path, default=None, help="the kernel's working folder")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.in_place and (args.smoke or args.set):
        parser.error("--in-place saves the documented settings' outputs: no --smoke or --set")
    for path in args.notebooks:
        print(f"executing {path}", file=sys.stderr)
        nb = execute(
            path, smoke=args.smoke, parameters=dict(args.set), cwd=args.cwd, timeout=args.timeout
        )
        target = path if args.in_place else args.out / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
