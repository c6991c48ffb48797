"""OGB's sampled protocol on a dataset folder: a fake ``ogbl_wikikg2`` in OGB's layout (raw CSVs, split
files with ``head_neg`` / ``tail_neg``), the shipped ``configs/ogbl-wikikg2`` configs trained on it
through the engine, and ``python -m gnnlm.eval.ogb_run`` on the saved model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from gnnlm.data import load_dataset
from gnnlm.eval import OGBEvaluator
from gnnlm.eval.ogb_run import OGBProtocolEvaluator, load_ogb_negatives, main
from gnnlm.kge import build_kge_model
from gnnlm.tasks.loading import load_config
from gnnlm.train import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "ogbl-wikikg2"
NUM_NODES, NUM_RELATIONS, NUM_NEG = 40, 4, 6


def _csv_gz(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("".join(",".join(map(str, row)) + "\n" for row in rows))


def write_wikikg2_folder(root: Path, seed: int = 0) -> dict:
    """An ``ogbl_wikikg2`` folder as OGB's zip unpacks it (``split/time``); returns the splits."""
    g = torch.Generator().manual_seed(seed)
    triples = torch.stack(
        [torch.randint(NUM_NODES, (160,), generator=g), torch.randint(NUM_RELATIONS, (160,), generator=g),
         torch.randint(NUM_NODES, (160,), generator=g)], dim=1,
    )  # fmt: skip
    triples = torch.unique(triples, dim=0)[
        torch.randperm(len(torch.unique(triples, dim=0)), generator=g)
    ]
    parts = {"train": triples[:-30], "valid": triples[-30:-15], "test": triples[-15:]}
    folder = root / "ogbl_wikikg2"
    train = parts["train"]
    _csv_gz(folder / "raw" / "edge.csv.gz", train[:, [0, 2]].tolist())
    _csv_gz(folder / "raw" / "edge_reltype.csv.gz", train[:, [1]].tolist())
    _csv_gz(folder / "raw" / "num-node-list.csv.gz", [[NUM_NODES]])
    _csv_gz(folder / "raw" / "num-edge-list.csv.gz", [[len(train)]])
    split_dir = folder / "split" / "time"
    split_dir.mkdir(parents=True)
    splits = {}
    for name, part in parts.items():
        split = {
            "head": part[:, 0].numpy(),
            "relation": part[:, 1].numpy(),
            "tail": part[:, 2].numpy(),
        }
        if name != "train":
            split["head_neg"] = torch.randint(NUM_NODES, (len(part), NUM_NEG), generator=g).numpy()
            split["tail_neg"] = torch.randint(NUM_NODES, (len(part), NUM_NEG), generator=g).numpy()
        torch.save(split, split_dir / f"{name}.pt")
        splits[name] = split
    return splits


@pytest.fixture
def wikikg2(tmp_path, monkeypatch):
    splits = write_wikikg2_folder(tmp_path / "data")
    monkeypatch.setenv("GNNLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GNNLM_CACHE_DIR", str(tmp_path / "cache"))
    kg = load_dataset("ogbl-wikikg2", verify=False, cache=False)
    return kg, splits


def integer_model(kg, seed: int = 0):
    torch.manual_seed(seed)
    model = build_kge_model("distmult", kg.num_entities, kg.num_relations, 3)
    with torch.no_grad():  # integer embeddings: exact scores, ties
        for w in (model.representation.entity.weight, model.representation.relation.weight):
            w.copy_(torch.randint(-1, 2, w.shape).float())
    return model


def test_negatives_come_back_in_the_graphs_ids_and_order(wikikg2):
    kg, splits = wikikg2
    for split in ("valid", "test"):
        triples, head_neg, tail_neg = load_ogb_negatives("ogbl-wikikg2", split, kg=kg)
        assert torch.equal(triples, kg.splits[split])
        assert torch.equal(head_neg, torch.as_tensor(splits[split]["head_neg"]))
        assert torch.equal(tail_neg, torch.as_tensor(splits[split]["tail_neg"]))
    with pytest.raises(ValueError, match="train.pt: split 'train' has no head_neg"):
        load_ogb_negatives("ogbl-wikikg2", "train")
    with pytest.raises(ValueError, match="not an OGB link dataset"):
        load_ogb_negatives("umls", "test")


def test_protocol_evaluator_equals_ogbs_evaluator_on_the_split(wikikg2):
    kg, splits = wikikg2
    model = integer_model(kg)
    evaluator = OGBProtocolEvaluator.from_dataset("ogbl-wikikg2", kg=kg, batch_size=4)
    got = evaluator.evaluate(model, kg.splits["test"])
    expected = OGBEvaluator("ogbl-wikikg2").evaluate(
        model, kg.splits["test"],
        head_neg=torch.as_tensor(splits["test"]["head_neg"]),
        tail_neg=torch.as_tensor(splits["test"]["tail_neg"]),
    )  # fmt: skip
    assert got.to_dict() == expected.to_dict()
    assert got.num_queries == 2 * len(kg.splits["test"])
    assert evaluator.split_of(kg.splits["valid"]) == "valid"
    with pytest.raises(KeyError, match="no OGB negatives for these 14 triples"):
        evaluator.evaluate(model, kg.splits["test"][1:])


@pytest.mark.parametrize("name", ["transe", "rotate"])
def test_shipped_config_trains_and_evaluates_on_ogbs_protocol(wikikg2, tmp_path, name):
    kg, splits = wikikg2
    config = load_config(
        CONFIGS / f"{name}.yaml",
        ["model.embedding_dim=4", "training.epochs=2", "training.batch_size=32",
         "training.num_negatives=4", "training.device=cpu", "training.checkpoint_steps=0",
         "training.log_steps=0", "evaluation.batch_size=8", "dataset_kwargs={verify: false}"],
    )  # fmt: skip
    assert config.evaluation.protocol == "ogb" and config.training.sparse_updates is True
    result = Trainer(config, run_dir=tmp_path / "run", quiet=True).fit()
    test = result.metrics["test"]
    assert 0 < test["mrr"] <= 1
    assert test["num_queries"] == 2 * len(splits["test"]["head"])  # OGB's queries, both sides
    # The saved model re-scored by the command gives the run's numbers.
    out = main([str(tmp_path / "run" / "model"), "--split", "test", "valid", "--quiet",
                "--out", str(tmp_path / "ogb.json")])  # fmt: skip
    assert out["test"]["mrr"] == pytest.approx(test["mrr"], abs=1e-6)
    assert json.loads((tmp_path / "ogb.json").read_text())["valid"]["num_queries"] == 30
