"""Each scoring function against a hand computation, and its 1-N paths against its per-triple path."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gnnlm.kge import ComplEx, ConvE, DistMult, Interaction, RotatE, TransE, TuckER


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# -- hand computations -----------------------------------------------------------------------------


def test_transe_hand():
    h, r, tail = t(1, 2), t(0.5, -1), t(2, 0)  # h + r - t = (-0.5, 1)
    assert TransE(p=1)(h, r, tail).item() == pytest.approx(-1.5)
    assert TransE(p=2)(h, r, tail).item() == pytest.approx(-math.sqrt(1.25))
    assert TransE(p=1, margin=9.0)(h, r, tail).item() == pytest.approx(7.5)


def test_distmult_hand():
    # 1*2*1 + 2*0*1 + 3*(-1)*2 = -4
    assert DistMult()(t(1, 2, 3), t(2, 0, -1), t(1, 1, 2)).item() == pytest.approx(-4.0)


def test_complex_hand():
    # Component 1: h = 1+2i, r = 3-i, t = 2+i: h r = 5+5i, (5+5i)(2-i) = 15+5i -> 15.
    # Component 2: h = i, r = 1, t = 1+i: i (1-i) = 1+i -> 1.  Layout [re | im].
    h, r, tail = t(1, 0, 2, 1), t(3, 1, -1, 0), t(2, 1, 1, 1)
    assert ComplEx()(h, r, tail).item() == pytest.approx(16.0)
    # Against torch's complex arithmetic on random inputs.
    g = torch.Generator().manual_seed(0)
    h, r, tail = (torch.randn(5, 6, generator=g) for _ in range(3))
    c = [torch.complex(x[:, :3], x[:, 3:]) for x in (h, r, tail)]
    expected = (c[0] * c[1] * c[2].conj()).sum(-1).real
    torch.testing.assert_close(ComplEx()(h, r, tail), expected)


def test_rotate_hand():
    # Component 1: h = 1, phase pi/2 -> i; t = 0 -> |i| = 1.
    # Component 2: h = 3+4i, phase pi -> -3-4i; t = -3 -> |-4i| = 4.
    h, phases, tail = t(1, 3, 0, 4), t(math.pi / 2, math.pi), t(0, -3, 0, 0)
    assert RotatE()(h, phases, tail).item() == pytest.approx(-5.0, abs=1e-5)
    assert RotatE(margin=9.0)(h, phases, tail).item() == pytest.approx(4.0, abs=1e-5)


def test_tucker_hand():
    # d_e = 2, d_r = 1, W[0] = [[1, 2], [3, 4]]: f = r * (h W t) = 2 * ([1, 1] W [1, 0]^T) = 2 * 4 = 8.
    model = TuckER(2, relation_dim=1, batch_norm=False)
    with torch.no_grad():
        model.core.copy_(torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]))
    model.eval()
    assert model(t(1, 1), t(2), t(1, 0)).item() == pytest.approx(8.0)
    # The full Tucker contraction on random inputs.
    g = torch.Generator().manual_seed(0)
    model = TuckER(3, relation_dim=2, batch_norm=False).eval()
    h, r, tail = (
        torch.randn(4, 3, generator=g),
        torch.randn(4, 2, generator=g),
        torch.randn(4, 3, generator=g),
    )
    expected = torch.einsum("bi,bk,bj,kij->b", h, r, tail, model.core)
    torch.testing.assert_close(model(h, r, tail), expected)


def test_conve_hand():
    # d = 2, height 1: image [[h1, h2], [r1, r2]]; one 1x1 filter (weight 2, bias -1); batch norms at
    # their initial statistics are the identity up to 1/sqrt(1 + eps).
    model = ConvE(2, embedding_height=1, num_filters=1, kernel_size=1).eval()
    with torch.no_grad():
        model.conv.weight.fill_(2.0)
        model.conv.bias.fill_(-1.0)
        model.fc.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, -1]]))
        model.fc.bias.zero_()
    # image [[1, 2], [3, -1]] -> 2x - 1 = [[1, 3], [5, -3]] -> relu -> [1, 3, 5, 0] -> fc -> [1, 8];
    # t = (2, -1) with bias 0.5: 1 * 2 + 8 * (-1) + 0.5 = -5.5
    assert model(t(1, 2, 0.0), t(3, -1), t(2, -1, 0.5)).item() == pytest.approx(-5.5, rel=1e-3)
    assert "image=2x2" in repr(model)
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        ConvE(8)
    with pytest.raises(ValueError, match="not divisible"):
        ConvE(12, embedding_height=5)
    assert ConvE(200).height == 20  # the paper's 20 x 10


# -- 1-N scoring equals per-triple scoring ---------------------------------------------------------


def make(name: str) -> Interaction:
    return {
        "transe1": lambda: TransE(p=1),
        "transe2": lambda: TransE(p=2),
        "distmult": DistMult,
        "complex": ComplEx,
        "rotate": RotatE,
        "tucker": lambda: TuckER(4, relation_dim=3),
        "conve": lambda: ConvE(12, num_filters=4),
    }[name]()


NAMES = ["transe1", "transe2", "distmult", "complex", "rotate", "tucker", "conve"]


def random_inputs(interaction: Interaction, b: int = 3, n: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    d_e, d_r = interaction.representation_dims(12 if isinstance(interaction, ConvE) else 4)
    return (
        torch.randn(b, d_e, generator=g),
        torch.randn(b, d_r, generator=g),
        torch.randn(b, d_e, generator=g),
        torch.randn(n, d_e, generator=g),
    )


def randomize_batch_norm(interaction: Interaction) -> None:
    """Give batch norms non-trivial statistics, so that TuckER's folding in score_h is tested."""
    g = torch.Generator().manual_seed(1)
    for bn in interaction.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.data.copy_(torch.randn(bn.num_features, generator=g))
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=g))


@pytest.mark.parametrize("name", NAMES)
def test_score_t_and_score_h_match_forward(name):
    interaction = make(name)
    randomize_batch_norm(interaction)
    interaction.eval()
    h, r, tail, cand = random_inputs(interaction)
    with torch.no_grad():
        s_t = interaction.score_t(h, r, cand)  # [3, 7]
        s_h = interaction.score_h(cand, r, tail)
        ref_t = interaction(h[:, None], r[:, None], cand[None])  # broadcast [3, 7]
        ref_h = interaction(cand[None], r[:, None], tail[:, None])
    assert s_t.shape == s_h.shape == (3, 7)
    torch.testing.assert_close(s_t, ref_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s_h, ref_h, rtol=1e-5, atol=1e-5)
    # One triple at a time, too.
    torch.testing.assert_close(s_t[1, 4], interaction(h[1], r[1], cand[4]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_chunked_equals_unchunked(name):
    interaction = make(name).eval()
    h, r, tail, cand = random_inputs(interaction, b=5, n=11)
    with torch.no_grad():
        full_t, full_h = interaction.score_t(h, r, cand), interaction.score_h(cand, r, tail)
        interaction.max_chunk_elements = 3  # one candidate per chunk
        torch.testing.assert_close(interaction.score_t(h, r, cand), full_t)
        torch.testing.assert_close(interaction.score_h(cand, r, tail), full_h)
        # The base class's generic chunked broadcast (used by interactions without a 1-N override).
        torch.testing.assert_close(
            Interaction.score_t(interaction, h, r, cand), full_t, rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            Interaction.score_h(interaction, cand, r, tail), full_h, rtol=1e-5, atol=1e-5
        )


def test_transe_l2_gemm_trick_is_safe_at_zero_distance():
    h = torch.randn(2, 4, requires_grad=True)
    r = torch.zeros(2, 4)
    cand = torch.cat([h.detach(), torch.randn(3, 4)])  # candidates 0, 1 are exactly h + r
    scores = TransE(p=2).score_t(h, r, cand)
    assert scores[0, 0].item() == pytest.approx(0.0, abs=1e-3)
    assert (scores <= 0).all()
    scores.sum().backward()
    assert torch.isfinite(h.grad).all()


def test_tucker_reset_and_repr():
    model = TuckER(6, relation_dim=2)
    assert model.core.shape == (2, 6, 6)
    assert model.core.abs().max() <= 1.0
    with torch.no_grad():
        model.core.fill_(5.0)
    model.reset_parameters()
    assert model.core.abs().max() <= 1.0
    assert "entity_dim=6, relation_dim=2" in repr(model)
    assert "p=2" in repr(TransE(p=2))
    with pytest.raises(ValueError, match="p=3"):
        TransE(p=3)


def test_complex_and_rotate_regularisation_factors_are_moduli():
    x = t(3, 0, 4, 1)  # 3+4i, 0+1i
    torch.testing.assert_close(ComplEx().entity_factors(x), t(5, 1))
    torch.testing.assert_close(RotatE().entity_factors(x), t(5, 1))
    assert RotatE().relation_factors(t(0.3)) is None
    torch.testing.assert_close(DistMult().relation_factors(x), x)


@pytest.mark.parametrize("name", NAMES)
def test_one_to_n_gradients_match_forward(name):
    interaction = make(name).eval()
    inputs = [x.requires_grad_() for x in random_inputs(interaction, b=3, n=5, seed=2)]
    h, r, _, cand = inputs
    weights = torch.randn(3, 5, generator=torch.Generator().manual_seed(3))
    (interaction.score_t(h, r, cand) * weights).sum().backward()
    fast = [x.grad.clone() for x in (h, r, cand)]
    for x in (h, r, cand):
        x.grad = None
    (interaction(h[:, None], r[:, None], cand[None]) * weights).sum().backward()
    for got, expected in zip(fast, (h.grad, r.grad, cand.grad)):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_modulus_has_a_finite_zero_subgradient_and_hypot_values():
    from gnnlm.kge.interaction import modulus

    re = torch.tensor([0.0, 3.0, -1.0], requires_grad=True)
    im = torch.tensor([0.0, 4.0, 0.0], requires_grad=True)
    out = modulus(re, im)
    assert torch.equal(out, torch.hypot(re, im))
    out.sum().backward()
    # d|z|/d re = re / |z|, d|z|/d im = im / |z|; 0 (not NaN) at the origin.
    assert torch.allclose(re.grad, torch.tensor([0.0, 0.6, -1.0]))
    assert torch.allclose(im.grad, torch.tensor([0.0, 0.8, 0.0]))
    # Broadcasting: the gradient is summed back to each input's shape.
    a = torch.tensor([[1.0], [0.0]], requires_grad=True)  # [2, 1]
    b = torch.tensor([0.0, 1.0], requires_grad=True)  # [2]
    modulus(a, b).sum().backward()  # [[|1+0i|, |1+1i|], [|0+0i|, |0+1i|]]
    r = 1 / math.sqrt(2)
    assert torch.allclose(a.grad, torch.tensor([[1 + r], [0.0]]))
    assert torch.allclose(b.grad, torch.tensor([0.0, r + 1]))
