"""Encoder keyword arguments go where they belong: the README's ``--set model.encoder=pyg:GATConv`` on the
R-GCN config, stock PyG models by dotted path, and unknown conv arguments named with the valid ones."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from gnnlm.encoders import lookup_encoder, resolve_encoder
from gnnlm.encoders.pyg import ModuleEncoder, PyGConvEncoder
from gnnlm.encoders.resolver import filter_kwargs
from gnnlm.tasks.link_prediction import check_components
from gnnlm.train import TrainConfig, Trainer
from gnnlm.train.config import ConfigWarning

RGCN_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "umls" / "rgcn.yaml"
GCN = "torch_geometric.nn.models:GCN"


def test_swapping_the_encoder_keeps_only_the_arguments_it_takes():
    with pytest.warns(
        ConfigWarning, match="edge_dropout, num_bases .* do not apply to 'pyg:GATConv'"
    ):
        config = TrainConfig.load(RGCN_CONFIG, ["model.encoder=pyg:GATConv"])
    assert config.model.encoder_kwargs == {"num_layers": 2, "dropout": 0.1}
    check_components(config)  # what is left is valid for GATConv


def test_explicit_encoder_kwargs_are_never_dropped():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = TrainConfig.load(
            RGCN_CONFIG, ["model.encoder=pyg:GATConv", "model.encoder_kwargs={heads: 2}"]
        )
    assert config.model.encoder_kwargs == {"heads": 2}


def test_unknown_conv_argument_names_it_and_the_valid_ones():
    with pytest.raises(TypeError, match=r"pyg:GATConv: unknown keyword argument\(s\) num_bases; valid: "
                       r"act, .*heads, .*negative_slope"):  # fmt: skip
        resolve_encoder("pyg:GATConv", in_channels=8, out_channels=8, num_relations=4, num_bases=3)
    encoder = resolve_encoder("pyg:GATConv", in_channels=8, out_channels=8, heads=2, aggr="mean")
    assert encoder.layers[0].heads == 2


def test_keyword_arguments_of_a_wrapped_conv():
    names, any_keyword = PyGConvEncoder.specialise("GATConv").keyword_arguments()
    assert not any_keyword
    assert {"heads", "edge_dim", "aggr", "num_layers", "dropout"} <= names
    assert "num_bases" not in names


def test_a_stock_pyg_model_by_dotted_path_is_an_encoder_class():
    cls = lookup_encoder(GCN)
    assert issubclass(cls, ModuleEncoder) and cls.module_cls.__name__ == "GCN"
    assert not cls.supports_edge_attr  # GCN takes edge_attr but its convs ignore it
    defaults = {"in_channels": 8, "out_channels": 8, "num_relations": 4, "relation_channels": 8}
    assert filter_kwargs(cls, defaults) == {"in_channels": 8, "out_channels": 8}
    encoder = resolve_encoder(cls, in_channels=8, out_channels=8, hidden_channels=16, num_layers=2)
    x = encoder(torch.randn(4, 8), torch.tensor([[0, 1, 2], [1, 2, 3]])).x
    assert x.shape == (4, 8)


def test_a_stock_pyg_model_without_its_required_arguments_is_a_config_error():
    config = TrainConfig.load(RGCN_CONFIG, [f"model.encoder={GCN}", "model.encoder_kwargs={}"])
    with pytest.raises(ValueError, match=f"'{GCN}' needs hidden_channels, num_layers: set "
                       r"model.encoder_kwargs \(e.g. \{hidden_channels: ..., num_layers: ...\}\)"):  # fmt: skip
        check_components(config)


def _one_step(config: TrainConfig, kg) -> None:
    trainer = Trainer(config, kg=kg, quiet=True)
    trainer._build()
    indices = next(iter(trainer.task.loop.batches(trainer.generator)))
    loss = trainer.task.loop.batch_loss(indices, trainer.generator)
    loss.backward()
    assert torch.isfinite(loss)
    encoder = trainer.model.representation.encoder
    grads = [p.grad for p in encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_readme_gatconv_on_the_rgcn_config_runs_a_step(umls):
    with pytest.warns(ConfigWarning):
        config = TrainConfig.load(RGCN_CONFIG, ["model.encoder=pyg:GATConv"])
    _one_step(config, umls)


def test_stock_pyg_model_from_a_config_runs_a_step(umls):
    config = TrainConfig.load(
        RGCN_CONFIG,
        [f"model.encoder={GCN}", "model.encoder_kwargs={hidden_channels: 32, num_layers: 2}"],
    )
    _one_step(config, umls)
