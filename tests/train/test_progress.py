"""Progress outside a terminal: plain lines, a bounded number of them, never a redrawn bar."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from tqdm import tqdm

from gnnlm.train import TrainConfig, Trainer
from gnnlm.train.config import apply_overrides
from gnnlm.utils import progress as progress_module
from gnnlm.utils.progress import LineProgress, progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_log_gets_lines():
    assert isinstance(progress(range(3), file=FakeTerminal()), tqdm)
    assert isinstance(progress(range(3), file=io.StringIO()), LineProgress)


def test_many_updates_write_a_bounded_number_of_lines():
    stream = io.StringIO()
    for _ in progress(range(100_000), desc="batches", every=30, file=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # the final line only: 30 s never passed
    assert lines[0].startswith("batches: 100000/100000 (100%) elapsed ")
    stream = io.StringIO()
    for _ in progress(range(100_000), every=30, leave=False, file=stream):
        pass
    assert stream.getvalue() == ""


def test_a_line_every_n_seconds(monkeypatch):
    clock = iter(range(0, 10_000, 10))  # each call: 10 s later
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    stream = io.StringIO()
    bar = LineProgress(total=6, desc="work", every=30, file=stream, leave=False)
    for _ in range(6):
        bar.update()
    bar.close()
    assert [line.split(" elapsed")[0] for line in stream.getvalue().splitlines()] == [
        "work: 3/6 (50%)",
        "work: 6/6 (100%)",
    ]


def test_every_zero_is_a_line_per_update_with_the_postfix():
    stream = io.StringIO()
    bar = progress(total=2, desc="epochs", unit="epoch", every=0, file=stream)
    for loss in (0.5, 0.25):
        bar.set_postfix(loss=loss)
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epochs: 1/2 (50%)") and lines[0].endswith("loss=0.5")
    assert lines[1].startswith("epochs: 2/2 (100%)") and lines[1].endswith("loss=0.25")


def test_disabled_writes_nothing():
    stream = io.StringIO()
    for _ in progress(range(10), disable=True, every=0, file=stream):
        pass
    assert stream.getvalue() == ""


@pytest.fixture
def tiny_kg(tmp_path, monkeypatch):
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "kg"
    folder.mkdir()
    train = "".join(f"e{i}\tr{i % 3}\te{(i * 7 + 1) % 60}\n" for i in range(60))
    (folder / "train.txt").write_text(train)
    (folder / "valid.txt").write_text("e0\tr0\te1\n")
    (folder / "test.txt").write_text("e1\tr1\te8\n")
    from gnnlm.data import load_dataset

    return load_dataset(f"tsv:{folder}")


def test_training_outside_a_terminal_writes_a_line_per_epoch(tiny_kg, capsys):
    config = apply_overrides(
        TrainConfig(),
        ["dataset=tsv", "model.interaction=distmult", "model.embedding_dim=4", "training.epochs=2",
         "training.batch_size=2", "evaluation.frequency=0"],
    )  # fmt: skip
    trainer = Trainer(config, kg=tiny_kg)  # not quiet: 60 batches an epoch would get a batch bar
    trainer.fit()
    err = capsys.readouterr().err
    assert "\r" not in err
    first, *lines = err.splitlines()
    assert first.startswith("trainable parameters: ")  # the strategies' line at the start
    assert [line.split(" elapsed")[0] for line in lines] == [
        f"epochs: {k}/2 ({50 * k}%)" for k in range(1, 3)
    ]
    assert all("loss=" in line for line in lines)


def test_a_notebook_without_ipywidgets_gets_a_text_bar_and_no_warning(monkeypatch):
    """``tqdm.auto`` warns in a notebook without ipywidgets, and a saved notebook keeps that warning."""
    import builtins
    import warnings

    from tqdm.std import tqdm as text_tqdm

    monkeypatch.setattr(progress_module, "_in_notebook", lambda: True)
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress(range(3), file=io.StringIO())
    assert type(bar) is text_tqdm
    bar.close()
