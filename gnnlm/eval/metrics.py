"""Rank-based metrics: MRR, MR and Hits@k from (realistic) ranks, and the names every result reports.

torch is imported when metrics are computed, not with the module, so a config or a command line can
read :data:`HEADLINE_METRICS` without loading it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

#: the cut-offs of the Hits@k every link-prediction result reports.
HEADLINE_KS: tuple[int, ...] = (1, 3, 10)
#: the flat metric keys every link-prediction result reports (the first keys of
#: :meth:`RankMetrics.to_dict`), in that order: what a run logs per epoch, summarises and compares.
HEADLINE_METRICS: tuple[str, ...] = ("mrr", "mr", *(f"hits@{k}" for k in HEADLINE_KS))


@dataclass
class RankMetrics:
    """Metrics of one group of queries.

    Attributes:
        mrr: mean reciprocal rank.
        mr: mean rank.
        hits: ``{k: fraction of queries with rank <= k}``.
        num_queries: number of ranked queries (a test triple gives one per side).
    """

    mrr: float
    mr: float
    hits: dict[int, float]
    num_queries: int

    @classmethod
    def from_ranks(cls, ranks: Tensor, ks: Sequence[int] = HEADLINE_KS) -> RankMetrics:
        """Aggregate ``[n]`` ranks (``>= 1``, possibly fractional: realistic ranks are half-integers)."""
        ranks = ranks.double()
        if len(ranks) == 0:
            nan = float("nan")
            return cls(mrr=nan, mr=nan, hits={k: nan for k in ks}, num_queries=0)
        return cls(
            mrr=ranks.reciprocal().mean().item(),
            mr=ranks.mean().item(),
            hits={k: (ranks <= k).double().mean().item() for k in ks},
            num_queries=len(ranks),
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"mrr", "mr", "hits@1", "hits@3", "hits@10", "num_queries"}``."""
        return {
            "mrr": self.mrr,
            "mr": self.mr,
            **{f"hits@{k}": v for k, v in self.hits.items()},
            "num_queries": self.num_queries,
        }

    def __getitem__(self, key: str) -> Any:
        """``metrics["mrr"]``, ``metrics["hits@10"]``: the flat :meth:`to_dict` keys."""
        return self.to_dict()[key]


@dataclass
class RankBasedMetrics(RankMetrics):
    """Metrics over both sides (``mrr``, ... as in :class:`RankMetrics`) plus breakdowns.

    Attributes:
        per_side: ``{"head": RankMetrics, "tail": RankMetrics}`` (the sides that were evaluated).
        per_relation: ``{relation_id: RankMetrics}`` over both sides of that relation's triples.
        ranks: ``{side: [num_triples] realistic ranks}``, aligned with the evaluated triples.
    """

    per_side: dict[str, RankMetrics] = field(default_factory=dict)
    per_relation: dict[int, RankMetrics] = field(default_factory=dict)
    ranks: dict[str, Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_side_ranks(
        cls, ranks: dict[str, Tensor], relations: Tensor, ks: Sequence[int] = HEADLINE_KS
    ) -> RankBasedMetrics:
        """Build from ``{side: [n] ranks}`` and the ``[n]`` relation ids of the evaluated triples."""
        import torch

        all_ranks = torch.cat(list(ranks.values()))  # [num_sides * n]
        all_relations = relations.repeat(len(ranks))  # [num_sides * n]
        overall = RankMetrics.from_ranks(all_ranks, ks)
        per_relation = {
            int(r): RankMetrics.from_ranks(all_ranks[all_relations == r], ks)
            for r in torch.unique(all_relations).tolist()
        }
        return cls(
            mrr=overall.mrr,
            mr=overall.mr,
            hits=overall.hits,
            num_queries=overall.num_queries,
            per_side={side: RankMetrics.from_ranks(r, ks) for side, r in ranks.items()},
            per_relation=per_relation,
            ranks=ranks,
        )

    def to_dict(self) -> dict[str, Any]:
        """Flat metrics plus ``"per_side"`` and ``"per_relation"`` (keys are relation ids as strings)."""
        return {
            **super().to_dict(),
            "per_side": {side: m.to_dict() for side, m in self.per_side.items()},
            "per_relation": {str(r): m.to_dict() for r, m in self.per_relation.items()},
        }
