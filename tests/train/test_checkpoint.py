from __future__ import annotations

import pickle

import pytest
import torch

from gnnlm.kge import build_kge_model
from gnnlm.train import ModelConfig
from gnnlm.train.checkpoint import (
    CheckpointError,
    atomic_write,
    load_optimizer_state,
    load_rng_state,
    load_tensors,
    optimizer_state,
    rng_state,
    save_tensors,
)
from gnnlm.train.pretrained import PretrainedConfig, from_pretrained, save_pretrained


def test_atomic_write_leaves_old_file_and_no_partial_on_failure(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_tensors(path, {"w": torch.ones(3)}, {"epoch": 1})
    before = path.read_bytes()

    def failing_writer(tmp):
        tmp.write_bytes(b"partial")  # half-written, then the process "dies"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, failing_writer)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]  # no temp file left
    tensors, meta = load_tensors(path)
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"epoch": 1}


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Exploit.target),))


@pytest.mark.parametrize("use_torch_save", [True, False])
def test_loading_refuses_pickles(tmp_path, use_torch_save):
    _Exploit.target = str(tmp_path / "pwned")
    path = tmp_path / "model.safetensors"
    if use_torch_save:
        torch.save({"w": torch.ones(2), "x": _Exploit()}, path)
    else:
        path.write_bytes(pickle.dumps({"x": _Exploit()}, protocol=4))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_tensors(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "a.safetensors"
    save_tensors(path, {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tensors(path)


def test_optimizer_and_rng_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    tensors: dict = {}
    doc = {"optimizer": optimizer_state(opt, tensors), "rng": rng_state(gen, tensors)}
    save_tensors(tmp_path / "s.safetensors", tensors, doc)
    expected_draw = torch.rand(3, generator=gen), torch.rand(2)

    loaded, meta = load_tensors(tmp_path / "s.safetensors")
    opt2 = torch.optim.Adam(model.parameters(), lr=0.5)
    load_optimizer_state(opt2, meta["optimizer"], loaded)
    gen2 = torch.Generator()
    load_rng_state(gen2, meta["rng"], loaded)
    assert torch.equal(torch.rand(3, generator=gen2), expected_draw[0])
    assert torch.equal(torch.rand(2), expected_draw[1])
    assert opt2.param_groups[0]["lr"] == 0.1
    for p in model.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], opt2.state[p][key])


@pytest.mark.parametrize(
    ("interaction", "reciprocal"), [("complex", True), ("rotate", False), ("transe", False)]
)
def test_save_pretrained_from_pretrained_symmetry(tmp_path, interaction, reciprocal):
    torch.manual_seed(0)
    config = PretrainedConfig(
        ModelConfig(interaction=interaction, embedding_dim=6), 7, 3, reciprocal=reciprocal
    )
    model = build_kge_model(interaction, 7, 3, 6, reciprocal=reciprocal)
    with torch.no_grad():  # perturb so loading cannot pass by re-initialising identically
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_pretrained(model, tmp_path / "m", config)
    loaded = from_pretrained(tmp_path / "m")
    assert PretrainedConfig.load(tmp_path / "m") == config
    hr = torch.tensor([[0, 1], [6, 2], [3, 0]])
    triples = torch.tensor([[0, 1, 2], [6, 2, 5]])
    with torch.no_grad():
        assert torch.equal(model.score_t(hr), loaded.score_t(hr))
        assert torch.equal(model.score_h(hr.flip(1)), loaded.score_h(hr.flip(1)))
        assert torch.equal(model.score_hrt(triples), loaded.score_hrt(triples))


def test_from_pretrained_rejects_mismatched_weights(tmp_path):
    model = build_kge_model("distmult", 7, 3, 6)
    save_pretrained(
        model, tmp_path / "m", PretrainedConfig(ModelConfig("distmult", embedding_dim=6), 7, 3)
    )
    PretrainedConfig(ModelConfig("distmult", embedding_dim=8), 7, 3).save(tmp_path / "m")
    with pytest.raises(CheckpointError, match="shape"):
        from_pretrained(tmp_path / "m")
