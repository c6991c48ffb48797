"""notebooks/custom_encoder.ipynb: valid notebook JSON, and its encoder works from Python (the whole
notebook runs under nbclient in tests/notebooks/test_notebooks.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gnnlm.encoders import build_gnn_representation

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "custom_encoder.ipynb"


def code_cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4 and isinstance(nb["cells"], list)
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["source"], list) and "id" in cell
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] or isinstance(cell["outputs"], list)
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebook_is_valid_and_its_encoder_works(umls):
    cells = code_cells()
    for i, source in enumerate(cells):
        compile(source, f"{NOTEBOOK.name}[code cell {i}]", "exec")
    namespace: dict = {}
    for source in cells[:2]:  # imports + data, then the encoder definition
        exec(compile(source, NOTEBOOK.name, "exec"), namespace)
    encoder = namespace["GatedGNN"](16, 16, 2 * umls.num_relations)
    rep = build_gnn_representation(
        encoder, umls, embedding_dim=16, interaction="distmult", reciprocal=True
    )
    entity, relation = rep()
    assert entity.shape == (umls.num_entities, 16) and relation.shape == (92, 16)
    assert torch.isfinite(entity).all()
