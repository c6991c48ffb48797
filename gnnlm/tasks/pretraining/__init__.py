"""Pre-training injection (``task: pretraining``): MLM, KEPLER and DRAGON link prediction on a KG's
entity texts and subgraphs, combined as ``objectives:`` lists them (see :mod:`.task`).

* :mod:`.config`: the run's config (objectives, their options and weights, data, ``model:``);
* :mod:`.data`: entity texts, held-out entities, KEPLER's triples;
* :mod:`.masking`: BERT's 15% / 80-10-10 masking from a generator;
* :mod:`.edges`: DRAGON's held-out subgraph edges and their in-subgraph corruptions;
* :mod:`.heads`: the MLM head tied to the word embeddings, TransE / DistMult scores and their loss;
* :mod:`.model`: the fused LM (``fused``) with the objectives' heads;
* :mod:`.task`: the engine's task.
"""

from gnnlm.tasks.pretraining.config import PretrainingConfig
from gnnlm.tasks.pretraining.masking import mask_tokens, maskable_tokens
from gnnlm.tasks.pretraining.model import PretrainingModel
from gnnlm.tasks.pretraining.task import PretrainingTask

__all__ = [
    "PretrainingConfig",
    "PretrainingModel",
    "PretrainingTask",
    "mask_tokens",
    "maskable_tokens",
]
