"""Multi-task fine-tuning: the task sampler, shared modules, loss weights, per-task metrics, exact resume."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from gnnlm.cli import main
from gnnlm.config import ConfigError
from gnnlm.tasks import load_config
from gnnlm.tasks.multitask import MultitaskConfig, MultitaskTask, TaskSampler
from gnnlm.train import Trainer
from gnnlm.train.trainer import seed_everything

DATA = os.environ.get("GNNLM_DATA_DIR", "")
CONFIG = Path(__file__).parents[2] / "configs" / "tasks" / "multitask_wn18rr.yaml"
WORDS = (
    "apple river stone cloud tiger violin garden candle mirror rocket island pencil forest "
    "button lemon castle planet anchor bridge feather"
).split()
TIMING = ("train_seconds", "eval_seconds", "examples_per_second")


def write_graph(folder: Path, num_entities: int, num_triples: int) -> Path:
    """A small named KG in the tsv format (the first ``num_entities`` words), split 80/10/10 %."""
    folder.mkdir(parents=True)
    rng = random.Random(num_entities)
    triples = set()
    while len(triples) < num_triples:
        h, t = rng.sample(range(num_entities), 2)
        triples.add((f"e{h}", rng.choice(["likes", "fears", "holds"]), f"e{t}"))
    triples = sorted(triples)
    rng.shuffle(triples)
    cut = [int(num_triples * 0.8), int(num_triples * 0.9)]
    for split, rows in zip(("train", "valid", "test"), (triples[: cut[0]],
                           triples[cut[0] : cut[1]], triples[cut[1] :])):  # fmt: skip
        (folder / f"{split}.txt").write_text("".join("\t".join(x) + "\n" for x in rows))
    names = "".join(f"e{i}\t{w}\n" for i, w in enumerate(WORDS[:num_entities]))
    (folder / "names.tsv").write_text(names)
    return folder


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    """Two graphs: ``big`` (20 entities) and ``small`` (12 entities: other GNN table shapes)."""
    root = tmp_path_factory.mktemp("kgs")
    return {"big": write_graph(root / "big", 20, 110), "small": write_graph(root / "small", 12, 60)}


def subtask(graph: Path, **data: Any) -> dict[str, Any]:
    """The mapping of a tiny-bert triple-classification sub-task on ``graph``."""
    return {
        "task": "triple_classification",
        "dataset": f"tsv:{graph}",
        "dataset_kwargs": {"entity_text": "names.tsv", "cache": False},
        "model": {"lm": "tiny-bert", "injection": ["graph"], "node_channels": 8,
                  "freeze_lm_layers": 1},
        "data": {"num_train": 6, "num_valid": 3, "num_test": 3, "max_nodes": 8, **data},
    }  # fmt: skip


def tiny_config(graphs: dict[str, Path], **top: Any) -> MultitaskConfig:
    """Two sub-tasks on one graph (matched / uniform negatives; 12 and 6 training examples)."""
    mapping = {
        "task": "multitask",
        "tasks": {
            "a": subtask(graphs["big"], negatives="matched"),
            "b": subtask(graphs["big"], negatives="uniform", num_train=3),
        },
        "share": ["fused"],
        "training": {"epochs": 1, "batch_size": 4, "optimizer": "adamw", "lr": 3e-3},
        "evaluation": {"batch_size": 8, "frequency": 0},
        **top,
    }
    return MultitaskConfig.from_dict(mapping)


def ready(config: MultitaskConfig) -> MultitaskTask:
    task = MultitaskTask(config)
    task.validate()
    task.setup()
    return task


# -- the sampler -------------------------------------------------------------------------------------
SIZES = [100, 400, 1500]
PROPORTIONAL = [0.05, 0.2, 0.75]
_ROOTS = [math.sqrt(n) for n in SIZES]
TEMPERATURE_2 = [r / sum(_ROOTS) for r in _ROOTS]  # n ** (1/2), normalised: .146, .291, .563


@pytest.mark.parametrize(
    "sampling, expected, other",
    [("proportional", PROPORTIONAL, TEMPERATURE_2), ("temperature", TEMPERATURE_2, PROPORTIONAL)],
)
def test_sampled_proportions_match_the_configuration_over_10000_draws(sampling, expected, other):
    """Each task's share of 10,000 draws is within 4 standard errors of its probability (and far
    from the other scheme's)."""
    sampler = TaskSampler(SIZES, sampling, temperature=2.0)
    generator = torch.Generator().manual_seed(0)
    n = 10_000
    counts = torch.bincount(
        torch.tensor([sampler.choose(step, generator) for step in range(n)]), minlength=3
    )
    share = (counts / n).tolist()
    for got, p, q in zip(share, expected, other):
        error = math.sqrt(p * (1 - p) / n)
        assert abs(got - p) < 4 * error, (sampling, share, expected)
        assert abs(got - q) > 8 * error  # the test tells the two schemes apart


def test_temperature_one_is_proportional_and_round_robin_cycles_without_drawing():
    assert TaskSampler(SIZES, "temperature", 1.0).probabilities.tolist() == pytest.approx(
        PROPORTIONAL
    )
    sampler = TaskSampler(SIZES, "round_robin")
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert [sampler.choose(step, generator) for step in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert torch.equal(generator.get_state(), state)  # the choice draws nothing


# -- sharing and the optimizer -----------------------------------------------------------------------
def test_shared_modules_are_one_object_and_their_parameters_are_in_the_optimizer_once(graphs):
    """share: [fused] ties b's fused LM to a's (heads stay separate); the engine's optimizer holds
    every trainable parameter exactly once, and one step on b's batch moves the shared LM."""
    config = tiny_config(graphs, sampling="round_robin")
    steps = []

    def capture(trainer):
        steps.append({n: p.detach().clone() for n, p in trainer.model.named_parameters()})

    trainer = Trainer(config, quiet=True, step_callbacks=[capture])
    result = trainer.fit()
    model = result.model
    assert model["a"].fused is model["b"].fused
    assert model["a"].head is not model["b"].head
    ids = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(ids) == trainable
    shared = model["a"].fused.lm.layers[1].output.dense.weight
    assert sum(p is shared for g in trainer.optimizer.param_groups for p in g["params"]) == 1
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("b.fused.") for n in names)  # named once, under a
    # round robin: step 0 trains a, step 1 trains b; b's loss moves the shared layer and b's head
    key = "a.fused.lm.model.encoder.layer.1.output.dense.weight"
    assert not torch.equal(steps[0][key], steps[1][key])
    assert not torch.equal(steps[0]["b.head.weight"], steps[1]["b.head.weight"])
    assert torch.equal(steps[0]["a.head.weight"], steps[1]["a.head.weight"])  # a had no batch


def test_graphs_of_different_sizes_share_the_lm_not_the_gnn_tables(graphs):
    tasks = {"a": subtask(graphs["big"]), "b": subtask(graphs["small"])}
    task = ready(tiny_config(graphs, tasks=tasks))
    seed_everything(0)
    with pytest.raises(ConfigError, match=r"share\[0\] 'fused': tasks.b: the module differs .*"
                       r"e.g. fused.lm"):  # fmt: skip
        task.build_model()
    task.config.share = ["fused.lm"]
    model = task.build_model()
    assert model["a"].fused.lm is model["b"].fused.lm
    assert model["a"].fused is not model["b"].fused
    groups = task.parameter_groups(model)
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    task.config.share = ["fused.nothing"]
    with pytest.raises(
        ConfigError, match=r"share\[0\] 'fused.nothing': tasks.a has no such module"
    ):
        task.build_model()


def test_lora_adapters_go_once_into_the_shared_lm(graphs):
    """LoRA + multi-task: the run's finetuning section adapts the one shared LM once; the optimizer
    holds each adapter once, and the saved (merged) model is still tied."""
    trainer = Trainer(tiny_config(graphs, finetuning={"lora": {"r": 2}}), quiet=True)
    model = trainer.fit().model
    lm = [p for g in trainer.optimizer.param_groups if g["name"] == "lm" for p in g["params"]]
    assert len(lm) == 8  # A and B of query and value in each of tiny-bert's 2 layers
    assert len({id(p) for p in lm}) == 8
    assert model["a"].fused is model["b"].fused


# -- the loss -----------------------------------------------------------------------------------------
def test_loss_weights_scale_the_loss_exactly_and_logs_name_the_task(graphs):
    task = ready(tiny_config(graphs, sampling="round_robin"))
    seed_everything(0)
    model = task.build_model().eval()  # no dropout: two passes give the same loss

    def step(step: int, weights: dict[str, float]):
        task.config.loss_weights = weights
        task.step = step
        return task.training_step(model, torch.arange(4), torch.Generator().manual_seed(3))

    plain, weighted = step(1, {}), step(1, {"b": 0.5})
    assert torch.equal(weighted.loss, 0.5 * plain.loss)
    assert weighted.logs == {"share_a": 0.0, "loss_a": 0.0, "share_b": 1.0,
                             "loss_b": plain.loss.item()}  # fmt: skip
    assert torch.equal(step(0, {"b": 0.5}).loss, step(0, {}).loss)  # a's weight is 1
    # b's batch is drawn from b's 6 training examples, the same with the same generator state
    sub = task.tasks["b"]
    indices = torch.randint(6, (4,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(sub.training_step(model["b"], indices, None).loss, plain.loss)


# -- the engine ---------------------------------------------------------------------------------------
class Killed(RuntimeError):
    pass


@pytest.mark.parametrize("sampling", ["temperature", "round_robin"])
def test_killed_mid_epoch_and_resumed_equals_an_uninterrupted_run(graphs, tmp_path, sampling):
    """Two epochs of 5 steps (18 examples, batches of 4), a checkpoint after every step, killed after
    step 7: the resumed run ends with the same weights (bit for bit), logs and metrics, and
    metrics.json reports every task's metrics and their mean."""
    config = tiny_config(
        graphs, sampling=sampling, loss_weights={"b": 0.5},
        training={"epochs": 2, "batch_size": 4, "checkpoint_steps": 1, "lr": 3e-3},
        evaluation={"batch_size": 8, "frequency": 1},
    )  # fmt: skip

    def kill_after(trainer):
        if trainer.step == 7:
            raise Killed("killed after step 7")

    Trainer(config, run_dir=tmp_path / "a", quiet=True).fit()
    with pytest.raises(Killed):
        Trainer(config, run_dir=tmp_path / "b", quiet=True, step_callbacks=[kill_after]).fit()
    resumed = Trainer(config, run_dir=tmp_path / "b", quiet=True).fit(resume=True)
    assert resumed.metrics["steps"] == 10

    a, b = (load_file(tmp_path / run / "model" / "model.safetensors") for run in "ab")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in "ab"]
    for m in metrics:
        for key in TIMING:
            m.pop(key)
    assert metrics[0] == metrics[1]
    logs = [
        [{k: v for k, v in json.loads(line).items() if k != "seconds"}
         for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in "ab"
    ]  # fmt: skip
    assert logs[0] == logs[1] and len(logs[0]) == 2
    for row in logs[0]:  # both tasks trained in each epoch, and their shares add up to 1
        assert 0 < row["train_share_a"] < 1 and 0 < row["train_share_b"] < 1
        assert row["train_share_a"] + row["train_share_b"] == pytest.approx(1.0)
    if sampling == "round_robin":  # steps a, b, a, b, a of 4, 4, 4, 4 and 2 examples
        assert logs[0][0]["train_share_a"] == pytest.approx(10 / 18)

    test = metrics[0]["test"]
    assert metrics[0]["selection_metric"] == "mean_score"
    for name in "ab":
        assert test[f"{name}/accuracy"] == test[name]["accuracy"]
        assert test[f"{name}/loss"] == test[name]["loss"]
        assert test[name]["num_examples"] == 6
    assert test["mean_score"] == pytest.approx((test["a/accuracy"] + test["b/accuracy"]) / 2)
    assert "valid_a/accuracy" in logs[0][0] and "valid_mean_score" in logs[0][0]

    # the saved run loads and evaluates again from its folder (the default save/load of the task)
    from gnnlm.cli.evaluate import load_run

    _, task, model = load_run(tmp_path / "b")
    assert model["a"].fused is model["b"].fused  # tied again when rebuilt
    model.eval()
    with torch.no_grad():
        again = task.evaluate(model, "test")
    assert again == metrics[1]["test"]


# -- config ------------------------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_errors_name_the_sub_task_key_and_line(tmp_path, graphs):
    head = "task: multitask\ntasks:\n  a:\n    task: triple_classification\n"
    path = write(tmp_path / "c.yaml", head + "    data:\n      num_tarin: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml:6: unknown config key 'tasks.a.data.num_tarin' "
                       r"\(did you mean 'tasks.a.data.num_train'\?\)"):  # fmt: skip
        MultitaskTask(load_config(path))
    path = write(tmp_path / "c.yaml", head + "    training:\n      lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml:5: tasks.a.training: a sub-task cannot set "
                       r"training; it is the multi-task run's"):  # fmt: skip
        MultitaskTask(load_config(path))
    path = write(tmp_path / "c.yaml", head + "    evaluation:\n      patience: 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml:6: tasks.a.evaluation.patience: a sub-task's "
                       r"evaluation may set only metric, batch_size"):  # fmt: skip
        MultitaskTask(load_config(path))
    path = write(tmp_path / "c.yaml", head + "    model:\n      lm: tiny-bert\n"
                 "    data:\n      max_length: 1000\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"c.yaml:8: tasks.a: data.max_length=1000 is longer"):
        MultitaskTask(load_config(path)).validate()
    path = write(tmp_path / "c.yaml", head.replace("triple_classification", "triple_clasification"))
    with pytest.raises(ConfigError, match=r"c.yaml:4: tasks.a.task: unknown task"):
        MultitaskTask(load_config(path))
    with pytest.raises(ConfigError, match=r"loss_weights.c: no such sub-task; sub-tasks: a, b"):
        Trainer(tiny_config(graphs, loss_weights={"c": 2.0}), quiet=True)
    path = write(tmp_path / "c.yaml", "task: multitask\nsampling: uniform\n")
    with pytest.raises(ConfigError, match="sampling must be one of proportional, temperature"):
        load_config(path)


@pytest.mark.skipif(
    not (Path(DATA) / "wn18rr" / "entity2text.txt").is_file(),
    reason="needs $GNNLM_DATA_DIR with wn18rr",
)
def test_the_shipped_wn18rr_config_trains_through_gnnlm_train(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = []
    for name in ("matched", "neighbourhood"):
        tiny += ["--set", f"tasks.{name}.model.lm=tiny-bert", "--set", f"tasks.{name}.data.num_train=8",
                 "--set", f"tasks.{name}.data.num_valid=4", "--set", f"tasks.{name}.data.num_test=4"]  # fmt: skip
    code = main(["train", str(CONFIG), *tiny, "--set", "training.batch_size=8", "--out", str(out),
                 "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4  # 16 + 16 examples in batches of 8
    for split in ("valid", "test"):
        assert set(metrics[split]) >= {"mean_score", "matched/accuracy", "neighbourhood/accuracy"}
        assert metrics[split]["neighbourhood"]["num_examples"] == 8
