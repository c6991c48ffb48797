from __future__ import annotations

from pathlib import Path

import pytest

from gnnlm.train import TrainConfig
from gnnlm.train.config import ConfigError, apply_overrides, config_diff

MODELS = ("transe", "distmult", "complex", "rotate", "tucker", "conve")
CONFIGS = sorted(
    p
    for p in Path(__file__).resolve().parents[2].joinpath("configs").glob("*/*.yaml")
    if p.stem in MODELS
)


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_load_types_and_defaults(tmp_path):
    path = write(tmp_path, "dataset: nations\nmodel:\n  interaction: rotate\n  interaction_kwargs: {margin: 6}\n"
                           "training:\n  lr: 1e-3\n  epochs: 3\n")  # fmt: skip
    config = TrainConfig.load(path)
    assert config.dataset == "nations"
    assert config.model.interaction_kwargs == {"margin": 6}
    assert config.training.lr == 0.001 and isinstance(
        config.training.lr, float
    )  # YAML reads 1e-3 as str
    assert config.training.epochs == 3
    assert config.evaluation.metric == "mrr"


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "dataset: umls\ntraining:\n  epochs: 3\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        TrainConfig.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4: unknown config key 'training.lrr'")
    assert "did you mean 'training.lr'" in message


def test_wrong_type_names_file_line_and_value(tmp_path):
    path = write(tmp_path, "dataset: umls\nmodel:\n  embedding_dim: big\n")
    with pytest.raises(
        ConfigError, match=r"run\.yaml:3: model\.embedding_dim must be an integer, got 'big'"
    ):
        TrainConfig.load(path)
    path = write(tmp_path, "training:\n  reciprocal: 1\n")
    with pytest.raises(ConfigError, match=r":2: training\.reciprocal must be true/false, got 1"):
        TrainConfig.load(path)


def test_overrides():
    config = apply_overrides(
        TrainConfig(),
        ["training.lr=0.5", "training.epochs=7", "model.encoder=null", "model.interaction_kwargs.p=1",
         "evaluation.patience=0", "training.scheduler=step", "training.scheduler_kwargs={step_size: 2}"],
    )  # fmt: skip
    assert config.training.lr == 0.5 and config.training.epochs == 7
    assert config.model.interaction_kwargs == {"p": 1}
    assert config.training.scheduler_kwargs == {"step_size": 2}
    assert set(config_diff(TrainConfig(), config)) == {
        "training.lr", "training.epochs", "model.interaction_kwargs", "evaluation.patience",
        "training.scheduler", "training.scheduler_kwargs",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.lrr=1", "unknown config key 'training.lrr' (did you mean 'training.lr'?)"),
        ("traning.lr=1", "unknown config key 'traning' (did you mean 'training'?)"),
        ("training.epochs=1.5", "training.epochs must be an integer, got 1.5"),
        ("training.epochs", "expected key.sub=value"),
        ("model.interaction.x=1", "model.interaction is not a mapping"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(TrainConfig(), [override])
    assert message in str(err.value)
    assert repr(override) in str(err.value)


def test_yaml_round_trip(tmp_path):
    config = apply_overrides(
        TrainConfig(), ["training.loop=slcwa", "training.adversarial_temperature=1.0"]
    )
    config.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml") == config


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_shipped_configs_load(path):
    config = TrainConfig.load(path)
    assert config.dataset
    assert config.model.interaction == path.stem
    assert "Aims at:" in path.read_text()  # every config states the published number it aims at


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in Path(__file__).resolve().parents[2].joinpath("configs").glob("*/*.yaml")
        if not p.stem.endswith("_space")  # search spaces of gnnlm tune: tests/tune
    ),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_every_shipped_config_loads_as_its_tasks_config(path):
    """Every file in configs/ (any task) reads through the one loader, variants included, and saves
    back to the same config."""
    from gnnlm.tasks import load_config, lookup_task

    config = load_config(path)
    assert isinstance(config, lookup_task(config.task).config_class)
    for name in config.variants:
        config.variant(name, 1)
    again = type(config).from_dict(config.to_dict())
    assert config_diff(config, again) == {}
