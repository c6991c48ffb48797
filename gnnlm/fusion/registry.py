"""The registry of injection modes (``injection: [graph, entity]`` in a config), keyed by ``Injection.name``.

Like every resolver built from a fixed list, it finds a user's mode by name only after
``injection_resolver.register(MyInjection)``; the dotted path ``"mypkg.modes:MyInjection"`` always works.
"""

from __future__ import annotations

from gnnlm.fusion.injection import Injection
from gnnlm.fusion.modes import (
    AdaptiveInjection,
    DualTowerInjection,
    EntityInjection,
    GraphInjection,
    MemoryInjection,
    RelationInjection,
)
from gnnlm.utils.registry import DottedPathResolver

injection_resolver: DottedPathResolver[Injection] = DottedPathResolver(
    [
        GraphInjection,
        EntityInjection,
        RelationInjection,
        MemoryInjection,
        DualTowerInjection,
        AdaptiveInjection,
    ],
    base=Injection,
    suffix="Injection",
    name_attribute="name",
)
