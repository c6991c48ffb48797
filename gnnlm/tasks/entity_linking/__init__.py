"""``task: entity_linking``: in-KB entity disambiguation of ELEVANT benchmarks against FB15k-237, with
a bi-encoder (LM-only) and a KG coherence re-ranker (see :mod:`gnnlm.tasks.entity_linking.task`)."""

from gnnlm.tasks.entity_linking.config import EntityLinkingConfig
from gnnlm.tasks.entity_linking.task import EntityLinkingTask

__all__ = ["EntityLinkingConfig", "EntityLinkingTask"]
