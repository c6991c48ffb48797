"""What the task tests share."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def set_up(task_class: type[T], config: Any, **kwargs: Any) -> T:
    """``task_class(config, **kwargs)`` checked and with its data loaded, as the engine prepares it
    (``validate``, then ``setup``)."""
    task = task_class(config, **kwargs)
    task.validate()
    task.setup()
    return task
