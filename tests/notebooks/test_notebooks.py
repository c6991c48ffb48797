"""Every notebook in notebooks/ runs under nbclient at its smoke settings, and is saved with outputs.

The smoke run executes the notebook as a user would (a Jupyter kernel, cell by cell), with the tiny
settings of ``metadata.gnnlm.smoke`` injected after its ``parameters`` cell (notebooks/execute.py). The
executed copies go to ``$GNNLM_NOTEBOOK_OUT`` when it is set (CI keeps them), else to the test's folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DATA = Path(os.environ.get("GNNLM_DATA_DIR", ""))


def _load_executor():
    spec = importlib.util.spec_from_file_location("nb_execute", ROOT / "notebooks" / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute_module = _load_executor()


def stdout_of(nb) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"custom_encoder.ipynb", "two_stage_injection.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_with_the_outputs_of_a_full_run(path):
    """Committed notebooks carry their outputs: every code cell ran, in order, without an error, and
    no smoke settings were left injected."""
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    assert all(isinstance(n, int) for n in counts), f"{path.name}: not executed: {counts}"
    assert counts == sorted(counts)
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    tags = [t for c in code for t in c.get("metadata", {}).get("tags", [])]
    assert execute_module.INJECTED_TAG not in tags
    assert tags.count(execute_module.PARAMETERS_TAG) == 1
    assert execute_module.smoke_parameters(nb), "a notebook needs smoke settings for CI"


def test_parametrize_injects_after_the_parameters_cell_and_refuses_unknown_names():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import math"),
        nbformat.v4.new_code_cell("EPOCHS = 10\nLM = 'minilm'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(EPOCHS, LM)"),
    ]
    out = execute_module.parametrize(nb, {"EPOCHS": 1, "LM": "tiny-bert"})
    assert [c.source for c in out.cells][2] == (
        "# injected by notebooks/execute.py\nEPOCHS = 1\nLM = 'tiny-bert'"
    )
    assert len(nb.cells) == 3  # the original is untouched
    # injecting twice replaces the earlier injection instead of stacking them
    again = execute_module.parametrize(out, {"EPOCHS": 2})
    assert len(again.cells) == 4 and again.cells[2].source.endswith("EPOCHS = 2")
    with pytest.raises(ValueError, match="not set in the parameters cell: EPOCH "):
        execute_module.parametrize(nb, {"EPOCH": 1})


@pytest.fixture(autouse=True)
def one_thread_kernel(monkeypatch):
    """The kernel inherits the environment: one torch thread, as a smoke run needs no more. With two
    on a busy machine, OpenMP's waiting threads made the PyG convs' cells 10-50x slower."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.mark.skipif(not (DATA / "umls").is_dir(), reason="needs $GNNLM_DATA_DIR with umls")
def test_custom_encoder_notebook_runs(tmp_path):
    nb = _run(NOTEBOOKS_BY_NAME["custom_encoder"], tmp_path)
    lines = [line for line in stdout_of(nb).splitlines() if " MRR " in line]
    assert len(lines) == 5  # GatedGNN, two stock PyG convs, R-GCN, plain DistMult
    mrrs = [float(line.split(" MRR ")[1].split()[0]) for line in lines]
    assert all(0.0 < m <= 1.0 for m in mrrs)


@pytest.mark.skipif(
    not (DATA / "fb15k-237").is_dir(), reason="needs $GNNLM_DATA_DIR with fb15k-237"
)
def test_two_stage_injection_notebook_runs(tmp_path):
    pytest.importorskip("matplotlib")
    nb = _run(NOTEBOOKS_BY_NAME["two_stage_injection"], tmp_path)
    out = stdout_of(nb)
    assert "hand-over: copied" in out and "test accuracy:" in out
    # stage 2 started from stage 1: only the task head starts fresh
    assert "fresh: ['head.bias', 'head.weight']" in out
    run = tmp_path / "runs" / "notebook-two-stage"
    assert (run / "pretraining" / "metrics.json").is_file()
    for name in ("gate_history.png", "token_gates.png"):
        assert (run / name).stat().st_size > 1000


NOTEBOOKS_BY_NAME = {p.stem: p for p in NOTEBOOKS}


def _run(path: Path, cwd: Path):
    nb = execute_module.execute(path, smoke=True, cwd=cwd, timeout=600)
    keep = os.environ.get("GNNLM_NOTEBOOK_OUT")
    target = Path(keep) if keep else cwd
    target.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(target / path.name))
    injected = [c for c in nb.cells if execute_module.INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1  # the smoke settings really were applied
    return nb
