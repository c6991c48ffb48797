"""Reptile and first-order MAML on quadratics with closed forms: meta-gradients, logs, restored weights."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.strategies.config import MetaConfig
from gnnlm.strategies.meta import Episode, meta_gradients

LR, STEPS = 0.3, 3
#: the centre of each example's quadratic: L_idx(theta) = 0.5 * ||theta - mean(C[idx])||^2
C = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [-1.0, 1.0, 2.0], [0.0, 4.0, 1.0]])


class Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.5, 1.0, -1.5]))
        self.unused = nn.Parameter(torch.ones(2))  # no loss reaches it
        self.frozen = nn.Parameter(torch.ones(2), requires_grad=False)
        self.register_buffer("calls", torch.zeros(()))  # a running statistic the inner loop moves

    def forward(self, indices: Tensor) -> Tensor:
        centre = C[indices].mean(0)
        self.calls += 1
        return 0.5 * ((self.theta - centre) ** 2).sum()


def settings(method: str) -> MetaConfig:
    return MetaConfig(method=method, inner_steps=STEPS, inner_lr=LR)


def episode(support: list[int], query: list[int]) -> Episode:
    return Episode(torch.tensor(support), torch.tensor(query))


EPISODES = [episode([0], [1]), episode([2, 3], [1, 2])]


def centre(indices: Tensor) -> Tensor:
    return C[indices].mean(0)


def adapted(theta: Tensor, support: Tensor) -> Tensor:
    """theta' after STEPS SGD steps on 0.5 ||theta - c||^2: c + (1 - lr)^k (theta - c)."""
    c = centre(support)
    return c + (1 - LR) ** STEPS * (theta - c)


def test_reptile_meta_gradient_is_the_closed_form():
    model = Quadratic()
    theta = model.theta.detach().clone()
    logs = meta_gradients(model, list(model.parameters()), EPISODES, model, settings("reptile"))
    expected = torch.stack(
        [(1 - (1 - LR) ** STEPS) * (theta - centre(e.support)) for e in EPISODES]
    ).mean(0)
    torch.testing.assert_close(model.theta.grad, expected)
    torch.testing.assert_close(
        model.theta.grad, torch.stack([theta - adapted(theta, e.support) for e in EPISODES]).mean(0)
    )
    query = [0.5 * ((adapted(theta, e.support) - centre(e.query)) ** 2).sum() for e in EPISODES]
    support = [0.5 * ((theta - centre(e.support)) ** 2).sum() for e in EPISODES]
    assert logs["meta_query_loss"] == pytest.approx(float(sum(query) / 2), rel=1e-6)
    assert logs["meta_support_loss"] == pytest.approx(float(sum(support) / 2), rel=1e-6)


def test_fomaml_meta_gradient_is_the_query_gradient_at_the_adapted_weights():
    model = Quadratic()
    theta = model.theta.detach().clone()
    meta_gradients(model, list(model.parameters()), EPISODES, model, settings("fomaml"))
    # grad of 0.5 ||theta' - c_query||^2 at theta' is theta' - c_query
    expected = torch.stack([adapted(theta, e.support) - centre(e.query) for e in EPISODES]).mean(0)
    torch.testing.assert_close(model.theta.grad, expected)


@pytest.mark.parametrize("method", ["reptile", "fomaml"])
def test_weights_and_buffers_are_restored_and_only_grads_are_written(method):
    model = Quadratic()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.theta.grad = torch.full((3,), 100.0)  # overwritten, not accumulated into
    first = meta_gradients(model, list(model.parameters()), EPISODES, model, settings(method))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.theta.grad.abs().max() < 100
    assert torch.equal(model.unused.grad, torch.zeros(2))  # a None grad gets a tensor
    assert model.frozen.grad is None  # not trained: left alone
    grad = model.theta.grad.clone()
    assert (
        meta_gradients(model, list(model.parameters()), EPISODES, model, settings(method)) == first
    )
    assert torch.equal(model.theta.grad, grad)  # deterministic


def test_weights_are_restored_when_a_loss_fails():
    model = Quadratic()
    theta = model.theta.detach().clone()
    calls = []

    def loss_fn(indices: Tensor) -> Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return model(indices)

    with pytest.raises(RuntimeError, match="boom"):
        meta_gradients(model, [model.theta], EPISODES, loss_fn, settings("reptile"))
    assert torch.equal(model.theta.detach(), theta)


def test_an_outer_sgd_step_on_the_reptile_gradient_moves_towards_the_adapted_weights():
    model = Quadratic()
    theta = model.theta.detach().clone()
    meta_gradients(model, [model.theta], EPISODES[:1], model, settings("reptile"))
    torch.optim.SGD([model.theta], lr=0.5).step()
    target = adapted(theta, EPISODES[0].support)
    torch.testing.assert_close(model.theta.detach(), theta + 0.5 * (target - theta))


def test_no_method_or_no_episode_is_a_config_error():
    model = Quadratic()
    with pytest.raises(ConfigError, match="finetuning.meta.method"):
        meta_gradients(model, [model.theta], EPISODES, model, MetaConfig())
    with pytest.raises(ConfigError, match="at least one episode"):
        meta_gradients(model, [model.theta], [], model, settings("fomaml"))
