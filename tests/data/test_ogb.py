"""OGB conversion on tiny graphs in OGB's exact formats (the real download cannot run here)."""

from __future__ import annotations

import builtins
import gzip

import numpy as np
import pytest
import torch

from gnnlm.data import DataError, load_dataset
from gnnlm.data.ogb import kg_from_ogb

# ogbl-biokg style: typed nodes, per-type local ids, relation ids with edge_reltype per triplet
NUM_NODES = {"protein": 2, "drug": 3, "disease": 2}
TRIPLETS = {
    ("drug", "drug-protein", "protein"): (0, [[0, 2, 1], [1, 0, 0]]),
    ("protein", "protein-protein", "protein"): (1, [[0], [1]]),
    ("drug", "drug-disease", "disease"): (2, [[1, 2], [0, 1]]),
}


def biokg_graph() -> dict:
    """The graph dict ``ogb.io.read_csv_heterograph_raw`` returns."""
    return {
        "edge_index_dict": {k: np.array(e, dtype=np.int64) for k, (_, e) in TRIPLETS.items()},
        "edge_feat_dict": None,
        "node_feat_dict": {},
        "num_nodes_dict": {k: v for k, v in NUM_NODES.items()},
        "edge_reltype": {
            k: np.full((len(e[0]), 1), r, dtype=np.int64) for k, (r, e) in TRIPLETS.items()
        },
    }


def biokg_split() -> dict:
    """The dict ``LinkPropPredDataset.get_edge_split()`` returns for ogbl-biokg."""
    train = {"head": [], "relation": [], "tail": [], "head_type": [], "tail_type": []}
    for (src, _, dst), (rel, (heads, tails)) in TRIPLETS.items():
        for h, t in zip(heads, tails):
            train["head"].append(h)
            train["relation"].append(rel)
            train["tail"].append(t)
            train["head_type"].append(src)
            train["tail_type"].append(dst)
    train = {
        k: torch.tensor(v) if k in ("head", "relation", "tail") else v for k, v in train.items()
    }

    def evaluation(h, r, t, ht, tt):
        return {
            "head": torch.tensor(h),
            "relation": torch.tensor(r),
            "tail": torch.tensor(t),
            "head_type": ht,
            "tail_type": tt,
            "head_neg": torch.zeros(len(h), 4, dtype=torch.long),
            "tail_neg": torch.zeros(len(h), 4, dtype=torch.long),
        }

    return {
        "train": train,
        "valid": evaluation([2], [0], [1], ["drug"], ["protein"]),
        "test": evaluation([0, 1], [2, 1], [1, 0], ["drug", "protein"], ["disease", "protein"]),
    }


def test_typed_conversion_keeps_per_type_ids():
    kg = kg_from_ogb(biokg_graph(), biokg_split(), name="ogbl-biokg")
    assert kg.node_types == ["disease", "drug", "protein"]  # sorted, each a contiguous block
    assert kg.type_ptr.tolist() == [0, 2, 5, 7]
    assert kg.num_entities == 7 and kg.relations.names == (
        "drug-protein",
        "protein-protein",
        "drug-disease",
    )
    split = biokg_split()
    for name in ("train", "valid", "test"):
        triples = kg.splits[name]
        for i, (h, r, t) in enumerate(triples.tolist()):
            part = split[name]
            assert kg.node_types[int(kg.entity_type[h])] == part["head_type"][i]
            assert kg.node_types[int(kg.entity_type[t])] == part["tail_type"][i]
            assert int(kg.local_id(torch.tensor(h))) == int(part["head"][i])
            assert int(kg.local_id(torch.tensor(t))) == int(part["tail"][i])
            assert r == int(part["relation"][i])
    assert kg.entities.name(3) == "drug/1" and kg.global_id("drug", torch.tensor([1])).item() == 3
    # the hetero view gives OGB's edge_index_dict back, local ids per type
    hetero = kg.to_hetero_data()
    for key, (_, edges) in TRIPLETS.items():
        assert hetero[key].edge_index.tolist() == edges
    assert hetero["drug"].num_nodes == 3


def test_homogeneous_conversion_wikikg2_format():
    graph = {
        "edge_index": np.array([[0, 1, 2], [1, 2, 3]]),
        "edge_reltype": np.array([[0], [1], [0]]),
        "num_nodes": 5,
    }
    split = {
        "train": {
            "head": torch.tensor([0, 1, 2]),
            "relation": torch.tensor([0, 1, 0]),
            "tail": torch.tensor([1, 2, 3]),
        },
        "valid": {
            "head": torch.tensor([3]),
            "relation": torch.tensor([1]),
            "tail": torch.tensor([4]),
            "tail_neg": torch.zeros(1, 3),
        },
        "test": {
            "head": torch.tensor([0]),
            "relation": torch.tensor([1]),
            "tail": torch.tensor([3]),
        },
    }
    kg = kg_from_ogb(graph, split, name="ogbl-wikikg2")
    assert kg.node_types == ["entity"] and kg.num_entities == 5 and kg.num_relations == 2
    assert kg.valid.tolist() == [[3, 1, 4]]
    assert kg.extra["unseen_triples"] == {"valid": 1, "test": 0}


def test_bad_ogb_input_is_named():
    split = biokg_split()
    split["test"]["tail"] = torch.tensor([1, 2])  # protein has 2 nodes: local id 2 is out of range
    with pytest.raises(
        DataError,
        match=r"^ogbl-biokg/test/tail\[1\]: id 2 out of range for node type 'protein' with 2 nodes$",
    ):
        kg_from_ogb(biokg_graph(), split, name="ogbl-biokg")
    split = biokg_split()
    split["valid"]["head_type"] = ["gene"]
    with pytest.raises(DataError, match="unknown node type 'gene'"):
        kg_from_ogb(biokg_graph(), split, name="ogbl-biokg")
    split = biokg_split()
    del split["train"]["tail_type"]
    with pytest.raises(DataError, match="split 'train' has no 'tail_type'"):
        kg_from_ogb(biokg_graph(), split, name="ogbl-biokg")


def _csv_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("".join(",".join(map(str, row)) + "\n" for row in rows))


def write_biokg_folder(root):
    """An ``ogbl_biokg`` folder as OGB's zip unpacks it, minus RELEASE_v1.txt, plus a processed
    pickle that torch>=2.6 cannot load: neither trap may be touched."""
    folder = root / "ogbl_biokg"
    raw = folder / "raw"
    _csv_gz(raw / "num-node-dict.csv.gz", [list(NUM_NODES), list(NUM_NODES.values())])
    _csv_gz(raw / "triplet-type-list.csv.gz", [list(k) for k in TRIPLETS])
    for key, (rel, edges) in TRIPLETS.items():
        sub = raw / "relations" / "___".join(key)
        _csv_gz(sub / "edge.csv.gz", list(zip(*edges)))
        _csv_gz(sub / "num-edge-list.csv.gz", [[len(edges[0])]])
        _csv_gz(sub / "edge_reltype.csv.gz", [[rel]] * len(edges[0]))
    split_dir = folder / "split" / "random"
    split_dir.mkdir(parents=True)
    for name, part in biokg_split().items():
        torch.save(part, split_dir / f"{name}.pt")
    (folder / "processed").mkdir()
    (folder / "processed" / "data_processed").write_bytes(b"not a loadable pickle")
    return folder


def test_biokg_folder_loads_without_prompt_or_pickle(tmp_path, monkeypatch):
    write_biokg_folder(tmp_path)

    def no_prompt(*args):
        raise AssertionError("ogb asked a question on stdin")

    monkeypatch.setattr(builtins, "input", no_prompt)
    kg = load_dataset("ogbl-biokg", data_dir=tmp_path, verify=False)
    expected = kg_from_ogb(biokg_graph(), biokg_split(), name="ogbl-biokg")
    for split in ("train", "valid", "test"):
        assert torch.equal(kg.splits[split], expected.splits[split])
    assert kg.relations == expected.relations and kg.node_types == expected.node_types
    again = load_dataset("ogbl-biokg", data_dir=tmp_path, verify=False)
    assert again.extra["from_cache"] and torch.equal(again.entity_type, kg.entity_type)
    with pytest.raises(DataError, match="published train split"):
        load_dataset("ogbl-biokg", data_dir=tmp_path, cache=False)  # verify: not the real counts


def test_biokg_mapping_files_name_entities_and_relations(tmp_path):
    folder = write_biokg_folder(tmp_path)
    relations = ["drug-protein", "protein-protein", "drug-disease"]
    _csv_gz(
        folder / "mapping" / "relidx2relname.csv.gz",
        [["rel idx", "rel name"]] + [[i, f"{n}!"] for i, n in enumerate(relations)],
    )
    for node_type, count in NUM_NODES.items():
        rows = [["ent idx", "ent name"]] + [
            [i, f"{node_type[:2].upper()}{i:03d}"] for i in reversed(range(count))
        ]
        _csv_gz(folder / "mapping" / f"{node_type}_entidx2name.csv.gz", rows)
    kg = load_dataset("ogbl-biokg", data_dir=tmp_path, verify=False)
    assert kg.relations.names == tuple(f"{n}!" for n in relations)
    assert kg.entities.name(3) == "drug/DR001"  # sorted by the index column, prefixed by type
    assert kg.entities.id("protein/PR001") == 6
