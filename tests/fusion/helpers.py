"""Shared tiny fixtures for the fusion tests: a 12-entity KG, a tiny GNN, examples and model builders."""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from gnnlm.encoders.base import GraphEncoder
from gnnlm.fusion import (
    FusedLM,
    FusionConfig,
    SubgraphSampler,
    TextGraphCollator,
    TextGraphExample,
)
from gnnlm.lm import load_lm, load_tokenizer

NAMES = [
    "paris",
    "france",
    "berlin",
    "germany",
    "river",
    "seine",
    "europe",
    "city",
    "rhine",
    "bonn",
    "lyon",
    "alps",
]
NUM_BASE_RELATIONS = 3
TRIPLES = torch.tensor(
    [[0, 0, 1], [2, 0, 3], [5, 1, 0], [0, 2, 7], [2, 2, 7], [1, 1, 6], [3, 1, 6], [8, 1, 3], [9, 0, 3],
     [10, 0, 1], [11, 1, 6], [4, 2, 5], [4, 2, 8]]
)  # fmt: skip


def tiny_graph() -> Data:
    """The 12-entity KG with inverse edges (6 edge types)."""
    h, r, t = TRIPLES.unbind(1)
    edge_index = torch.cat([torch.stack([h, t]), torch.stack([t, h])], 1)  # [2, 2E]
    edge_type = torch.cat([r, r + NUM_BASE_RELATIONS])
    return Data(edge_index=edge_index, edge_type=edge_type, num_nodes=len(NAMES), num_relations=6)


class TinyRGCN(GraphEncoder):
    """A minimal relational GNN (mean over relation-transformed neighbours + self loop)."""

    supports_edge_type = True

    def __init__(self, channels: int, num_relations: int, num_layers: int = 2) -> None:
        super().__init__(act="relu")
        self.layers = nn.ModuleList(_TinyLayer(channels, num_relations) for _ in range(num_layers))

    def layer_forward(self, i, x, edge_index, edge_type=None, edge_attr=None, relation=None):
        return self.post_layer(i, self.layers[i](x, edge_index, edge_type)), relation


class _TinyLayer(nn.Module):
    def __init__(self, channels: int, num_relations: int) -> None:
        super().__init__()
        self.rel = nn.Parameter(torch.randn(num_relations, channels, channels) / channels**0.5)
        self.root = nn.Linear(channels, channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        src, dst = edge_index
        msg = torch.bmm(x[src].unsqueeze(1), self.rel[edge_type]).squeeze(1)  # [E, channels]
        return self.root(x) + scatter(msg, dst, 0, dim_size=x.size(0), reduce="mean")


def example(
    text: str, extra: list[int] | None = None, label: float | None = None
) -> TextGraphExample:
    """An example whose mentions are every entity name occurring as a word of ``text``."""
    mentions, pos = [], 0
    for word in text.split(" "):
        if word in NAMES:
            mentions.append((pos, pos + len(word), NAMES.index(word)))
        pos += len(word) + 1
    return TextGraphExample(text, mentions, entities=extra or [], label=label)


EXAMPLES = [
    example("paris is the capital of france", label=1.0),
    example("berlin lies in germany on a river", label=1.0),
    example("the seine flows through paris and lyon in france", label=0.0),
    example("nothing linked here at all", label=0.0),
]


@functools.cache
def tokenizer():
    return load_tokenizer("tiny-bert")


def collator(max_nodes: int = 6, num_hops: int = 2) -> TextGraphCollator:
    sampler = SubgraphSampler(
        tiny_graph(), num_hops=num_hops, max_nodes=max_nodes, inverse_offset=3
    )
    return TextGraphCollator(tokenizer(), sampler, max_length=24)


ALL_MODES = ["graph", "entity", "relation", "memory", "dual_tower", ["entity", "adaptive"]]


def build(arch: str = "bert", injection=("graph",), *, seed: int = 0, **kwargs) -> FusedLM:
    """A fused tiny model (eager attention so additive biases work identically) with the tiny GNN."""
    injection = [injection] if isinstance(injection, str) else list(injection)
    config = FusionConfig(
        lm=f"tiny-{arch}",
        attn_implementation=kwargs.pop("attn_implementation", "eager"),
        injection=injection,
        injection_kwargs=kwargs.pop("injection_kwargs", {}),
        num_fused_layers=2,
        encoder=None,
        node_channels=16,
        num_entities=len(NAMES),
        num_relations=6,
        **kwargs,
    )
    torch.manual_seed(seed)
    lm = load_lm(config.lm, attn_implementation=config.attn_implementation, seed=seed)
    return FusedLM(config, lm=lm, encoder=TinyRGCN(16, 6, 2)).eval()


def perturb(model: nn.Module, scale: float = 0.5, seed: int = 1) -> None:
    """Give every zero-initialised gate, relation bias and output projection a random value so fusion
    actually changes outputs (parameters in name order: the same values whatever the modes' order)."""
    generator = torch.Generator().manual_seed(seed)
    outputs = {
        id(param)
        for inj in getattr(model, "injections", {}).values()
        for module in inj.output_modules()
        for param in module.parameters()
    }
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.startswith("lm."):
                continue
            if name.endswith("gate.weight") or ("relation" in name and name.endswith(".weight")):
                param.copy_(torch.randn(param.shape, generator=generator) * scale + scale)
            elif id(param) in outputs:  # a zero output projection (gate_init: open)
                fan_in = param.shape[-1] if param.dim() > 1 else param.numel()
                param.copy_(torch.randn(param.shape, generator=generator) / fan_in**0.5)
