"""Few-shot relation classification on FewRel (``task: fewrel``): a prototypical network over an
entity-marked fused LM, meta-trained on some relations and tested on N-way K-shot episodes of others;
the KG arm injects FB15k-237 entities linked through their Wikidata ids.

Reader: :mod:`.reader`; markers and collation: :mod:`.markers`; episodes: :mod:`.episodes`; the
prototypical network: :mod:`.model`; KG links: :mod:`.linking`; config and relation split: :mod:`.config`;
the task: :mod:`.task`.
"""

from __future__ import annotations

from gnnlm.tasks.fewrel.config import FewRelConfig
from gnnlm.tasks.fewrel.task import FewRelTask

__all__ = ["FewRelConfig", "FewRelTask"]
