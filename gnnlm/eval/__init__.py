"""Evaluation of link prediction: exact filtered rank-based metrics and the OGB protocol.

The names below are imported on first use (:mod:`gnnlm.utils.lazy`): ``HEADLINE_METRICS`` costs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnlm.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from gnnlm.eval.metrics import HEADLINE_METRICS, RankBasedMetrics, RankMetrics
    from gnnlm.eval.ogb import OGBEvaluator, ogb_split_to_global
    from gnnlm.eval.ogb_run import OGBProtocolEvaluator, load_ogb_negatives
    from gnnlm.eval.rank_based import RankBasedEvaluator

__all__ = [
    "HEADLINE_METRICS",
    "OGBEvaluator",
    "OGBProtocolEvaluator",
    "RankBasedEvaluator",
    "RankBasedMetrics",
    "RankMetrics",
    "load_ogb_negatives",
    "ogb_split_to_global",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "HEADLINE_METRICS": "gnnlm.eval.metrics",
        "RankBasedMetrics": "gnnlm.eval.metrics",
        "RankMetrics": "gnnlm.eval.metrics",
        "OGBEvaluator": "gnnlm.eval.ogb",
        "ogb_split_to_global": "gnnlm.eval.ogb",
        "OGBProtocolEvaluator": "gnnlm.eval.ogb_run",
        "load_ogb_negatives": "gnnlm.eval.ogb_run",
        "RankBasedEvaluator": "gnnlm.eval.rank_based",
    },
)
