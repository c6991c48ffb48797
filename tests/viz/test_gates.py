"""Gate plots: series read from a run's log, the token x layer matrix of one example, files written."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("matplotlib")

from gnnlm.viz import gate_series, plot_gate_history, plot_token_gates, token_gate_matrix  # noqa: E402
from tests.fusion.helpers import EXAMPLES, build, collator, perturb, tokenizer  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"

#: rows as the engine logs them: train_* are running means since the epoch began (steps 1-2, then
#: 1-4 at the epoch's end, the row with "loss"; epoch 2 restarts at step 5).
ROWS = [
    {"epoch": 1, "step": 2, "train_gate_graph_0": 0.70, "train_knowledge_gate_0": 0.9},
    {"epoch": 1, "step": 4, "loss": 0.6, "train_gate_graph_0": 0.60, "train_knowledge_gate_0": 0.8},
    {"epoch": 2, "step": 6, "train_gate_graph_0": 0.40, "train_knowledge_gate_0": 0.5,
     "train_knowledge_open_0": 0.5, "train_accuracy": 0.5},
]  # fmt: skip


def rounded(points):
    return [(step, round(value, 9)) for step, value in points]


def test_series_undo_the_running_means_and_keep_only_gates():
    series = {key: rounded(points) for key, points in gate_series(ROWS).items()}
    assert set(series) == {"gate_graph_0", "knowledge_gate_0"}  # not the open share or accuracy
    # steps 3-4: (4 * .6 - 2 * .7) / 2 = .5; epoch 2 restarts: its first row is its own window
    assert series["gate_graph_0"] == [(2, 0.7), (4, 0.5), (6, 0.4)]
    assert series["knowledge_gate_0"] == [(2, 0.9), (4, 0.7), (6, 0.5)]
    raw = gate_series(ROWS, windowed=False)
    assert rounded(raw["gate_graph_0"]) == [(2, 0.7), (4, 0.6), (6, 0.4)]


def test_gate_history_from_a_run_directory_writes_a_png(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    fig = plot_gate_history(tmp_path / "run", tmp_path / "plots" / "gates.png")
    path = tmp_path / "plots" / "gates.png"
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG
    labels = sorted(line.get_label() for line in fig.axes[0].get_lines())
    assert labels == ["adaptive, per token (mean), layer 0", "graph tanh(g), layer 0"]
    with pytest.raises(ValueError, match="no gate series"):
        plot_gate_history([{"epoch": 1, "step": 1, "loss": 0.5}])


@pytest.mark.parametrize("index", [0, 3])
def test_token_matrix_is_the_models_gates_on_real_tokens_and_is_drawn(tmp_path, index):
    model = build("bert", ["graph", "adaptive"])
    perturb(model)  # knowledge that differs from token to token
    batch = collator()(EXAMPLES)
    real = batch.attention_mask[index].bool()
    assert not batch.attention_mask.bool().all()
    tokens, matrix = token_gate_matrix(model, batch, index, tokenizer=tokenizer())
    expected = model(batch).knowledge_gates[:, index, real].T  # [real tokens, layers]
    assert matrix.shape == (int(real.sum()), 2)
    assert torch.equal(matrix, expected.detach())
    assert matrix.std() > 0  # per-token gates, not one value
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "[PAD]" not in tokens
    assert tokens == tokenizer().convert_ids_to_tokens(batch.input_ids[index, real].tolist())

    fig = plot_token_gates(tokens, matrix, tmp_path / "tokens.png", layers=model.fused_layers)
    assert (tmp_path / "tokens.png").read_bytes()[:8] == PNG
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == tokens


def test_token_matrix_needs_adaptive_injection():
    with pytest.raises(ValueError, match="no adaptive gates"):
        token_gate_matrix(build("bert", ["graph"]), collator()(EXAMPLES), tokenizer=tokenizer())
