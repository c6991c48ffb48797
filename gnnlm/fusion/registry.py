"""The registry of injection modes (``injection: [graph, entity]`` in a config).

Like every resolver built from a fixed list, it finds a user's mode by name only after
``injection_resolver.register(MyInjection)``.
"""

from __future__ import annotations

from class_resolver import ClassResolver

from gnnlm.fusion.injection import Injection
from gnnlm.fusion.modes import (
    AdaptiveInjection,
    DualTowerInjection,
    EntityInjection,
    GraphInjection,
    MemoryInjection,
    RelationInjection,
)

injection_resolver: ClassResolver[Injection] = ClassResolver(
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
)
