"""Multiple-choice question answering with a knowledge graph (``task: multiple_choice``).

CommonsenseQA over ConceptNet by default; any JSONL in the CommonsenseQA schema reads the same way.
Modules: :mod:`.config` (the run's config and splits), :mod:`.reader` (the questions),
:mod:`.conceptnet` (the graph), :mod:`.grounding` (concepts in text), :mod:`.extraction` (a pair's
subgraph), :mod:`.batch` (pairs into batches), :mod:`.model` (the scorer) and :mod:`.task`.
"""

from gnnlm.tasks.multiple_choice.config import MultipleChoiceConfig
from gnnlm.tasks.multiple_choice.task import MultipleChoiceTask

__all__ = ["MultipleChoiceConfig", "MultipleChoiceTask"]
