"""Every user error of every command is one line, ``gnnlm <command>: ...``, with exit status 2.

The training checks must fail before any data is read: ``load_dataset`` is replaced by a function that
fails the test if it is called.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from gnnlm.cli import main
from gnnlm.encoders import GraphEncoder

CONFIG = """\
dataset: umls
model:
  interaction: distmult
  embedding_dim: 8
training:
  epochs: 1
  lr: 0.01
evaluation:
  frequency: 0
"""


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path_factory.mktemp("cli-cache")))


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the command gets as far as loading a dataset."""

    def load_dataset(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the config was checked")

    monkeypatch.setattr("gnnlm.data.load_dataset", load_dataset)


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


BAD_VALUES = [
        ("training.lr=0", "training.lr must be a finite number > 0, got 0.0; e.g. 0.001"),
        ("training.lr=-0.1", "training.lr must be a finite number > 0, got -0.1; e.g. 0.001"),
        ("training.lr=.nan", "training.lr must be a finite number > 0, got nan; e.g. 0.001"),
        ("training.batch_size=0", "training.batch_size must be an integer >= 1, got 0; e.g. 256"),
        ("model.embedding_dim=0", "model.embedding_dim must be an integer >= 1, got 0; e.g. 200"),
        ("model.embedding_dim=-8", "model.embedding_dim must be an integer >= 1, got -8; e.g. 200"),
        ("evaluation.frequency=-1",
         "evaluation.frequency must be an integer >= 0, got -1; e.g. 5, or 0 for only at the end"),
        ("evaluation.patience=-2",
         "evaluation.patience must be an integer >= 0, got -2; e.g. 5, or 0 for no early stopping"),
        ("training.regularizer_weight=-0.01",
         "training.regularizer_weight must be a finite number >= 0, got -0.01; e.g. 0.01, or 0 for none"),
        ("training.clip_grad_norm=-1",
         "training.clip_grad_norm must be a finite number > 0, got -1.0; e.g. 1.0, or null for no "
         "clipping"),
    ]  # fmt: skip


def test_a_bad_value_in_the_file_names_file_and_line(config, capsys, no_data, tmp_path):
    config.write_text(CONFIG.replace("lr: 0.01", "lr: .nan"))
    code, err = run(capsys, "train", config, "--out", tmp_path / "run")
    assert code == 2
    assert (
        err
        == f"gnnlm train: {config}:7: training.lr must be a finite number > 0, got nan; e.g. 0.001\n"
    )


UNKNOWN_NAMES = [
        ("dataset=umsl", "unknown dataset 'umsl'; known: fb15k-237, wn18rr, umls, kinship, nations, "
         "conceptnet, metaqa, ogbl-biokg, ogbl-wikikg2, tsv:DIR"),
        ("training.optimizer=adamm", "unknown optimizer 'adamm'; valid: adadelta, adafactor, adagrad, "
         "adam, adamax, adamw, asgd, lbfgs, muon, nadam, radam, rmsprop, rprop, sgd, sparseadam (or "
         "'package.module:Class' for your own)"),
        ("model.interaction=complx", "unknown interaction 'complx'; valid: complex, conve, distmult, "
         "rotate, transe, tucker (or 'package.module:Class' for your own)"),
        ("training.optimizer_kwargs.beta=0.9", "training.optimizer_kwargs has the key 'beta', which "
         "Adam does not take (did you mean 'betas'?); valid keys: lr, betas, eps, weight_decay, amsgrad, "
         "foreach, maximize, capturable, differentiable, fused, decoupled_weight_decay"),
        ("model.interaction_kwargs.p=1", "model.interaction_kwargs has the key 'p', which DistMult does "
         "not take; valid keys: (none)"),
        ("training.loss_kwargs.margn=1", "training.loss_kwargs has the key 'margn', which BCELoss does "
         "not take; valid keys: (none)"),
    ]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), BAD_VALUES + UNKNOWN_NAMES)
def test_bad_values_and_unknown_names_are_one_line_before_any_data(
    config, capsys, no_data, tmp_path, override, message
):
    """Bad values, unknown components and unknown keywords (listing the valid ones), all before
    any data loads."""
    code, err = run(
        capsys, "train", config, "--set", override, "--out", tmp_path / "run", "--quiet"
    )
    assert (code, err) == (2, f"gnnlm train: --set '{override}': {message}\n")


def test_yaml_tags_are_refused_with_line_and_column(config, capsys, no_data, tmp_path):
    config.write_text(CONFIG.replace("lr: 0.01", "lr: !!python/object/apply:os.getcwd []"))
    code, err = run(capsys, "train", config, "--out", tmp_path / "run")
    assert code == 2
    assert err == (
        f"gnnlm train: {config}:7:7: YAML tag '!!python/object/apply:os.getcwd' is not allowed; write "
        "the plain value: 'lr: !!python/object/apply:os.getcwd []'\n"
    )
    config.write_text(CONFIG)
    code, err = run(
        capsys, "train", config, "--set", "training.lr=!!float 1", "--out", tmp_path / "r"
    )
    assert code == 2
    assert err == (
        "gnnlm train: --set 'training.lr=!!float 1':1:1: YAML tag '!!float' is not allowed; write the "
        "plain value: '!!float 1'\n"
    )


def test_invalid_yaml_quotes_at_most_200_characters_of_the_line(config, capsys, tmp_path):
    config.write_text(CONFIG + "bad: [" + "x" * 500 + "\n")
    code, err = run(capsys, "train", config, "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"gnnlm train: {config}:11:1: invalid YAML: expected ',' or ']'")
    assert len(err) < len(str(config)) + 400


def test_an_out_that_cannot_be_a_folder_fails_before_training(config, capsys, no_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run(capsys, "train", config, "--out", blocker / "run")
    assert (code, err) == (
        2,
        f"gnnlm train: run directory {blocker / 'run'} (--out): {blocker} is a file, not a folder; "
        "choose another --out\n",
    )


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write: a chmod 500 one, or (as root, who ignores that) /sys."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not _writable(locked):
            yield locked
        elif Path("/sys").is_dir() and not _writable(Path("/sys")):
            yield Path("/sys")
        else:
            pytest.skip("no read-only folder here")
    finally:
        locked.chmod(0o700)


def test_a_read_only_out_fails_before_training(config, capsys, no_data, read_only_folder):
    out = read_only_folder / "gnnlm-run"
    code, err = run(capsys, "train", config, "--out", out)
    assert (code, err) == (
        2,
        f"gnnlm train: run directory {out} (--out): cannot write in {read_only_folder} "
        "(Permission denied); choose a writable --out\n",
    )


class BadFlagEncoder(GraphEncoder):
    supports_edge_type = "yes"  # the protocol wants a bool

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_channels, out_channels)])


class WrongWidthEncoder(GraphEncoder):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_channels, out_channels + 1)])

    def layer_forward(self, i, x, edge_index, edge_type=None, edge_attr=None, relation=None):
        return self.layers[i](x), relation


def test_encoder_protocol_errors_are_one_line(config, capsys, no_data, tmp_path):
    spec = f"{__name__}:BadFlagEncoder"
    code, err = run(
        capsys, "train", config, "--set", f"model.encoder={spec}", "--out", tmp_path / "r"
    )
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"gnnlm train: --set 'model.encoder={spec}': model.encoder '{spec}': ")
    assert "supports_edge_type must be a class-level bool, found 'yes'" in err


def test_encoder_protocol_error_found_by_the_probe_is_one_line(tmp_path, capsys):
    """The width check needs the graph: it runs after loading, and still ends in one line."""
    folder = tmp_path / "kg"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text("a\tr\tb\nb\tr\tc\nc\ts\ta\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"dataset: tsv:{folder}\nmodel: {{interaction: distmult, embedding_dim: 4, "
        f"encoder: '{__name__}:WrongWidthEncoder'}}\nevaluation: {{frequency: 0}}\n"
    )
    code, err = run(capsys, "train", config, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(
        "gnnlm train: WrongWidthEncoder returned x of shape [4, 5] on the probe graph"
    )


def test_swapping_the_encoder_warns_in_one_line(capsys, tmp_path, monkeypatch):
    from gnnlm.data import DataError

    def load_dataset(*args, **kwargs):
        raise DataError("stopped here")

    monkeypatch.setattr("gnnlm.data.load_dataset", load_dataset)
    rgcn = Path(__file__).resolve().parents[2] / "configs" / "umls" / "rgcn.yaml"
    code, err = run(
        capsys, "train", rgcn, "--set", "model.encoder=pyg:GATConv", "--out", tmp_path / "r"
    )
    assert (code, err.splitlines()) == (
        2,
        [
            "gnnlm train: warning: model.encoder_kwargs edge_dropout, num_bases (for 'rgcn') do not "
            "apply to 'pyg:GATConv' and are left out; pass its own with --set "
            "model.encoder_kwargs.KEY=VALUE",
            "gnnlm train: stopped here",
        ],
    )


def test_other_commands(tmp_path, capsys):
    code, err = run(capsys, "datasets", "umsl")
    assert code == 2 and err.startswith("gnnlm datasets: unknown dataset 'umsl'; known: fb15k-237")
    code, err = run(capsys, "datasets", "umls", "-o", "unseen=!!python/name:os.system")
    assert (code, err) == (
        2,
        "gnnlm datasets: --option 'unseen=!!python/name:os.system':1:1: YAML tag "
        "'!!python/name:os.system' is not allowed; write the plain value: '!!python/name:os.system'\n",
    )
    code, err = run(capsys, "datasets", "umls", "-o", "colour=red")
    assert (code, err) == (
        2,
        "gnnlm datasets: umls: Dataset.__init__() got an unexpected keyword argument 'colour'\n",
    )
    code, err = run(capsys, "evaluate", tmp_path / "nowhere")
    assert (code, err) == (
        2,
        f"gnnlm evaluate: {tmp_path / 'nowhere' / 'config.yaml'}: cannot read config (No such file "
        "or directory)\n",
    )
    code, err = run(capsys, "predict", tmp_path / "nowhere", "--head", "a", "--relation", "r")
    assert code == 2 and err.startswith("gnnlm predict: ") and err.count("\n") == 1
    code, err = run(
        capsys, "task", "triple-classification", tmp_path / "no.yaml", "--out", tmp_path
    )
    assert (code, err) == (
        2,
        f"gnnlm task: {tmp_path / 'no.yaml'}: cannot read config (No such file or directory)\n",
    )
    # `gnnlm task` is `gnnlm train` of the task's config: the same one-line errors
    task = tmp_path / "task.yaml"
    task.write_text("dataset: umls\ntraining:\n  epoch: 3\n")
    code, err = run(capsys, "task", "triple-classification", task, "--out", tmp_path)
    assert code == 2
    assert err.startswith(
        f"gnnlm task: {task}:3: unknown config key 'training.epoch' (did you mean "
        "'training.epochs'?); valid keys in training: epochs, "
    )
    task.write_text("dataset: umls\n")
    code, err = run(
        capsys, "task", "triple-classification", task, "--num-train", "0", "--out", tmp_path
    )
    assert (code, err) == (
        2,
        "gnnlm task: --set 'data.num_train=0': data.num_train must be an integer >= 1, got 0; "
        "e.g. 500\n",
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run(capsys, "task", "triple-classification", "--tiny", "--out", blocker / "out")
    assert (code, err) == (
        2,
        f"gnnlm task: run directory {blocker / 'out'} (--out): {blocker} is a file, not a folder; "
        "choose another --out\n",
    )
    task.write_text("seed: !!python/object/apply:os.getcwd []\n")
    code, err = run(capsys, "task", "triple-classification", task, "--out", tmp_path)
    assert code == 2
    assert err.startswith(f"gnnlm task: {task}:1:7: YAML tag '!!python/object/apply:os.getcwd'")


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        return torch.zeros(2) @ torch.zeros(3)  # a shape bug, not a user error

    monkeypatch.setattr("gnnlm.cli.datasets.run", broken)
    with pytest.raises(RuntimeError):
        main(["datasets"])
