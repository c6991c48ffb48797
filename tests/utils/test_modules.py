"""``eval_mode``: eval + no autograd inside, every submodule's own mode restored after, even on error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnnlm.utils.modules import eval_mode


def _model() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    model.train()
    model[2].eval()  # kept on running statistics on purpose (e.g. a frozen part)
    return model


def test_eval_and_no_grad_inside_modes_restored_after():
    model = _model()
    with eval_mode(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
        assert not model(torch.ones(3, 2)).requires_grad
    assert torch.is_grad_enabled()
    assert [m.training for m in model.modules()] == [True, True, True, False]


def test_modes_are_restored_when_the_block_raises():
    model = _model().eval()
    model[1].train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [False, False, True, False]
    assert torch.is_grad_enabled()


def test_any_object_with_train_and_training():
    class Rankable:  # e.g. gnnlm.eval's RankableModel protocol: no submodules
        training = True

        def train(self, mode=True):
            self.training = mode
            return self

    model = Rankable()
    with eval_mode(model):
        assert not model.training
    assert model.training
