"""The OGB link-prediction protocol (``ogbl-biokg``, ``ogbl-wikikg2``): rank against sampled negatives.

OGB ranks each valid/test triple's true head (tail) against the ``K`` negative heads (tails) it ships
(``head_neg`` / ``tail_neg``, ``[n, K]``), and reports the MRR and Hits@k of
``ogb.linkproppred.Evaluator``, whose ties are realistic (the mean of optimistic and pessimistic ranks).
:class:`OGBEvaluator` scores the positives and the negatives with the model and hands them to OGB's
evaluator, so the numbers are OGB's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gnnlm.eval.metrics import RankBasedMetrics
from gnnlm.eval.rank_based import SIDES, RankableModel
from gnnlm.kge.model import LinkPredictionModel
from gnnlm.utils.modules import eval_mode
from gnnlm.utils.progress import progress


def _long(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x)).long()


def ogb_split_to_global(
    split: Mapping[str, Any], kg: Any | None = None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Convert one of OGB's split dicts (``get_edge_split()["test"]``) to global ids.

    Args:
        split: ``head``, ``relation``, ``tail`` ``[n]``, optionally ``head_neg`` / ``tail_neg``
            ``[n, K]`` and, for typed graphs (``ogbl-biokg``), ``head_type`` / ``tail_type`` (``[n]``
            type names): ids are then local to each type.
        kg: the :class:`~gnnlm.data.KnowledgeGraph` (needed for typed graphs, to map local ids to the
            global ids of ``kg.global_id``).

    Returns:
        ``(triples [n, 3], head_neg [n, K] or None, tail_neg [n, K] or None)`` in global ids.
    """
    head, relation, tail = _long(split["head"]), _long(split["relation"]), _long(split["tail"])
    head_neg = _long(split["head_neg"]) if "head_neg" in split else None
    tail_neg = _long(split["tail_neg"]) if "tail_neg" in split else None
    if "head_type" in split or "tail_type" in split:
        if kg is None:
            raise ValueError("a typed OGB split (head_type/tail_type) needs kg to map local ids")
        offset = {name: int(kg.type_ptr[k]) for k, name in enumerate(kg.node_types)}

        def shift(types: Sequence[str]) -> Tensor:
            unknown = sorted(set(types) - set(offset))
            if unknown:
                raise ValueError(f"node types {unknown} are not in {kg.node_types}")
            return torch.tensor([offset[x] for x in types], dtype=torch.long)  # [n]

        head_shift, tail_shift = shift(list(split["head_type"])), shift(list(split["tail_type"]))
        head, tail = head + head_shift, tail + tail_shift
        head_neg = None if head_neg is None else head_neg + head_shift[:, None]
        tail_neg = None if tail_neg is None else tail_neg + tail_shift[:, None]
    return torch.stack([head, relation, tail], dim=1), head_neg, tail_neg


class OGBEvaluator:
    """OGB's sampled-negatives link-prediction evaluation, through ``ogb.linkproppred.Evaluator``.

    Args:
        name: the OGB dataset (``ogbl-biokg``, ``ogbl-wikikg2``; any ``ogbl-*`` whose metric is MRR).
        batch_size: triples scored per model call (each with ``K`` negatives).
        quiet: no progress bar.
    """

    def __init__(
        self, name: str = "ogbl-wikikg2", *, batch_size: int = 256, quiet: bool = True
    ) -> None:
        try:
            from ogb.linkproppred import Evaluator
        except ImportError as error:  # pragma: no cover - ogb is a dependency
            raise ImportError("OGBEvaluator needs the ogb package: pip install ogb") from error
        self.ogb_evaluator = Evaluator(name=name)
        if self.ogb_evaluator.eval_metric != "mrr":
            raise ValueError(f"{name} is evaluated by {self.ogb_evaluator.eval_metric}, not MRR")
        self.name = name
        self.batch_size = batch_size
        self.quiet = quiet

    def evaluate(
        self,
        model: RankableModel,
        triples: Tensor,
        *,
        head_neg: Tensor | None = None,
        tail_neg: Tensor | None = None,
    ) -> RankBasedMetrics:
        """Rank each triple's head among ``head_neg`` and its tail among ``tail_neg``.

        Args:
            model: a link-prediction model (``score_hrt``; a reciprocal model scores head candidates
                ``(t, r + num_relations, h')`` as its ``score_h`` does).
            triples: ``[n, 3]`` global (h, r, t) ids.
            head_neg: ``[n, K]`` global ids of negative heads (OGB's ``head_neg``), or ``None``.
            tail_neg: ``[n, K']`` global ids of negative tails, or ``None``.

        Returns:
            :class:`RankBasedMetrics` whose MRR and Hits@k are the means of OGB's per-query lists over
            the sides given (``per_side`` and ``per_relation`` as for the full ranking).
        """
        triples = triples.long()
        negatives = {"head": head_neg, "tail": tail_neg}
        if all(v is None for v in negatives.values()):
            raise ValueError("give head_neg and/or tail_neg")
        with eval_mode(model):
            reps = model.representations()
            ranks = {}
            for side in SIDES:
                neg = negatives[side]
                if neg is None:
                    continue
                neg = neg.long()
                if neg.ndim != 2 or len(neg) != len(triples):
                    raise ValueError(
                        f"{side}_neg must be [{len(triples)}, K], got {tuple(neg.shape)}"
                    )
                pos, neg_scores = self._score_side(model, reps, triples, neg, side)
                result = self.ogb_evaluator.eval({"y_pred_pos": pos, "y_pred_neg": neg_scores})
                # OGB returns 1 / rank; ranks are half-integers, so rounding recovers them exactly.
                ranks[side] = torch.round(2.0 / result["mrr_list"].double()) / 2.0
        return RankBasedMetrics.from_side_ranks(ranks, triples[:, 1])

    def _score_side(
        self, model: Any, reps: tuple[Tensor, Tensor], triples: Tensor, neg: Tensor, side: str
    ) -> tuple[Tensor, Tensor]:
        """``(positive scores [n], negative scores [n, K])`` for one side."""
        num_neg = neg.shape[1]
        reciprocal = isinstance(model, LinkPredictionModel) and model.reciprocal and side == "head"
        num_relations = model.num_relations if reciprocal else 0
        pos_parts, neg_parts = [], []
        for batch in progress(
            torch.arange(len(triples)).split(self.batch_size),
            desc=f"OGB {side}s",
            disable=self.quiet,
        ):
            h, r, t = triples[batch].unbind(1)  # [B] each
            cand = torch.cat(
                [(h if side == "head" else t)[:, None], neg[batch]], dim=1
            )  # [B, 1 + K]
            width = 1 + num_neg
            if side == "tail":
                query = torch.stack(
                    [h[:, None].expand(-1, width), r[:, None].expand(-1, width), cand], dim=-1
                )  # [B, 1 + K, 3]
            elif reciprocal:
                query = torch.stack(
                    [
                        t[:, None].expand(-1, width),
                        (r + num_relations)[:, None].expand(-1, width),
                        cand,
                    ],
                    dim=-1,
                )  # [B, 1 + K, 3]: (t, r_inv, h')
            else:
                query = torch.stack(
                    [cand, r[:, None].expand(-1, width), t[:, None].expand(-1, width)], dim=-1
                )  # [B, 1 + K, 3]
            scores = model.score_hrt(query.reshape(-1, 3), reps=reps).view(-1, width)  # [B, 1 + K]
            pos_parts.append(scores[:, 0])
            neg_parts.append(scores[:, 1:])
        return torch.cat(pos_parts).float(), torch.cat(neg_parts).float()
