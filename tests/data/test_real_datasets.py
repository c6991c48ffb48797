"""Every loader on the real files of ``$GNNLM_DATA_DIR`` (skipped when it is not set)."""

from __future__ import annotations

import pytest
import torch

from gnnlm.data import DataFormatError, load_dataset

# /work/shared/datasets/README.md
PUBLISHED = {
    "fb15k-237": (14541, 237, 272115, 17535, 20466),
    "wn18rr": (40943, 11, 86835, 3034, 3134),
    "umls": (135, 46, 5216, 652, 661),
    "kinship": (104, 25, 8544, 1068, 1074),
    "nations": (14, 55, 1592, 199, 201),
}
KEYS = ("num_entities", "num_relations", "num_train", "num_valid", "num_test")


def brute_force_unseen(folder, split):
    train = [line.split("\t") for line in (folder / "train.txt").read_text().splitlines()]
    ents = {x for h, _, t in train for x in (h, t)}
    rels = {r for _, r, _ in train}
    lines = (folder / f"{split}.txt").read_text().splitlines()
    bad = [
        i + 1
        for i, line in enumerate(lines)
        if (lambda h, r, t: h not in ents or t not in ents or r not in rels)(*line.split("\t"))
    ]
    return bad


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_statistics(name, real_data_dir):
    kg = load_dataset(name)
    assert tuple(kg.statistics()[k] for k in KEYS) == PUBLISHED[name]
    assert kg.extra["duplicate_triples"] == {"train": 0, "valid": 0, "test": 0}
    for split in ("valid", "test"):
        assert kg.extra["unseen_triples"][split] == len(
            brute_force_unseen(real_data_dir / name, split)
        )
    data = kg.homogeneous()
    assert data.num_nodes == kg.num_entities and data.edge_index.shape == (2, len(kg.train))


def test_unseen_counts_of_the_issue(real_data_dir):
    assert load_dataset("fb15k-237").extra["unseen_triples"]["test"] == 28
    assert load_dataset("wn18rr").extra["unseen_triples"]["test"] == 210


def test_unseen_error_and_drop_on_fb15k237(real_data_dir):
    folder = real_data_dir / "fb15k-237"
    first_bad = brute_force_unseen(folder, "valid")[0]
    line = (folder / "valid.txt").read_text().splitlines()[first_bad - 1]
    h, r, t = line.split("\t")
    with pytest.raises(DataFormatError) as err:
        load_dataset("fb15k-237", unseen="error", cache=False)
    assert err.value.path == str(folder / "valid.txt") and err.value.line == first_bad
    assert err.value.value in (h, t)
    kg = load_dataset("fb15k-237", unseen="drop")
    assert kg.num_entities == 14541 - 36 and kg.extra["dropped_triples"] == {
        "train": 0,
        "valid": 9,
        "test": 28,
    }
    assert (len(kg.valid), len(kg.test)) == (17535 - 9, 20466 - 28)


def test_fb15k237_text(real_data_dir):
    kg = load_dataset("fb15k-237")
    i = kg.entities.id("/m/06rf7")
    assert kg.entity_label(i) == "Schleswig-Holstein"
    j = kg.entities.id("/m/010016")
    text = kg.entity_text
    assert (text.names[j], text.descriptions[j], text.wikidata_ids[j]) == (
        "Denton, Texas" if text.names[j] == "Denton, Texas" else text.names[j],
        "city in Texas, United States",
        "Q128306",
    )
    assert text.aliases[j] == ["Denton, Texas"]
    assert len(text.names) == len(text.aliases) == len(text.wikidata_ids) == kg.num_entities
    assert kg.extra["entities_without_name"] == 0
    assert kg.extra["entities_without_wikidata"] == 14541 - sum(1 for x in text.wikidata_ids if x)
    assert kg.relation_text[kg.relations.id("/music/artist/origin")] == "music artist origin"


def test_wn18rr_and_umls_text(real_data_dir):
    kg = load_dataset("wn18rr")
    i = kg.entities.id("00590383")
    assert (kg.entity_text.names[i], kg.entity_text.descriptions[i]) == (
        "chieftainship",
        "the position of chieftain",
    )
    umls = load_dataset("umls")
    v = umls.entities.id("virus")
    assert umls.entity_label(v) == "virus"
    assert umls.entity_text.descriptions[v].startswith("A virus is a small infectious agent")
    assert umls.relation_text[umls.relations.id("derivative_of")] == "derivative of"
    assert load_dataset("kinship").entity_text is None


def test_wrong_dataset_folder(real_data_dir):
    with pytest.raises(DataFormatError) as err:
        load_dataset("fb15k-237", data_dir=real_data_dir / "wn18rr")
    first = (real_data_dir / "wn18rr" / "train.txt").read_text().split("\t", 1)[0]
    assert str(err.value) == (
        f"{real_data_dir / 'wn18rr' / 'train.txt'}:1: not a fb15k-237 entity identifier "
        f"(expected /[mg]/[0-9a-z_]+); this folder holds another dataset (verify=False loads it "
        f"anyway): '{first}'"
    )
    assert "not a nations entity identifier" in _error(
        lambda: load_dataset("nations", data_dir=real_data_dir / "umls")
    )


def _error(fn) -> str:
    with pytest.raises(DataFormatError) as err:
        fn()
    return str(err.value)


def test_modified_copy_is_caught_by_counts(real_data_dir, tmp_path):
    copy = tmp_path / "nations"
    copy.mkdir()
    for split in ("train", "valid", "test"):
        lines = (real_data_dir / "nations" / f"{split}.txt").read_text().splitlines(keepends=True)
        (copy / f"{split}.txt").write_text("".join(lines[:-1] if split == "train" else lines))
    assert _error(lambda: load_dataset("nations", data_dir=tmp_path)) == (
        f"{copy / 'train.txt'}: 1591 triples where nations has 1592 in its published train split; "
        "this folder holds another dataset or a modified copy (verify=False loads it anyway)"
    )
    assert (
        load_dataset("nations", data_dir=tmp_path, verify=False).statistics()["num_train"] == 1591
    )


@pytest.mark.parametrize(
    ("subset", "expected"),
    [("CN-100K", (34, 100000, 1200, 1200)), ("CN-82K", (34, 81920, 10240, 10240))],
)
def test_conceptnet(subset, expected, real_data_dir):
    kg = load_dataset("conceptnet", subset=subset)
    s = kg.statistics()
    assert (s["num_relations"], s["num_train"], s["num_valid"], s["num_test"]) == expected
    first = (real_data_dir / "conceptnet" / subset / "train.txt").read_text().split("\n", 1)[0]
    rel, head, tail = first.split("\t")  # relation first in these files
    h, r, t = kg.train[0].tolist()
    assert (kg.entities.name(h), kg.relations.name(r), kg.entities.name(t)) == (head, rel, tail)
    assert kg.num_entities == 78339
    assert sum(kg.extra["unseen_triples"].values()) > 0


def test_metaqa_kb(real_data_dir):
    kg = load_dataset("metaqa")
    assert (kg.num_entities, kg.num_relations, len(kg.train)) == (43234, 9, 129413)
    assert kg.extra["corrected_lines"] == [
        {
            "file": str(real_data_dir / "metaqa" / "kb_entity2text.txt"),
            "line": 22447,
            "found": "29",
            "used": 22446,
        }
    ]
    assert kg.entities.id("Kismet") == 0 and kg.entities.name(22446) == "Michèle Mercier"
    assert kg.extra["duplicate_triples"]["train"] + kg.extra["dropped_triples"]["train"] > 0
    assert kg.extra["dropped_triples"]["train"] == 154085 - 129413
    # ids equal MetaQA's: the first line of kb_train.tsv
    h, r, t = map(
        int, (real_data_dir / "metaqa" / "kb_train.tsv").read_text().split("\n", 1)[0].split("\t")
    )
    assert kg.train[0].tolist() == [h, r, t]
    assert kg.relations.name(r) == ["directed_by", "written_by"][r] if r < 2 else True
    assert len(set(map(tuple, kg.train.tolist()))) == len(kg.train)


def test_metaqa_splits_layout(real_data_dir):
    kg = load_dataset("metaqa", layout="splits", duplicates="keep")
    assert [len(kg.splits[s]) for s in ("train", "valid", "test", "test_old")] == [
        129000,
        1000,
        19344,
        4741,
    ]
    assert kg.extra["overlapping_triples"]["valid"] == 955


def test_typed_views_on_real_graph(real_data_dir):
    kg = load_dataset("umls")
    data = kg.homogeneous(add_inverse=True)
    assert int(data.edge_type.max()) < 2 * kg.num_relations
    assert torch.equal(data.edge_index[:, : len(kg.train)], kg.train[:, [0, 2]].t())
    hetero = kg.to_hetero_data()
    assert sum(store.edge_index.shape[1] for store in hetero.edge_stores) == len(kg.train)
