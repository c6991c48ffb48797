"""The search-space file of ``gnnlm tune``: parsing, sampling, and errors naming file, line and value."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from gnnlm.config import ConfigError
from gnnlm.tasks import load_config
from gnnlm.train import TrainConfig
from gnnlm.tune import Param, SearchSpace

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str, config=None) -> SearchSpace:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return SearchSpace.load(path, config or TrainConfig())


def test_three_types_parse_and_sample(tmp_path):
    space = load(
        tmp_path,
        "# comment\n"
        "training.lr: {type: float, low: 1e-4, high: 1e-1, log: true}\n"
        "model.embedding_dim: {type: int, low: 32, high: 256, step: 32}\n"
        "training.loss: {type: categorical, choices: [bce, crossentropy]}\n"
        "model.interaction_kwargs.p: {type: int, low: 1, high: 2}\n",
    )
    assert space.keys == [
        "training.lr", "model.embedding_dim", "training.loss", "model.interaction_kwargs.p"
    ]  # fmt: skip
    lr, dim, loss, p = space.params
    # YAML 1.1 reads 1e-4 as a string: the space takes it as the number
    assert lr == Param("training.lr", "float", 1e-4, 0.1, log=True)
    assert dim == Param("model.embedding_dim", "int", 32, 256, step=32)
    assert loss.choices == ("bce", "crossentropy")
    assert p.to_dict() == {"type": "int", "low": 1, "high": 2}
    fixed = {"training.lr": 0.01, "model.embedding_dim": 64, "training.loss": "bce",
             "model.interaction_kwargs.p": 2}  # fmt: skip
    assert space.suggest(optuna.trial.FixedTrial(fixed)) == fixed
    # draws lie in the ranges, on the steps
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        values = space.suggest(study.ask())
        assert 1e-4 <= values["training.lr"] <= 0.1
        assert (
            values["model.embedding_dim"] % 32 == 0 and 32 <= values["model.embedding_dim"] <= 256
        )
        assert all(param.contains(values[param.key]) for param in space.params)


def test_contains_and_config_defaults(tmp_path):
    space = load(
        tmp_path,
        "training.lr: {type: float, low: 0.01, high: 0.1}\n"
        "model.embedding_dim: {type: int, low: 32, high: 256, step: 32}\n"
        "training.loss: {type: categorical, choices: [bce, crossentropy]}\n",
    )
    lr, dim, loss = space.params
    assert lr.contains(0.05) and not lr.contains(0.001) and not lr.contains("0.05")
    assert dim.contains(64) and not dim.contains(48) and not dim.contains(64.5)
    assert loss.contains("bce") and not loss.contains("margin")
    # TrainConfig(): lr 0.001 lies outside, embedding_dim 200 is off the steps, loss bce fits
    assert space.defaults(TrainConfig()) == {"training.loss": "bce"}


def test_shipped_umls_space_holds_the_shipped_config():
    config = load_config(ROOT / "configs" / "umls" / "complex.yaml")
    space = SearchSpace.load(ROOT / "configs" / "umls" / "complex_space.yaml", config)
    defaults = space.defaults(config)
    assert set(defaults) == set(space.keys)  # the first trial is exactly the shipped config
    assert defaults["training.lr"] == config.training.lr == 0.01
    assert defaults["model.embedding_dim"] == config.model.embedding_dim


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("training.lr: {type: float, low: 1e-4, high: 0.1}\ntraining.lrr: {type: float, low: 0.1, "
         "high: 1}\n", 2, "unknown config key 'training.lrr' (did you mean 'training.lr'?)"),
        ("\nmodel.embeding_dim: {type: int, low: 8, high: 16}\n", 2, "did you mean 'model.embedding_dim'"),
        ("training.lr:\n  type: float\n  low: 0.1\n  high: 0.01\n", 4, "high must be > low (0.1): 0.01"),
        ("training.lr:\n  type: float\n  low: 0\n  high: 1\n  log: true\n", 3, "a log scale needs low > 0: 0"),
        ("training.lr: {type: float, low: -1, high: 1}\n", 1,
         "training.lr=-1.0 does not fit the config: training.lr must be a finite number > 0, got -1.0"),
        ("training.epochs:\n  type: int\n  low: 1\n  high: 5.5\n", 4, "high must be an integer: 5.5"),
        ("training.lr: {type: float, low: 1e-3, high: 0.1, log: true, step: 0.01}\n", 1,
         "step and log: true cannot be combined"),
        ("training.lr: {type: real, low: 1e-3, high: 0.1}\n", 1, "type must be one of float, int, categorical, got 'real'"),
        ("training.lr: {type: float, lo: 1e-3, high: 0.1}\n", 1, "unknown option for type float (did you mean 'low'?)"),
        ("training.loss: {type: categorical, choices: []}\n", 1, "choices must be a non-empty list: []"),
        ("training.loss: {type: categorical, choices: [bce, bce]}\n", 1, "choices are repeated"),
        ("training.loss:\n  type: categorical\n  choices: [bce, 3]\n", 3,
         "training.loss=3 does not fit the config: training.loss must be a string, got 3"),
        ("training.lr: 0.01\n", 1, "training.lr must be a mapping like"),
        ("variants.a: {type: int, low: 1, high: 2}\n", 1, "variants.a cannot be searched"),
        ("training.batch_size: {type: int, low: 8, high: 64, step: 0}\n", 1, "step must be an integer >= 1: 0"),
        ("training.lr: {type: float, high: 0.1}\n", 1, "type float needs 'low'"),
        ("", 1, "the search space is empty"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_value(tmp_path, text, line, expected):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'space.yaml'}:{line}: "), message
    assert expected in message, message


def test_invalid_yaml_and_tags_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"space.yaml:1:\d+: YAML tag"):
        load(tmp_path, "training.lr: !!python/object:os.system {}\n")
    with pytest.raises(ConfigError, match=r"space.yaml:2:1: key 'training.lr' is repeated"):
        load(tmp_path, "training.lr: {type: float, low: 0.1, high: 1}\n"
                       "training.lr: {type: float, low: 0.1, high: 1}\n")  # fmt: skip
