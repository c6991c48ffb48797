"""``task: generative_qa``: MetaQA answered by a decoder that generates the answer's name."""

from __future__ import annotations

from gnnlm.tasks.generative_qa.config import GenerativeQAConfig
from gnnlm.tasks.generative_qa.task import GenerativeQATask

__all__ = ["GenerativeQAConfig", "GenerativeQATask"]
