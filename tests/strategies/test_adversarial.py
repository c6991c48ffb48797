"""Adversarial training (FGM, PGD, FreeLB): perturbations in the ball, gradients computed by hand on a toy
model, hooks removed, and the entity-embedding target on a tiny fused triple classifier."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.strategies.adversarial import AdversarialTraining, normalized, project, resolve_targets
from gnnlm.strategies.config import AdversarialConfig
from gnnlm.train.task import StepOutput
from tests.tasks.test_triple_classification import graph_dir, load_task, tiny_config  # noqa: F401

EPS = 0.5
TARGET = "word_embeddings"


class Toy(nn.Module):
    """``[batch, seq]`` ids -> a nonlinear regression loss; ``offset`` adds a perturbation by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.word_embeddings = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, ids: Tensor, target: Tensor, offset: Tensor | None = None) -> Tensor:
        h = self.word_embeddings(ids)  # [batch, seq, 4]
        if offset is not None:
            h = h + offset
        prediction = self.out(torch.tanh(h)).squeeze(-1).sum(-1)  # [batch]
        return ((prediction - target) ** 2).mean()


IDS = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
Y = torch.tensor([1.0, -2.0, 0.5])


def settings(method: str, **kwargs) -> AdversarialConfig:
    return AdversarialConfig(method=method, epsilon=EPS, alpha=0.4, steps=3, **kwargs)


def grads(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def grads_at(offset: Tensor | None) -> tuple[dict[str, Tensor], Tensor]:
    """Parameter gradients of the toy loss at ``offset`` (no hooks), and its gradient w.r.t. the
    embedding output ``[batch, seq, hidden]`` (= w.r.t. the offset)."""
    model = Toy()
    offset = torch.zeros(3, 3, 4) if offset is None else offset.clone()
    offset.requires_grad_()
    model(IDS, Y, offset=offset).backward()
    return grads(model), offset.grad


def run(adversarial_settings: AdversarialConfig, scale: float = 1.0):
    model = Toy()
    adversarial = AdversarialTraining(adversarial_settings, model)
    out = adversarial.backward(lambda: model(IDS, Y), scale)
    return model, adversarial, out


def ball_norms(adversarial: AdversarialTraining) -> Tensor:
    """Per-example norms of every perturbation of the last backward."""
    return torch.cat(
        [
            d.flatten(1).norm(dim=1)
            for p in adversarial.perturbations
            for ds in p.values()
            for d in ds
        ]
    )


# -- the ball ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_every_perturbation_stays_in_the_epsilon_ball_per_example(method):
    _, adversarial, _ = run(settings(method))
    passes = {"fgm": 2, "pgd": 4, "freelb": 3}[method]
    assert len(adversarial.perturbations) == passes
    assert list(adversarial.last_deltas) == [TARGET]
    norms = ball_norms(adversarial)
    assert norms.max() <= EPS + 1e-6
    # alpha 0.4 and 3 steps reach the boundary: the projection is exercised
    assert adversarial.last_deltas[TARGET][0].flatten(1).norm(dim=1).min() > EPS - 1e-5


def test_project_scales_only_what_is_outside_the_ball():
    delta = torch.tensor([[3.0, 4.0], [0.3, 0.4]])  # norms 5 and 0.5
    torch.testing.assert_close(project(delta, 1.0), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))
    assert torch.equal(normalized(torch.zeros(2, 3)), torch.zeros(2, 3))  # no NaN


# -- gradients by hand -------------------------------------------------------------------------------
def test_fgm_delta_and_gradient_equal_a_hand_computation():
    scale = 0.5
    model, adversarial, out = run(settings("fgm", weight=0.7), scale)
    clean, g = grads_at(None)
    per_example = g.flatten(1).norm(dim=1).view(-1, 1, 1)
    delta = EPS * g / per_example  # [batch, seq, hidden]
    torch.testing.assert_close(adversarial.last_deltas[TARGET][0], delta)
    at_delta, _ = grads_at(delta)
    for name, grad in grads(model).items():
        torch.testing.assert_close(grad, scale * (clean[name] + 0.7 * at_delta[name]))
        assert not torch.allclose(grad, scale * clean[name])  # the adversarial term counts
    assert not out.requires_grad
    torch.testing.assert_close(out, Toy()(IDS, Y))  # the clean loss is returned


def test_fgm_with_weight_zero_is_exactly_the_clean_gradient():
    model, _, _ = run(settings("fgm", weight=0.0), 2.0)
    plain = Toy()
    (plain(IDS, Y) * 2.0).backward()
    clean = grads(plain)
    assert all(torch.equal(grad, clean[name]) for name, grad in grads(model).items())


def test_pgd_ascends_k_steps_and_adds_only_the_last_perturbations_gradient():
    """Intermediate ascent passes must not leak into the parameters' gradients."""
    s = settings("pgd", weight=1.5)
    model, adversarial, _ = run(s)
    clean, g = grads_at(None)
    delta = torch.zeros_like(g)
    for step in range(s.steps):
        delta = project(delta + s.alpha * normalized(g), EPS)
        torch.testing.assert_close(adversarial.perturbations[step + 1][TARGET][0], delta)
        at_delta, g = grads_at(delta)
    for name, grad in grads(model).items():
        torch.testing.assert_close(grad, clean[name] + 1.5 * at_delta[name])


def test_freelb_averages_the_gradients_of_its_perturbations():
    s = settings("freelb")
    torch.manual_seed(3)
    model, adversarial, out = run(s, 2.0)
    deltas = [p[TARGET][0] for p in adversarial.perturbations]
    assert deltas[0].abs().sum() > 0  # a random start
    expected: dict[str, Tensor] = {}
    losses = []
    for k, delta in enumerate(deltas):
        at_delta, g = grads_at(delta)
        losses.append(Toy()(IDS, Y, offset=delta))
        if k + 1 < len(deltas):  # delta ascends between passes
            torch.testing.assert_close(deltas[k + 1], project(delta + s.alpha * normalized(g), EPS))
        for name, grad in at_delta.items():
            expected[name] = expected.get(name, 0) + 2.0 * grad / s.steps
    for name, grad in grads(model).items():
        torch.testing.assert_close(grad, expected[name])
    torch.testing.assert_close(out, torch.stack(losses).mean().detach())  # the loss it minimises


def test_step_outputs_keep_their_logs_and_log_the_adversarial_loss():
    model = Toy()
    adversarial = AdversarialTraining(settings("fgm"), model)
    out = adversarial.backward(lambda: StepOutput(model(IDS, Y), {"accuracy": 0.5}), 1.0)
    assert isinstance(out, StepOutput) and out.logs["accuracy"] == 0.5
    assert out.logs["adversarial_loss"] > float(out.loss)  # the ascent direction raises the loss


# -- hooks and targets -------------------------------------------------------------------------------
def test_hooks_are_removed_after_backward_and_after_an_error():
    model, _, _ = run(settings("pgd"))
    assert not model.word_embeddings._forward_hooks
    torch.testing.assert_close(model(IDS, Y), Toy()(IDS, Y))
    adversarial = AdversarialTraining(settings("fgm"), model)

    def failing():
        model(IDS, Y)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        adversarial.backward(failing, 1.0)
    assert not model.word_embeddings._forward_hooks


def test_a_target_that_matches_nothing_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"finetuning.adversarial.targets: 'tokens' matches nothing"
    ):
        AdversarialTraining(settings("fgm", targets=["tokens"]), Toy())
    with pytest.raises(ConfigError, match="'entity_embeddings' matches nothing.*no fused LM"):
        AdversarialTraining(settings("fgm", targets=["entity_embeddings"]), Toy())
    assert list(resolve_targets(Toy(), ["out", "word_embeddings", "embeddings"])) == [
        "word_embeddings",
        "out",
    ]


def test_entity_and_word_embeddings_of_a_tiny_fused_classifier(graph_dir):  # noqa: F811
    task = load_task(tiny_config(graph_dir))
    torch.manual_seed(0)
    model = task.build_model().eval()  # no dropout: the clean gradient is reproducible
    indices, generator = torch.arange(4), torch.Generator().manual_seed(0)

    def run_step():
        generator.manual_seed(0)  # as the engine: the same batch every pass
        return task.training_step(model, indices, generator)

    run_step().loss.backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    s = settings("fgm", targets=["entity_embeddings", "word_embeddings"])
    adversarial = AdversarialTraining(s, model)
    assert list(adversarial.targets) == [
        "fused.lm.model.embeddings.word_embeddings",  # frozen: the delta still gets its gradient
        "fused.node_embedding",
    ]
    out = adversarial.backward(run_step, 1.0)
    assert torch.isfinite(out.loss) and "adversarial_loss" in out.logs
    nodes = adversarial.last_deltas["fused.node_embedding"][0]  # [num_nodes, node_channels]
    words = adversarial.last_deltas["fused.lm.model.embeddings.word_embeddings"][0]
    assert nodes.size(1) == 16 and words.size(0) == 4 and words.dim() == 3
    node_norms = nodes.norm(dim=1)
    assert node_norms.max() <= EPS + 1e-6 and node_norms.max() > EPS - 1e-4  # per node row
    assert (words.flatten(1).norm(dim=1) - EPS).abs().max() < 1e-4  # per sequence
    changed = [n for n, p in model.named_parameters() if p.grad is not None
               and not torch.allclose(p.grad, clean[n])]  # fmt: skip
    assert "head.weight" in changed
    assert not model.fused.node_embedding._forward_hooks

    # KGE / text node features: the projection outputs them
    model.fused.node_projection = nn.Linear(16, 16)
    assert list(resolve_targets(model, ["entity_embeddings"])) == ["fused.node_projection"]
