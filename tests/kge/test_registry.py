"""The interaction registry: names, classes, instances, dotted paths, and errors."""

from __future__ import annotations

import pytest
from torch import Tensor

from gnnlm.kge import (
    ComplEx,
    ConvE,
    DistMult,
    Interaction,
    RotatE,
    TransE,
    TuckER,
    interaction_resolver,
    resolve_interaction,
)


class Doubled(Interaction):
    """A user's interaction, defined outside gnnlm."""

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return 2 * (h * r * t).sum(-1)


@pytest.mark.parametrize(
    ("query", "cls"),
    [
        ("complex", ComplEx),
        ("ComplEx", ComplEx),
        ("distmult", DistMult),
        ("Dist-Mult", DistMult),
        ("rotate", RotatE),
        ("transe", TransE),
        ("trans_e", TransE),
        ("tucker", TuckER),
        ("ConvE", ConvE),
    ],
)
def test_lookup_by_name(query, cls):
    assert interaction_resolver.lookup(query) is cls


def test_class_instance_and_dotted_path():
    assert interaction_resolver.lookup(RotatE) is RotatE
    instance = TransE(p=2)
    assert resolve_interaction(instance) is instance
    assert interaction_resolver.lookup("gnnlm.kge.interactions.complex:ComplEx") is ComplEx
    made = interaction_resolver.make(f"{__name__}:Doubled")
    assert isinstance(made, Doubled)
    assert isinstance(resolve_interaction(Doubled), Doubled)
    assert resolve_interaction("transe", p=2).p == 2
    assert resolve_interaction("tucker", embedding_dim=5).entity_dim == 5


def test_errors_are_clear():
    with pytest.raises(KeyError, match=r"Invalid Interaction name: holE.*complex.*transe"):
        interaction_resolver.lookup("holE")
    with pytest.raises(TypeError, match="not a subclass of Interaction"):
        interaction_resolver.lookup("gnnlm.kge.model:LinkPredictionModel")
    with pytest.raises(ImportError, match="no attribute 'Nope'"):
        interaction_resolver.lookup("gnnlm.kge:Nope")
    with pytest.raises(ImportError, match="cannot import module 'no_such_pkg.mod'"):
        interaction_resolver.lookup("no_such_pkg.mod:X")
    with pytest.raises(ValueError, match="TuckER needs embedding_dim"):
        resolve_interaction("tucker")
