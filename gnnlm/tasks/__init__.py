"""Downstream tasks built on the fused models (worked examples run through ``gnnlm task ...``)."""

from __future__ import annotations

from gnnlm.tasks.triple_classification import (
    TripleClassificationConfig,
    TripleClassifier,
    build_examples,
    run_triple_classification,
)

__all__ = [
    "TripleClassificationConfig",
    "TripleClassifier",
    "build_examples",
    "run_triple_classification",
]
