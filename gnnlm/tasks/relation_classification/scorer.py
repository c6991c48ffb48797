"""The official SemEval-2010 Task 8 score and a paired bootstrap of its difference between two systems.

The task's official score (``semeval2010_task8_scorer-v1.2.pl``, its last table, "(9+1)-WAY EVALUATION
TAKING DIRECTIONALITY INTO ACCOUNT -- OFFICIAL") is the macro-averaged F1 over the 9 relations, ``Other``
excluded, on a 10-way confusion matrix of relation *types* in which a prediction of the right type with
the wrong direction is counted apart (column ``xDIRx``) and so is never correct. For relation type ``r``:

* ``correct_r``: examples whose gold label has type ``r`` predicted with exactly the gold label (relation
  and direction);
* ``predicted_r``: examples predicted with type ``r``, in either direction, whatever their gold label
  (the scorer's column sum plus the wrong-direction count);
* ``gold_r``: examples whose gold label has type ``r``, in either direction;
* ``P_r = correct_r / predicted_r`` (0 when nothing is predicted ``r``), ``R_r = correct_r / gold_r``,
  ``F1_r = 2 P_r R_r / (P_r + R_r)`` (0 when both are 0);
* ``macro_f1 = mean of F1_r`` over the relation types that occur in the gold labels (the scorer divides
  by the number of distinct non-``Other`` gold labels: 9 on the full test set).

Accuracy is the scorer's "Accuracy (calculated for the above confusion matrix)": the share of examples
whose predicted label equals the gold one (19-way, ``Other`` included). Scores here are fractions in
``[0, 1]``; the scorer prints percentages (``macro_f1 * 100``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from gnnlm.tasks.relation_classification.reader import LABELS, RELATIONS

#: number of relation types (``Other`` excluded); type id of ``Other``
NUM_RELATIONS = len(RELATIONS)


def relation_type(label: int) -> int:
    """The type of a label id of :data:`~.reader.LABELS`: ``0..8`` for the relations (either
    direction), :data:`NUM_RELATIONS` (9) for ``Other``."""
    if not 0 <= label < len(LABELS):
        raise ValueError(f"label id {label} outside [0, {len(LABELS)})")
    return NUM_RELATIONS if label == 0 else (label - 1) // 2


def _indicators(gold: Sequence[int], predicted: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """``([n, 9] gold type, [n, 9] predicted type, [n, 9] correct)`` one-hot float indicators over
    the 9 relation types (an ``Other`` row is all zeros)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    g = torch.tensor([relation_type(int(x)) for x in gold], dtype=torch.long)  # [n]
    p = torch.tensor([relation_type(int(x)) for x in predicted], dtype=torch.long)  # [n]
    exact = torch.tensor([int(a) == int(b) for a, b in zip(gold, predicted)], dtype=torch.bool)
    eye = torch.eye(NUM_RELATIONS + 1)[:, :NUM_RELATIONS]  # [10, 9]: Other -> zeros
    gold_onehot, pred_onehot = eye[g], eye[p]  # [n, 9]
    return gold_onehot, pred_onehot, gold_onehot * exact.unsqueeze(1).float()


def _macro_f1(correct: Tensor, predicted: Tensor, gold: Tensor) -> tuple[Tensor, Tensor]:
    """``([*, 9] F1 per type, [*] macro-F1 over the types with gold examples)`` from counts
    ``[*, 9]``."""
    precision = torch.where(predicted > 0, correct / predicted.clamp(min=1e-12), 0.0)
    recall = torch.where(gold > 0, correct / gold.clamp(min=1e-12), 0.0)
    total = precision + recall
    f1 = torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12), 0.0)
    present = (gold > 0).float()
    macro = (f1 * present).sum(-1) / present.sum(-1).clamp(min=1.0)
    return f1, macro


def official_scores(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, Any]:
    """The official score of ``predicted`` label ids against ``gold`` ones (see the module docstring).

    Returns:
        ``{"macro_f1", "accuracy", "micro_f1", "per_relation": {relation: {"precision", "recall",
        "f1", "correct", "predicted", "gold", "wrong_direction"}}}``; ``micro_f1`` is the scorer's
        micro-average over the relation types of the gold labels (``Other`` excluded).
    """
    if not gold:
        raise ValueError("no examples to score")
    g, p, c = _indicators(gold, predicted)
    correct, pred, gold_n = c.sum(0), p.sum(0), g.sum(0)  # [9]
    f1, macro = _macro_f1(correct, pred, gold_n)
    wrong = (g * p).sum(0) - correct  # right type, wrong direction
    per = {}
    for r, name in enumerate(RELATIONS):
        per[name] = {
            "precision": float(correct[r] / pred[r]) if pred[r] > 0 else 0.0,
            "recall": float(correct[r] / gold_n[r]) if gold_n[r] > 0 else 0.0,
            "f1": float(f1[r]),
            "correct": int(correct[r]), "predicted": int(pred[r]), "gold": int(gold_n[r]),
            "wrong_direction": int(wrong[r]),
        }  # fmt: skip
    present = gold_n > 0  # the scorer sums over the types in the gold labels only
    hits, guesses, truths = (float(x[present].sum()) for x in (correct, pred, gold_n))
    micro_p = hits / guesses if guesses > 0 else 0.0
    micro_r = hits / truths if truths > 0 else 0.0
    micro = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r > 0 else 0.0
    accuracy = sum(int(a) == int(b) for a, b in zip(gold, predicted)) / len(gold)
    return {"macro_f1": float(macro), "accuracy": accuracy, "micro_f1": micro, "per_relation": per}


def paired_bootstrap_macro_f1(
    gold: Sequence[Sequence[int]],
    a: Sequence[Sequence[int]],
    b: Sequence[Sequence[int]],
    *,
    rounds: int = 10000,
    seed: int = 0,
    chunk: int = 500,
) -> dict[str, float]:
    """``{"mean", "low", "high"}``: the mean over seeds of (macro-F1 of ``a`` - macro-F1 of ``b``)
    and its 95% percentile interval, resampling the test examples with replacement (the same
    resample for both systems: a paired bootstrap). Seeds with the same number of examples share
    the test set, so they share each round's resample too (as
    :func:`gnnlm.train.variants.paired_bootstrap`); others are resampled on their own.

    Args:
        gold: per seed, the gold label ids of the test examples (``gold[s][i]``).
        a: per seed, system ``a``'s predicted label ids, aligned with ``gold[s]``.
        b: per seed, system ``b``'s.
        rounds: bootstrap resamples (one draw per round serves every seed in turn).
        seed: the resampling generator's seed.
        chunk: resamples scored at once (memory: ``chunk x n`` floats).
    """
    if not (len(gold) == len(a) == len(b)) or not gold:
        raise ValueError(
            f"need the same number (>= 1) of seeds, got {len(gold)}, {len(a)}, {len(b)}"
        )
    generator = torch.Generator().manual_seed(seed)
    means = torch.zeros(rounds)
    observed = 0.0
    stacks = []
    for g_s, a_s, b_s in zip(gold, a, b):
        g, pa, ca = _indicators(g_s, a_s)  # [n, 9] each
        _, pb, cb = _indicators(g_s, b_s)
        observed += float(_macro_f1(ca.sum(0), pa.sum(0), g.sum(0))[1])
        observed -= float(_macro_f1(cb.sum(0), pb.sum(0), g.sum(0))[1])
        stacks.append(torch.cat([g, pa, ca, pb, cb], 1))  # [n, 45]
    for start in range(0, rounds, chunk):
        k = min(chunk, rounds - start)
        weights_of: dict[int, Tensor] = {}  # example count -> this chunk's resample counts
        for stacked in stacks:
            n = stacked.size(0)
            if n not in weights_of:
                index = torch.randint(0, n, (k, n), generator=generator)  # [k, n]
                weights_of[n] = torch.zeros(k, n).scatter_add_(1, index, torch.ones(k, n))
            counts = weights_of[n] @ stacked  # [k, 45]
            gk, pak, cak, pbk, cbk = counts.split(NUM_RELATIONS, 1)  # [k, 9] each
            diff = _macro_f1(cak, pak, gk)[1] - _macro_f1(cbk, pbk, gk)[1]  # [k]
            means[start : start + k] += diff
    means /= len(gold)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975])).tolist()
    return {"mean": observed / len(gold), "low": low, "high": high}
