"""Relation classification on SemEval-2010 Task 8 with WordNet (``task: relation_classification``).

Modules: :mod:`.reader` (the SemEval files), :mod:`.markers` (entity markers), :mod:`.linking` (nominals
to WN18RR synsets), :mod:`.scorer` (the official macro-F1 and its paired bootstrap), :mod:`.config`,
:mod:`.data` (splits, marked and linked sentences), :mod:`.batch`, :mod:`.model` (the marker head) and
:mod:`.task`.
"""

from gnnlm.tasks.relation_classification.config import RelationClassificationConfig
from gnnlm.tasks.relation_classification.task import RelationClassificationTask

__all__ = ["RelationClassificationConfig", "RelationClassificationTask"]
