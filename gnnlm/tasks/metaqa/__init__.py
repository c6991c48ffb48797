"""``task: metaqa``: multi-hop KG question answering on MetaQA by ranking the nodes of the topic's
subgraph (:mod:`~gnnlm.tasks.metaqa.task`); the question reader (:mod:`~gnnlm.tasks.metaqa.data`),
the node-ranking model and its arms (:mod:`~gnnlm.tasks.metaqa.model`) and the config
(:mod:`~gnnlm.tasks.metaqa.config`)."""

from gnnlm.tasks.metaqa.config import MetaQAConfig
from gnnlm.tasks.metaqa.task import MetaQATask

__all__ = ["MetaQAConfig", "MetaQATask"]
