"""Evaluation of link prediction: exact filtered rank-based metrics and the OGB protocol."""

from __future__ import annotations

from gnnlm.eval.metrics import RankBasedMetrics, RankMetrics
from gnnlm.eval.ogb import OGBEvaluator, ogb_split_to_global
from gnnlm.eval.rank_based import RankBasedEvaluator

__all__ = [
    "OGBEvaluator",
    "RankBasedEvaluator",
    "RankBasedMetrics",
    "RankMetrics",
    "ogb_split_to_global",
]
