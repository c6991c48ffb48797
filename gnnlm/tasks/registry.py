"""The task registry: ``task:`` in a config is a registered name, a class, an instance or ``pkg.mod:Class``.

Built-in tasks are imported on first use (triple classification loads ``transformers``; link prediction
must not pay for that).
"""

from __future__ import annotations

import importlib
from typing import Any

from gnnlm.train.task import Task
from gnnlm.utils.registry import DottedPathResolver

#: built-in tasks: name -> where the class lives.
BUILTIN_TASKS = {
    "link_prediction": "gnnlm.tasks.link_prediction.task:LinkPredictionTask",
    "pretraining": "gnnlm.tasks.pretraining.task:PretrainingTask",
    "triple_classification": "gnnlm.tasks.triple_classification:TripleClassificationTask",
    "multitask": "gnnlm.tasks.multitask:MultitaskTask",
    "multiple_choice": "gnnlm.tasks.multiple_choice.task:MultipleChoiceTask",
    "metaqa": "gnnlm.tasks.metaqa.task:MetaQATask",
    "relation_classification": "gnnlm.tasks.relation_classification.task:RelationClassificationTask",
    "fewrel": "gnnlm.tasks.fewrel.task:FewRelTask",
    "entity_linking": "gnnlm.tasks.entity_linking.task:EntityLinkingTask",
    "text_link_prediction": "gnnlm.tasks.text_link_prediction.task:TextLinkPredictionTask",
    "generative_qa": "gnnlm.tasks.generative_qa.task:GenerativeQATask",
    "triple_completion": "gnnlm.tasks.generative_qa.completion:TripleCompletionTask",
}


class TaskResolver(DottedPathResolver[Task]):
    """A :class:`~gnnlm.utils.registry.DottedPathResolver` that imports a built-in task on its first
    lookup by name."""

    def lookup(self, query: Any, default: type[Task] | None = None) -> type[Task]:
        if isinstance(query, str):
            key = self.normalize(query)
            for name, path in BUILTIN_TASKS.items():
                if self.normalize(name) == key and key not in self.lookup_dict:
                    self.register(_import_builtin(path))
        return super().lookup(query, default=default)


def _import_builtin(path: str) -> type[Task]:
    """A built-in task's class: gnnlm's own code, imported even inside
    :func:`~gnnlm.utils.registry.refuse_code_imports` (which guards the dotted paths of saved files)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


task_resolver = TaskResolver(base=Task, name_attribute="name")


def lookup_task(query: str | type[Task] | Task) -> type[Task]:
    """The task class of a name (``link_prediction``, ``triple-classification``), class, instance or
    dotted path."""
    if isinstance(query, Task):
        return type(query)
    return task_resolver.lookup(query)


def make_task(query: str | type[Task] | Task, config: Any, *, data: Any = None) -> Task:
    """A task for ``config`` (an instance is returned as it is)."""
    if isinstance(query, Task):
        return query
    return lookup_task(query)(config, data=data)
