"""Config values, names and keywords are checked when the config loads (or before the data loads)."""

from __future__ import annotations

import pytest
from torch import nn

from gnnlm.encoders import GraphEncoder
from gnnlm.tasks.link_prediction import LinkPredictionTrainingConfig as TrainingConfig
from gnnlm.tasks.link_prediction import check_components
from gnnlm.train import ConfigError, TrainConfig, Trainer
from gnnlm.train.config import apply_overrides, check_writable_dir
from gnnlm.utils.strict_yaml import load_yaml, quote

CONFIG = """\
dataset: nations
model:
  interaction: complex
  embedding_dim: 16
training:
  lr: 0.01
  regularizer_weight: 0.0
"""


@pytest.fixture
def no_data(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the config was checked")

    monkeypatch.setattr("gnnlm.data.load_dataset", load_dataset)


def test_a_value_out_of_range_names_file_line_value_and_fix(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("regularizer_weight: 0.0", "regularizer_weight: -0.5"))
    with pytest.raises(ConfigError) as err:
        TrainConfig.load(path)
    assert str(err.value) == (
        f"{path}:7: training.regularizer_weight must be a finite number >= 0, got -0.5; "
        "e.g. 0.01, or 0 for none"
    )


@pytest.mark.parametrize("value", ["nan", ".inf", "-1e-3", "0"])
def test_lr_must_be_finite_and_positive(value):
    with pytest.raises(ConfigError, match=r"training.lr must be a finite number > 0"):
        apply_overrides(TrainConfig(), [f"training.lr={value}"])


def test_a_config_built_in_python_is_checked_before_the_data_loads(no_data):
    config = TrainConfig(training=TrainingConfig(clip_grad_norm=-1.0))
    with pytest.raises(ConfigError) as err:
        Trainer(config)
    assert str(err.value) == (
        "config: training.clip_grad_norm must be a finite number > 0, got -1.0; "
        "e.g. 1.0, or null for no clipping"
    )


def test_an_unwritable_run_dir_fails_before_the_data_loads(no_data, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Trainer(TrainConfig(), run_dir=tmp_path / "file" / "run")
    check_writable_dir(tmp_path / "new" / "nested")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()


def test_errors_point_at_where_a_key_was_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("interaction: complex", "interaction: complx"))
    config = TrainConfig.load(path, ["training.optimizer=adam"])
    assert config.origin("model.interaction") == f"{path}:3"
    assert config.origin("training.optimizer") == "--set 'training.optimizer=adam'"
    assert config.origin("training.epochs") == f"{path}:5"  # not in the file: its section
    assert config.origin("evaluation.patience") == str(path)  # no section either: the file
    with pytest.raises(
        ConfigError, match=rf"^{path}:3: unknown interaction 'complx'; valid: complex"
    ):
        check_components(config)


def test_unknown_keyword_of_a_component_is_named(tmp_path):
    config = apply_overrides(
        TrainConfig(), ["model.interaction=transe", "model.interaction_kwargs.q=2"]
    )
    with pytest.raises(ConfigError) as err:
        check_components(config)
    assert str(err.value) == (
        "--set 'model.interaction_kwargs.q=2': model.interaction_kwargs has the key 'q', which TransE "
        "does not take; valid keys: p, margin, normalize_entities"
    )
    ok = apply_overrides(
        TrainConfig(), ["model.interaction=transe", "model.interaction_kwargs.p=2"]
    )
    check_components(ok)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: [1, !!binary aGk=]\n", "<t>:2:8: YAML tag '!!binary' is not allowed; write the plain "
         "value: 'b: [1, !!binary aGk=]'"),
        ("a: !mine 1\n", "<t>:1:4: YAML tag '!mine' is not allowed; write the plain value: 'a: !mine 1'"),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "<t>:4:3: key 'b.c' is repeated (YAML would keep only the last): "
         "'c: 2'"),
        ("a: 1\n b: 2\n", "<t>:2:3: invalid YAML: mapping values are not allowed here: 'b: 2'"),
    ],
)  # fmt: skip
def test_yaml_is_read_strictly(text, message):
    with pytest.raises(ConfigError) as err:
        load_yaml(text, "<t>")
    assert str(err.value) == message


def test_long_values_are_cut_in_messages():
    assert quote("x" * 10) == repr("x" * 10)
    long = quote("x" * 1000)
    assert len(long) < 240 and long.endswith("... (1002 characters)")


class NeedsDepth(GraphEncoder):
    def __init__(self, in_channels: int, out_channels: int, *, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_channels, out_channels)] * depth)


def test_an_encoder_argument_nobody_fills_in_is_named():
    spec = f"{__name__}:NeedsDepth"
    config = apply_overrides(TrainConfig(), [f"model.encoder={spec}"])
    with pytest.raises(ConfigError) as err:
        check_components(config)
    assert str(err.value) == (
        f"--set 'model.encoder={spec}': model.encoder '{spec}' needs depth: set model.encoder_kwargs "
        "(e.g. {depth: ...})"
    )
    check_components(apply_overrides(config, ["model.encoder_kwargs.depth=2"]))


def test_an_unknown_dataset_option_lists_the_valid_ones():
    config = apply_overrides(TrainConfig(), ["dataset=conceptnet", "dataset_kwargs.subst=CN-82K"])
    with pytest.raises(ConfigError) as err:
        check_components(config)
    assert str(err.value) == (
        "--set 'dataset_kwargs.subst=CN-82K': dataset_kwargs has the key 'subst', which 'conceptnet' "
        "does not take (did you mean 'subset'?); valid keys: subset, unseen, duplicates, verify, "
        "download, cache"
    )
    check_components(apply_overrides(config, ["dataset_kwargs={subset: CN-82K}"]))
