"""Tasks that the training engine (:mod:`gnnlm.train`) runs: one file per task, one registry.

* ``link_prediction`` (:class:`~gnnlm.tasks.link_prediction.LinkPredictionTask`): KG embeddings and GNN
  encoders, ranked against every entity;
* ``triple_classification`` (:class:`~gnnlm.tasks.triple_classification.TripleClassificationTask`): a
  fused LM classifies triples as true or false from entity names and the KG subgraph;
* ``pretraining`` (:mod:`gnnlm.tasks.pretraining`): knowledge pre-training of the fused LM on a KG's
  entity texts and subgraphs (MLM, DRAGON-style link prediction, KEPLER), stage 1 of two-stage runs;
* ``multitask`` (:mod:`gnnlm.tasks.multitask`): several tasks sharing one fused model, one head each;
* ``metaqa`` (:mod:`gnnlm.tasks.metaqa`): multi-hop KGQA, ranking the nodes of the topic's subgraph;
* ``multiple_choice`` (:mod:`gnnlm.tasks.multiple_choice`): CommonsenseQA-style questions grounded in
  ConceptNet, one score per (question, choice) pair.
* ``relation_classification`` (:mod:`gnnlm.tasks.relation_classification`): SemEval-2010 Task 8 with
  entity markers, nominals linked to WordNet;
* ``fewrel`` (:mod:`gnnlm.tasks.fewrel`): few-shot relation classification, prototypical networks over
  N-way K-shot episodes;
* ``entity_linking`` (:mod:`gnnlm.tasks.entity_linking`): in-KB disambiguation of mentions to FB15k-237,
  a bi-encoder and a KG coherence re-ranker;
* ``text_link_prediction`` (:mod:`gnnlm.tasks.text_link_prediction`): SimKGC-style text KG completion,
  with a graph tower and KGE ensembling;
* ``generative_qa`` and ``triple_completion`` (:mod:`gnnlm.tasks.generative_qa`): decoders answering
  MetaQA and completing triples by generation.

``task:`` in a config picks one by name, class or ``pkg.mod:MyTask`` (see :class:`gnnlm.train.task.Task`);
:func:`load_config` reads a config file as its task's config class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnlm.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from gnnlm.tasks.link_prediction import LinkPredictionConfig, LinkPredictionTask
    from gnnlm.tasks.loading import load_config
    from gnnlm.tasks.registry import lookup_task, make_task, task_resolver
    from gnnlm.tasks.triple_classification import (
        TripleClassificationConfig,
        TripleClassificationTask,
        TripleClassifier,
        build_examples,
    )

__all__ = [
    "LinkPredictionConfig",
    "LinkPredictionTask",
    "TripleClassificationConfig",
    "TripleClassificationTask",
    "TripleClassifier",
    "build_examples",
    "load_config",
    "lookup_task",
    "make_task",
    "task_resolver",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "LinkPredictionConfig": "gnnlm.tasks.link_prediction",
        "LinkPredictionTask": "gnnlm.tasks.link_prediction",
        "load_config": "gnnlm.tasks.loading",
        "lookup_task": "gnnlm.tasks.registry",
        "make_task": "gnnlm.tasks.registry",
        "task_resolver": "gnnlm.tasks.registry",
        "TripleClassificationConfig": "gnnlm.tasks.triple_classification",
        "TripleClassificationTask": "gnnlm.tasks.triple_classification",
        "TripleClassifier": "gnnlm.tasks.triple_classification",
        "build_examples": "gnnlm.tasks.triple_classification",
    },
)
