"""The run log: metrics.csv / log.jsonl rows, and the same rows as TensorBoard scalars (read back with
TensorBoard's own EventAccumulator)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from gnnlm.train import StepOutput, Trainer
from gnnlm.train.run_log import MetricsLogger, tensorboard_tag
from tests.train.test_engine import RegressionTask, make

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


class GatedRegressionTask(RegressionTask):
    """The engine test's regression task, logging a gate value as a fusion task does
    (:func:`gnnlm.fusion.gate_stats.injection_logs`: ``gate_<mode>_<layer>``)."""

    def training_step(self, model, indices, generator):
        loss = nn.functional.mse_loss(model(self.x["train"][indices]), self.y["train"][indices])
        gate = float(torch.tanh(model.head.bias.detach()).item())
        return StepOutput(loss, {"gate_entity_0": gate, "knowledge_gate_1": 0.5 + gate / 2})


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_every_row_value_is_a_scalar_at_its_step(tmp_path):
    config = make(**{
        "training.epochs": 3, "training.log_steps": 3, "training.scheduler": "step",
        "training.scheduler_kwargs": {"step_size": 1, "gamma": 0.5},
        "training.param_groups": {"head": {"lr": 0.01}},
    })  # fmt: skip
    Trainer(GatedRegressionTask(config), run_dir=tmp_path, quiet=True).fit()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("loss" not in r for r in rows)  # mid-epoch rows (log_steps) are there too
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("epoch", "step"):
                expected.setdefault(tensorboard_tag(key), []).append((row["step"], value))
    got = scalars(tmp_path)
    # loss, every valid metric, every learning rate, the gates and the task's other logs
    assert {"train/loss", "valid/mse", "valid/num_examples", "lr", "lr/body", "lr/head",
            "gates/entity_0", "gates/knowledge_gate_1", "time/epoch_seconds"} <= set(got)  # fmt: skip
    assert set(got) == set(expected)
    for tag, series in expected.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in series], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in series], rel=1e-6), tag
    # the learning rates are the optimizer's: the head's own, halved every epoch
    assert [v for _, v in got["lr/head"]] == pytest.approx([0.01, 0.005, 0.0025])
    assert [v for _, v in got["lr/body"]] == pytest.approx([0.05, 0.025, 0.0125])


def test_resume_drops_the_events_logged_after_the_checkpoint(tmp_path):
    logger = MetricsLogger(tmp_path, metrics=("mrr",))
    for step in range(1, 5):  # a run that got to step 4, checkpointed at step 2, then died
        logger.log({"epoch": step, "step": step, "loss": float(step), "valid_mrr": step / 10})
    logger.close()
    resumed = MetricsLogger(tmp_path, metrics=("mrr",))
    resumed.resume(last_epoch=2, last_step=2)
    resumed.log({"epoch": 3, "step": 3, "loss": 30.0, "valid_mrr": 0.9})
    resumed.close()
    got = scalars(tmp_path)
    assert got["train/loss"] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert [s for s, _ in got["valid/mrr"]] == [1, 2, 3]
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_without_tensorboard_the_files_are_still_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    logger = MetricsLogger(tmp_path, metrics=("mrr",))
    logger.log({"epoch": 1, "step": 5, "loss": 0.5, "lr": 0.1, "seconds": 1.0, "valid_mrr": 0.2})
    logger.close()
    assert not (tmp_path / "tensorboard").exists()
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "epoch,step,loss,lr,seconds,valid_mrr",
        "1,5,0.5,0.1,1.0,0.2",
    ]


@pytest.mark.parametrize(
    ("key", "tag"),
    [("loss", "train/loss"), ("train_loss", "train/loss"), ("valid_hits@10", "valid/hits@10"),
     ("lr", "lr"), ("lr_gates", "lr/gates"), ("train_gate_entity_0", "gates/entity_0"),
     ("train_knowledge_gate_2", "gates/knowledge_gate_2"), ("train_contrastive", "train/contrastive"),
     ("seconds", "time/epoch_seconds"), ("epoch", None), ("step", None)],
)  # fmt: skip
def test_tags(key, tag):
    assert tensorboard_tag(key) == tag
