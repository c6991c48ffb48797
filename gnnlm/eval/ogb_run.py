"""OGB's sampled protocol for a dataset on disk: its negatives, an evaluator, and a command.

gnnlm's OGB loader (:mod:`gnnlm.data.ogb`) keeps the triples of ``ogbl-wikikg2`` / ``ogbl-biokg`` and
drops the ``head_neg`` / ``tail_neg`` arrays OGB ships with each valid and test triple (500 sampled
negative entities per side). The leaderboard ranks against those, and the full filtered ranking
against 2.5 million entities is out of reach for ``ogbl-wikikg2``'s 1M evaluation triples (about
``10^15`` operations), so this module reads them back from the split files and evaluates with
:class:`~gnnlm.eval.ogb.OGBEvaluator` (OGB's own ``Evaluator``):

* :func:`load_ogb_negatives`: ``(triples [n, 3], head_neg [n, K], tail_neg [n, K])`` of a split, in
  the graph's global ids (typed ``ogbl-biokg`` ids shifted per node type).
* :class:`OGBProtocolEvaluator`: :class:`~gnnlm.eval.RankBasedEvaluator`'s ``evaluate(model,
  triples)`` on the sampled protocol, for the splits it holds negatives of (a task can use it in
  place of the full ranking).
* ``python -m gnnlm.eval.ogb_run MODEL_DIR --split test``: a ``save_pretrained`` model (e.g.
  ``RUN_DIR/model`` of ``configs/ogbl-wikikg2/*.yaml``) on OGB's protocol; metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gnnlm.eval.metrics import RankBasedMetrics
from gnnlm.eval.ogb import OGBEvaluator, ogb_split_to_global

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph
    from gnnlm.eval.rank_based import RankableModel

__all__ = ["OGBProtocolEvaluator", "load_ogb_negatives", "main"]


def load_ogb_negatives(
    dataset: str,
    split: str,
    *,
    kg: KnowledgeGraph | None = None,
    data_dir: str | Path | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A split's triples and OGB's sampled negatives, read from the dataset's split files.

    Args:
        dataset: ``ogbl-wikikg2`` or ``ogbl-biokg`` (any registered :class:`~gnnlm.data.ogb.
            OGBLinkDataset`).
        split: ``valid`` or ``test``.
        kg: the loaded graph; needed for typed graphs (``ogbl-biokg``: per-type ids to global ids).
        data_dir: where the dataset folder is (default: ``$GNNLM_DATA_DIR``, then the user cache);
            nothing is downloaded here.

    Returns:
        ``(triples [n, 3], head_neg [n, K] or None, tail_neg [n, K] or None)`` in global ids, the
        triples in OGB's order (the order of ``kg.splits[split]`` when loaded with the default
        ``unseen="keep"``, ``duplicates="keep"``).

    Raises:
        DatasetNotFoundError: no local copy of the dataset, or no split file.
        ValueError: ``dataset`` is not an OGB link dataset, or the split has no negatives.
    """
    from gnnlm.data.errors import DatasetNotFoundError
    from gnnlm.data.ogb import OGBLinkDataset, load_split_file
    from gnnlm.data.registry import get_dataset

    ds = get_dataset(dataset, download=False)
    if not isinstance(ds, OGBLinkDataset):
        raise ValueError(f"{dataset!r} is not an OGB link dataset (ogbl-wikikg2, ogbl-biokg)")
    folder = ds.fetch(data_dir).path
    split_dir = ds.split_dir(folder)
    if (split_dir / "split_dict.pt").is_file():
        path = split_dir / "split_dict.pt"
        parts = load_split_file(path)
        if split not in parts:
            raise ValueError(f"{path}: no split {split!r} (has {', '.join(sorted(parts))})")
        part = parts[split]
    else:
        path = split_dir / f"{split}.pt"
        if not path.is_file():
            raise DatasetNotFoundError(f"{path}: file not found")
        part = load_split_file(path)
    if "head_neg" not in part and "tail_neg" not in part:
        raise ValueError(f"{path}: split {split!r} has no head_neg / tail_neg (OGB ships them for "
                         "valid and test)")  # fmt: skip
    return ogb_split_to_global(part, kg)


class OGBProtocolEvaluator:
    """``evaluate(model, triples)`` of :class:`~gnnlm.eval.RankBasedEvaluator`, on OGB's protocol.

    Args:
        name: the OGB dataset (for ``ogb.linkproppred.Evaluator``).
        negatives: per split, ``(triples [n, 3], head_neg [n, K], tail_neg [n, K])`` (see
            :func:`load_ogb_negatives`).
        batch_size: triples scored at once (each with its ``2 K`` candidates).
        quiet: no progress bar.

    :meth:`evaluate` finds the split whose triples it is given (same triples, same order) and ranks
    each true head / tail among that triple's negatives.
    """

    def __init__(
        self,
        name: str,
        negatives: dict[str, tuple[Tensor, Tensor | None, Tensor | None]],
        *,
        batch_size: int = 256,
        quiet: bool = True,
    ) -> None:
        self.evaluator = OGBEvaluator(name, batch_size=batch_size, quiet=quiet)
        self.negatives = {k: (v[0].long(), v[1], v[2]) for k, v in negatives.items()}

    @classmethod
    def from_dataset(
        cls,
        dataset: str,
        *,
        kg: KnowledgeGraph | None = None,
        splits: Sequence[str] = ("valid", "test"),
        data_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> OGBProtocolEvaluator:
        """The negatives of ``splits`` read from ``dataset``'s files (:func:`load_ogb_negatives`)."""
        negatives = {s: load_ogb_negatives(dataset, s, kg=kg, data_dir=data_dir) for s in splits}
        return cls(dataset, negatives, **kwargs)

    def split_of(self, triples: Tensor) -> str:
        """The split whose triples are ``triples: [n, 3]``.

        Raises:
            KeyError: no split holds exactly these triples in this order.
        """
        triples = triples.long()
        for split, (known, _, _) in self.negatives.items():
            if known.shape == triples.shape and torch.equal(known, triples.to(known.device)):
                return split
        raise KeyError(
            f"no OGB negatives for these {len(triples)} triples (held: "
            + ", ".join(f"{s}: {len(v[0])}" for s, v in self.negatives.items())
            + "); the protocol ranks only OGB's own valid/test triples, in OGB's order"
        )

    @torch.no_grad()
    def evaluate(self, model: RankableModel, triples: Tensor) -> RankBasedMetrics:
        """OGB's MRR and Hits@k of ``triples`` (one of the held splits), both sides."""
        known, head_neg, tail_neg = self.negatives[self.split_of(triples)]
        return self.evaluator.evaluate(model, known, head_neg=head_neg, tail_neg=tail_neg)


def _renumber(kg: KnowledgeGraph, vocab: dict[str, list[str]] | None, source: str):
    """Maps ``(entity [num_entities], relation [num_relations])`` from the graph's ids to the saved
    model's (``None`` when they agree)."""
    if vocab is None:
        return None
    names = {"entities": list(kg.entities.names), "relations": list(kg.relations.names)}
    if vocab == names:
        return None
    maps = []
    for key in ("entities", "relations"):
        index = {name: i for i, name in enumerate(vocab[key])}
        missing = [n for n in names[key] if n not in index]
        if missing:
            raise ValueError(f"{source}: the model has no {key[:-1]} {missing[0]!r} of the dataset")
        maps.append(torch.tensor([index[n] for n in names[key]], dtype=torch.long))
    return maps


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m gnnlm.eval.ogb_run MODEL_DIR [--split test] [--dataset NAME] [--out FILE]``."""
    from gnnlm.data import load_dataset
    from gnnlm.train.pretrained import PretrainedConfig, from_pretrained, load_vocab

    parser = argparse.ArgumentParser(
        prog="python -m gnnlm.eval.ogb_run",
        description="Evaluate a saved link-prediction model on OGB's sampled-negatives protocol.",
    )
    parser.add_argument("model_dir", type=Path, help="a save_pretrained folder, e.g. RUN_DIR/model")
    parser.add_argument("--dataset", default=None, help="default: the model's config.json")
    parser.add_argument("--split", nargs="+", default=["test"], choices=["valid", "test"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="also write the metrics here (JSON)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    config = PretrainedConfig.load(args.model_dir)
    dataset = args.dataset or config.dataset
    if not dataset:
        parser.error(f"{args.model_dir / 'config.json'} names no dataset; pass --dataset")
    kg = load_dataset(dataset, data_dir=args.data_dir, **(config.dataset_kwargs or {}))
    renumber = _renumber(kg, load_vocab(args.model_dir), str(args.model_dir / "vocab.json"))
    model = from_pretrained(args.model_dir, kg=kg).to(args.device)
    results: dict[str, Any] = {"model_dir": str(args.model_dir), "dataset": dataset}
    for split in args.split:
        triples, head_neg, tail_neg = load_ogb_negatives(
            dataset, split, kg=kg, data_dir=args.data_dir
        )
        if renumber is not None:
            entity, relation = renumber
            triples = torch.stack(
                [entity[triples[:, 0]], relation[triples[:, 1]], entity[triples[:, 2]]], dim=1
            )
            head_neg = None if head_neg is None else entity[head_neg]
            tail_neg = None if tail_neg is None else entity[tail_neg]
        evaluator = OGBEvaluator(dataset, batch_size=args.batch_size, quiet=args.quiet)
        metrics = evaluator.evaluate(model, triples, head_neg=head_neg, tail_neg=tail_neg)
        results[split] = metrics.to_dict()
    text = json.dumps(results, indent=2)
    if args.out is not None:
        from gnnlm.utils.atomic import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
