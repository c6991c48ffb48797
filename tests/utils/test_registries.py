"""Every registry accepts the four forms: a registered name, a class, an instance and a dotted path.

One row per registry in :data:`REGISTRIES`; adding a registry is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from gnnlm.data import dataset_resolver
from gnnlm.data.conve_format import FB15k237Dataset
from gnnlm.encoders import RGCN, encoder_resolver
from gnnlm.fusion import InjectionContext, injection_resolver
from gnnlm.fusion.modes import DualTowerInjection
from gnnlm.kge import ComplEx, build_kge_model, interaction_resolver
from gnnlm.tasks import LinkPredictionConfig, LinkPredictionTask, task_resolver
from gnnlm.train.loops import SLCWALoop, loop_resolver
from gnnlm.train.losses import BCELoss, loss_resolver
from gnnlm.train.negative_sampling import UniformNegativeSampler, sampler_resolver
from gnnlm.train.regularizers import L2Regularizer, regularizer_resolver
from gnnlm.utils.registry import (
    DottedPathResolver,
    UntrustedCodeError,
    is_dotted_path,
    refuse_code_imports,
)

TRIPLES = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 0, 3]])
CONTEXT = InjectionContext(
    hidden_size=8,
    num_heads=2,
    num_lm_layers=2,
    fused_layers=(1,),
    node_channels=4,
    num_entities=4,
    num_relations=2,
)


def _slcwa_loop() -> SLCWALoop:
    model = build_kge_model("distmult", 4, 2, 4)
    return SLCWALoop(model, TRIPLES, UniformNegativeSampler(TRIPLES, 4), BCELoss(), batch_size=2)


#: (registry, a registered name, the class it names, how to build an instance of that class)
REGISTRIES: list[tuple[DottedPathResolver, str, type, Callable[[], Any]]] = [
    (dataset_resolver, "fb15k-237", FB15k237Dataset, FB15k237Dataset),
    (interaction_resolver, "complex", ComplEx, ComplEx),
    (encoder_resolver, "rgcn", RGCN, lambda: RGCN(4, 4, 2)),
    (injection_resolver, "dual_tower", DualTowerInjection, lambda: DualTowerInjection(CONTEXT)),
    (loss_resolver, "bce", BCELoss, BCELoss),
    (loop_resolver, "slcwa", SLCWALoop, _slcwa_loop),
    (
        sampler_resolver,
        "uniform",
        UniformNegativeSampler,
        lambda: UniformNegativeSampler(TRIPLES, 4),
    ),
    (regularizer_resolver, "l2", L2Regularizer, lambda: L2Regularizer(0.1)),
    (
        task_resolver,
        "link_prediction",
        LinkPredictionTask,
        lambda: LinkPredictionTask(LinkPredictionConfig()),
    ),
]

params = pytest.mark.parametrize(
    ("resolver", "name", "cls", "build"), REGISTRIES, ids=[row[2].__name__ for row in REGISTRIES]
)


@params
def test_a_name_a_class_an_instance_and_a_dotted_path_resolve(resolver, name, cls, build):
    assert isinstance(resolver, DottedPathResolver)  # the one shared registry class
    assert resolver.lookup(name) is cls
    assert resolver.lookup(name.upper().replace("_", "-")) is cls  # case, '-' and '_' ignored
    assert resolver.lookup(cls) is cls
    instance = build()
    assert resolver.make(instance) is instance  # an instance goes through unchanged
    assert resolver.lookup(instance) is cls
    path = f"{cls.__module__}:{cls.__qualname__}"
    assert resolver.lookup(path) is cls


@params
def test_a_dotted_path_is_refused_before_import_when_untrusted(resolver, name, cls, build):
    with (
        refuse_code_imports("saved/config.json"),
        pytest.raises(UntrustedCodeError, match=r"saved/config.json names code to import"),
    ):
        resolver.lookup(f"{cls.__module__}:{cls.__qualname__}")
    assert resolver.lookup(name) is cls  # registered names stay allowed


@params
def test_a_dotted_path_to_another_family_is_refused(resolver, name, cls, build):
    with pytest.raises(TypeError, match=f"not a subclass of {resolver.base.__name__}"):
        resolver.lookup("collections:OrderedDict")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pkg.mod:Class", True),
        ("pkg.mod:Outer.Inner", True),
        ("pyg:GATConv", False),  # a stock PyG conv, not a module
        ("tsv:my_kg", False),  # a folder of TSV files
        ("tsv:/data/kg", False),
        ("rgcn", False),
        ("pkg.mod:", False),
        (":Class", False),
        (None, False),
    ],
)
def test_is_dotted_path(spec, expected):
    assert is_dotted_path(spec) is expected
