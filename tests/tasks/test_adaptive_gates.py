"""Adaptive injection in triple classification: the regulariser in the loss, gate statistics in the
training logs and in every evaluation, and the gate plots drawn from a real run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gnnlm.fusion.gate_stats import record_outputs
from gnnlm.train import Trainer
from tests.tasks import test_triple_classification as tc

graph_dir = tc.graph_dir  # the small named KG (a module-scoped fixture)
load_task, tiny_config = tc.load_task, tc.tiny_config

ADAPTIVE = {
    "model.injection": ["entity", "adaptive"],
    "model.injection_kwargs": {
        "entity": {"source": "gnn"},
        "adaptive": {"regularizer": "sparsity", "regularizer_weight": 0.5},
    },
}


def real_means(gates: torch.Tensor, mask: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per layer: mean gate and share of gates above .5 over the real tokens of ``mask``."""
    real = gates[:, mask.bool()]  # [layers, real tokens]
    return real.mean(1).tolist(), (real > 0.5).double().mean(1).tolist()


def test_training_step_logs_the_gates_and_pays_the_regulariser(graph_dir):
    task = load_task(tiny_config(graph_dir, **ADAPTIVE))
    model = task.build_model().eval()  # no dropout: a second forward gives the same gates
    out = task.training_step(model, torch.arange(4), torch.Generator())
    batch = task.collate([task.examples["train"][i] for i in range(4)])
    with torch.no_grad(), record_outputs(model.fused) as outputs:
        logits, _ = model(batch)
    means, opened = real_means(outputs[0].knowledge_gates, batch.attention_mask)
    for j in range(2):
        assert out.logs[f"knowledge_gate_{j}"] == pytest.approx(means[j], abs=1e-6)
        assert out.logs[f"knowledge_open_{j}"] == pytest.approx(opened[j])
    assert out.logs["regularization"] == pytest.approx(0.5 * sum(means) / 2, rel=1e-5)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels.float())
    assert out.loss.item() == pytest.approx(bce.item() + out.logs["regularization"], rel=1e-5)


def test_without_adaptive_there_are_no_knowledge_logs(graph_dir):
    task = load_task(tiny_config(graph_dir))  # graph + entity
    model = task.build_model()
    out = task.training_step(model, torch.arange(4), torch.Generator())
    assert not any(k.startswith(("knowledge_", "regularization")) for k in out.logs)
    assert "knowledge_gates" not in task.evaluate(model.eval(), "valid")


def test_every_evaluation_reports_gates_and_the_run_draws_them(graph_dir, tmp_path):
    """A run logs the gates every step (training.log_steps: 1) and evaluates each epoch; the valid
    split's gate means equal a hand computation over all its real tokens (two evaluation batches);
    both plots come from the run's files."""
    from gnnlm.viz import gate_series, plot_gate_history, plot_token_gates, token_gate_matrix

    pytest.importorskip("matplotlib")
    overrides = {**ADAPTIVE, "training.epochs": 2, "training.log_steps": 1}
    result = Trainer(
        tiny_config(graph_dir, **overrides), run_dir=tmp_path / "run", quiet=True
    ).fit()
    task, model = result.task, result.model.eval()

    valid = task.evaluate(model, "valid")  # 12 examples, evaluation.batch_size 8
    batch = task.collate(task.examples["valid"])  # all at once: other padding, same real tokens
    with torch.no_grad(), record_outputs(model.fused) as outputs:
        model(batch)
    means, opened = real_means(outputs[0].knowledge_gates, batch.attention_mask)
    assert valid["knowledge_gates"] == pytest.approx(means, abs=1e-5)
    assert valid["knowledge_open"] == pytest.approx(opened)

    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == list(range(1, len(rows) + 1))  # a row at every step
    assert all("train_knowledge_gate_0" in r and "train_knowledge_gate_1" in r for r in rows)
    assert all("valid_accuracy" in r for r in rows if "loss" in r)  # epoch ends: evaluated too
    series = gate_series(tmp_path / "run")
    assert {"knowledge_gate_0", "knowledge_gate_1", "gate_entity_0", "gate_adaptive_1"} <= set(
        series
    )
    assert [s for s, _ in series["knowledge_gate_0"]] == steps

    plot_gate_history(tmp_path / "run", tmp_path / "gates.png")
    tokens, matrix = token_gate_matrix(model, batch, 1, tokenizer=task.collate.tokenizer)
    plot_token_gates(tokens, matrix, tmp_path / "tokens.png", layers=model.fused.fused_layers)
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("gates.png", "tokens.png"))
