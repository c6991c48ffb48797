"""``training.compile``: a training step under ``torch.compile`` trains as the eager one does."""

from __future__ import annotations

import shutil

import pytest
import torch

from gnnlm.train import Trainer
from tests.train.tiny_kg import tiny_config, write_tiny_kg

#: sLCWA (random negatives from the run's generator, the same draws compiled or not), batches of
#: 50 of the 200 training triples: every batch has one shape, so each graph compiles once
SLCWA = ("training.loop=slcwa", "training.batch_size=50", "training.epochs=2")


def _run(folder, *overrides):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = Trainer(tiny_config(folder, *SLCWA, *overrides), quiet=True).fit()
    return result, dict(torch._dynamo.utils.counters["stats"])


def _assert_same_run(a, b) -> None:
    for split in ("valid", "test"):
        for name in ("mrr", "mr", "hits@1", "hits@10"):
            assert a.metrics[split][name] == pytest.approx(b.metrics[split][name], abs=1e-6)
    losses = [[row["loss"] for row in r.history] for r in (a, b)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(value, b.model.state_dict()[key], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    torch.set_num_threads(1)
    return write_tiny_kg(tmp_path_factory.mktemp("kg"))


@pytest.fixture(scope="module")
def eager(kg):
    return _run(kg)


def test_compile_is_off_by_default(eager):
    _, stats = eager
    assert not stats.get("unique_graphs")


def test_a_step_traced_by_dynamo_trains_as_the_eager_step(kg, eager):
    """``aot_eager``: dynamo captures the step's graphs (the task's loss included) and AOT autograd
    differentiates them, without generated code (no C compiler needed)."""
    compiled, stats = _run(
        kg, "training.compile=true", "training.compile_kwargs={backend: aot_eager}"
    )
    assert stats.get("unique_graphs", 0) > 0  # something was compiled
    _assert_same_run(compiled, eager[0])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None, reason="inductor on CPU needs a C compiler (cc)")
def test_inductor_compiled_step_trains_as_the_eager_step(kg, eager):
    """The default backend (inductor, generated C++ on CPU): about a minute of compilation."""
    compiled, stats = _run(kg, "training.compile=true")
    assert stats.get("unique_graphs", 0) > 0
    _assert_same_run(compiled, eager[0])
