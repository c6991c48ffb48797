"""A tiny knowledge graph as ``tsv:`` files (30 entities, 3 relations, 240 triples) and a fast config."""

from __future__ import annotations

import random
from pathlib import Path

from gnnlm.train import TrainConfig
from gnnlm.train.config import apply_overrides


def write_tiny_kg(folder: Path, seed: int = 0) -> Path:
    """Write ``train.txt`` / ``valid.txt`` / ``test.txt`` (head, relation, tail) into ``folder``."""
    rng = random.Random(seed)
    triples: set[tuple[str, str, str]] = set()
    while len(triples) < 240:
        h, r = rng.randrange(30), rng.randrange(3)
        t = (h * (r + 2) + r) % 30 if rng.random() < 0.8 else rng.randrange(30)
        triples.add((f"e{h}", f"r{r}", f"e{t}"))
    ordered = sorted(triples)
    rng.shuffle(ordered)
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (
        ("train", ordered[:200]),
        ("valid", ordered[200:220]),
        ("test", ordered[220:]),
    ):
        (folder / f"{name}.txt").write_text("".join("\t".join(t) + "\n" for t in part))
    return folder


def reverse_train_file(folder: Path) -> None:
    """Same triples, another order: entities and relations first appear in another order."""
    path = folder / "train.txt"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(reversed(lines)))


def tiny_config(folder: Path, *overrides: str) -> TrainConfig:
    base = [f"dataset=tsv:{folder}", "dataset_kwargs={cache: false}", "model.interaction=distmult",
            "model.embedding_dim=8", "training.loop=kvsall", "training.loss=bce", "training.epochs=4",
            "training.batch_size=64", "training.lr=0.05", "evaluation.frequency=2",
            "evaluation.patience=5"]  # fmt: skip
    return apply_overrides(TrainConfig(), [*base, *overrides])


def write_tiny_config(path: Path, folder: Path, *overrides: str) -> Path:
    tiny_config(folder, *overrides).save(path)
    return path
