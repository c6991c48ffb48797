"""Dense optimizers default to torch's fused kernels (one pass per step instead of a loop of passes)."""

from __future__ import annotations

import copy

import pytest
import torch

from gnnlm.kge import build_kge_model
from gnnlm.train.config import TrainingConfig
from gnnlm.train.sparse import make_optimizer


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
def test_dense_torch_optimizers_are_fused_unless_the_config_says_otherwise(name):
    model = build_kge_model("complex", 10, 3, 4)
    optimizer = make_optimizer(TrainingConfig(optimizer=name), model.parameters(), sparse=False)
    assert optimizer.defaults["fused"] is True
    for kwargs in ({"fused": False}, {"foreach": True}):
        training = TrainingConfig(optimizer=name, optimizer_kwargs=kwargs)
        optimizer = make_optimizer(training, model.parameters(), sparse=False)
        assert not optimizer.defaults["fused"]


def test_optimizers_without_a_fused_kernel_are_left_alone():
    model = build_kge_model("distmult", 10, 3, 4)
    optimizer = make_optimizer(
        TrainingConfig(optimizer="rmsprop"), model.parameters(), sparse=False
    )
    assert "fused" not in optimizer.defaults or not optimizer.defaults["fused"]


@pytest.mark.parametrize("name", ["adam", "adagrad"])
def test_fused_steps_equal_the_reference_loop(name):
    torch.manual_seed(0)
    fused_model = build_kge_model("complex", 50, 4, 8)
    loop_model = copy.deepcopy(fused_model)
    start = copy.deepcopy(fused_model.state_dict())
    training = TrainingConfig(optimizer=name, lr=0.01)
    fused = make_optimizer(training, fused_model.parameters(), sparse=False)
    reference = TrainingConfig(optimizer=name, lr=0.01, optimizer_kwargs={"fused": False})
    loop = make_optimizer(reference, loop_model.parameters(), sparse=False)
    triples = torch.stack(
        [torch.randint(0, 50, (64,)), torch.randint(0, 4, (64,)), torch.randint(0, 50, (64,))], 1
    )
    for _ in range(5):
        for model, optimizer in ((fused_model, fused), (loop_model, loop)):
            optimizer.zero_grad()
            model.score_hrt(triples).square().mean().backward()
            optimizer.step()
    for name_, weight in fused_model.state_dict().items():
        assert not torch.equal(weight, start[name_])  # the steps moved it
        torch.testing.assert_close(weight, loop_model.state_dict()[name_], rtol=1e-5, atol=1e-6)
