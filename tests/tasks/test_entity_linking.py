"""Entity linking (task: entity_linking): the ELEVANT reader, candidate generation, metrics, the
bi-encoder learning on a tiny KB, the coherence re-ranker, engine runs with variants, predict --text,
and the real benchmark files."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest
import torch

from gnnlm.cli import main
from gnnlm.config import apply_overrides
from gnnlm.data.errors import DataFormatError
from gnnlm.tasks.entity_linking import EntityLinkingConfig, EntityLinkingTask
from gnnlm.tasks.entity_linking.candidates import CandidateGenerator, normalize, recall_at
from gnnlm.tasks.entity_linking.detection import detect_mentions
from gnnlm.tasks.entity_linking.metrics import linking_metrics
from gnnlm.tasks.entity_linking.reader import read_benchmark
from gnnlm.tasks.entity_linking.reranker import CoherenceReranker
from gnnlm.train import Trainer
from tests.tasks.helpers import set_up

torch.set_num_threads(1)

DATA = Path(os.environ.get("GNNLM_DATA_DIR", "/nonexistent"))
needs_real_data = pytest.mark.skipif(
    not (DATA / "entity-linking" / "kore50.benchmark.jsonl").is_file(),
    reason="needs $GNNLM_DATA_DIR with entity-linking",
)

#: ambiguous names: each has two senses, told apart by their context words (the text test) or by an
#: unambiguous anchor entity next to the sense in the KG (the coherence test)
SENSES = {
    "Paris": [("city in France", "France", "streets cafes river tourists"),
              ("prince of Troy in Greek myth", "Troy", "war gods hero legend")],
    "Jordan": [("country in western Asia", "Amman", "desert border kingdom capital"),
               ("basketball player", "Chicago Bulls", "dunk points season court")],
    "Mercury": [("smallest planet of the solar system", "Sun", "orbit telescope planet craters"),
                ("rock singer of Queen", "Queen", "concert album song stage")],
    "Apple": [("technology company", "Cupertino", "iphone shares software chips"),
              ("fruit of the apple tree", "Orchard", "juice pie harvest sweet")],
}  # fmt: skip


def _entities() -> list[dict]:
    """Every entity: ``{"id", "label", "description", "alternatives", "qid", "anchor"}``."""
    out, q = [], 100
    for name, senses in SENSES.items():
        for s, (description, anchor, _) in enumerate(senses):
            out.append(
                {
                    "id": f"/x/{name.lower()}{s}",
                    "label": name,
                    "description": description,
                    "alternatives": [],
                    "qid": f"Q{q}",
                    "anchor": f"/x/{anchor.lower()}",
                }
            )
            out.append({"id": f"/x/{anchor.lower()}", "label": anchor,
                        "description": f"anchor of {description}", "alternatives": [],
                        "qid": f"Q{q + 1}", "anchor": None})  # fmt: skip
            q += 2
    out[0]["alternatives"] = ["City of Light"]
    out.append({"id": "/x/beatles", "label": "The Beatles", "description": "English rock band",
                "alternatives": ["Fab Four"], "qid": "Q1299", "anchor": None})  # fmt: skip
    out.append({"id": "/x/us", "label": "United States of America", "description": "country",
                "alternatives": ["U.S.", "USA"], "qid": "Q30", "anchor": None})  # fmt: skip
    return out


def _documents(rng: random.Random, n: int, *, anchors: bool) -> list[dict]:
    """``n`` ELEVANT documents, each mentioning one sense of an ambiguous name (half each sense), with
    its context words (``anchors=False``) or its anchor entity named next to it (``anchors=True``)."""
    entities = {(e["label"], e["description"]): e for e in _entities()}
    docs = []
    for i in range(n):
        name = list(SENSES)[i % len(SENSES)]
        description, anchor, words = SENSES[name][(i // len(SENSES)) % 2]
        entity = entities[(name, description)]
        anchor_qid = entities[(anchor, f"anchor of {description}")]["qid"]
        if anchors:
            text = f"{name} and {anchor} ."
            labels = [{"span": [0, len(name)], "entity_id": entity["qid"]},
                      {"span": [len(name) + 5, len(name) + 5 + len(anchor)],
                       "entity_id": anchor_qid}]  # fmt: skip
        else:
            chosen = rng.sample(words.split(), 3)
            text = f"{chosen[0]} {chosen[1]} {name} {chosen[2]} ."
            start = len(chosen[0]) + len(chosen[1]) + 2
            labels = [{"span": [start, start + len(name)], "entity_id": entity["qid"]}]
        docs.append({"id": i, "text": text, "labels": labels})
    return docs


def _write_jsonl(path: Path, docs: list[dict]) -> None:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny KB (each sense linked to its anchor) and benchmark files: ``context-*`` (senses told
    apart by context words) and ``anchors-*`` (by a co-occurring anchor entity)."""
    root = tmp_path_factory.mktemp("el-world")
    entities = _entities()
    triples = [(e["id"], "related_to", e["anchor"]) for e in entities if e["anchor"]]
    triples.append(("/x/beatles", "formed_in", "/x/us"))
    (root / "kb.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples))
    (root / "names.tsv").write_text("".join(f"{e['id']}\t{e['label']}\n" for e in entities))
    wiki = {e["id"]: {"label": e["label"], "description": e["description"],
                      "alternatives": e["alternatives"], "wikidata_id": e["qid"], "wikipedia": ""}
            for e in entities}  # fmt: skip
    (root / "wikidata.json").write_text(json.dumps(wiki, indent=1))
    rng = random.Random(0)
    _write_jsonl(root / "context-train.benchmark.jsonl", _documents(rng, 64, anchors=False))
    _write_jsonl(root / "context-test.benchmark.jsonl", _documents(rng, 32, anchors=False))
    _write_jsonl(root / "anchors-train.benchmark.jsonl", _documents(rng, 32, anchors=True))
    _write_jsonl(root / "anchors-test.benchmark.jsonl", _documents(rng, 16, anchors=True))
    return root


def tiny_config(root: Path, **overrides) -> EntityLinkingConfig:
    """A tiny-bert run on the tiny world (seconds)."""
    values = {
        "dataset": f"tsv:{root}",
        "dataset_kwargs": {
            "files": {"train": "kb.txt"},
            "entity_text": "names.tsv",
            "cache": False,
        },  # fmt: skip
        "data.root": str(root),
        "data.wikidata": str(root / "wikidata.json"),
        "data.train": ["context-train"],
        "data.test": ["context-test"],
        "data.valid_fraction": 0.125,
        "data.generated": 0,
        "data.k": 4,
        "data.max_length": 32,
        "data.context_chars": 40,
        "model.lm": "tiny-bert",
        "model.freeze_lm_layers": 0,
        "model.entity_max_length": 16,
        "model.channels": 16,
        "training.batch_size": 4,
        "training.lr": 1e-2,
        "training.param_groups": {"lm": {"lr": 1e-3}},
        "evaluation.frequency": 0,
    }
    values.update(overrides)
    return apply_overrides(EntityLinkingConfig(), values)


def load_task(config) -> EntityLinkingTask:
    return set_up(EntityLinkingTask, config)


# -- reader ----------------------------------------------------------------------------------------
def test_the_reader_keeps_every_mention_and_counts_each_kind(tmp_path):
    path = tmp_path / "mini.benchmark.jsonl"
    docs = [
        {"id": 0, "text": "Paris is in France.", "labels": [
            {"span": [0, 5], "entity_id": "Q90"}, {"span": [12, 18], "entity_id": "<NIL>"}]},
        {"id": 1, "text": "Nothing here.", "labels": []},
        {"id": 2, "text": "Big Apple", "labels": [
            {"span": [0, 9], "entity_id": "<NO_MAPPING>", "children": [1]},
            {"span": [4, 9], "entity_id": "Q89", "parent": 0}]},
    ]  # fmt: skip
    path.write_text(json.dumps(docs[0]) + "\n\n" + json.dumps(docs[1]) + "\n" + json.dumps(docs[2]))
    bench = read_benchmark(path)
    assert bench.name == "mini" and [d.id for d in bench.documents] == [
        "mini:0",
        "mini:1",
        "mini:2",
    ]
    assert bench.counts == {"documents": 3, "blank_lines": 1, "mentions": 4, "with_qid": 2,
                            "nil": 1, "no_mapping": 1, "nested": 2}  # fmt: skip
    m = bench.documents[0].mentions[0]
    assert (m.start, m.end, m.entity_id, m.kind) == (0, 5, "Q90", "qid")
    assert bench.documents[2].mentions[0].entity_id is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ('["a list"]', "not a JSON object"),
        ('{"labels": []}', "no string 'text'"),
        ('{"text": "abc"}', "no list 'labels'"),
        ('{"text": "abc", "labels": [{"span": [0], "entity_id": "Q1"}]}', "not [start, end]"),
        ('{"text": "abc", "labels": [{"span": [1, 9], "entity_id": "Q1"}]}', "outside the text"),
        ('{"text": "abc", "labels": [{"span": [0, 1], "entity_id": "Paris"}]}', "not Q<digits>"),
    ],
)
def test_a_malformed_line_names_the_file_line_and_value(tmp_path, line, problem):
    path = tmp_path / "bad.benchmark.jsonl"
    path.write_text('{"text": "ok", "labels": []}\n' + line + "\n")
    with pytest.raises(DataFormatError, match=re.escape(problem)) as err:
        read_benchmark(path)
    assert f"{path}:2" in str(err.value)


# -- candidates and detection ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def task(world) -> EntityLinkingTask:
    return load_task(tiny_config(world))


def test_normalisation_ignores_case_punctuation_possessives_and_the_article():
    assert normalize("The Beatles'") == normalize("beatles") == "beatles"
    assert normalize("U.S.") == normalize("US") == "us"
    assert normalize("Hewlett-Packard") == "hewlett packard"
    assert normalize("Ségolène Royal's") == "segolene royal"


def test_candidates_find_aliases_through_case_inflection_punctuation_and_partial_names(task):
    kb, generate = task.kb, task.generator
    beatles, us = kb.entity_of("Q1299"), kb.entity_of("Q30")
    for mention in ("the beatles", "BEATLES", "Beatles'", "Beatle", "Fab-Four"):
        cands = generate(mention)
        assert cands and cands[0].entity == beatles, mention
    assert generate("Beatle")[0].source == "stem"
    assert generate("U.S")[0].entity == us and generate("usa")[0].source == "exact"
    assert generate("United")[0].entity == us and generate("United")[0].source == "partial"
    assert generate("Beetles")[0].entity == beatles and generate("Beetles")[0].source == "fuzzy"
    assert {c.entity for c in generate("Paris")} >= {kb.entity_of("Q100"), kb.entity_of("Q102")}
    assert generate("Zanzibar") == []


def test_the_alias_prior_ranks_the_most_frequent_training_entity_first(task):
    kb = task.kb
    generate = CandidateGenerator(kb, k=4)
    city, prince = kb.entity_of("Q100"), kb.entity_of("Q102")
    generate.set_prior([("Paris", prince), ("paris", prince), ("Paris", city)])
    assert [c.entity for c in generate("PARIS")[:2]] == [prince, city]
    assert generate("Paris")[0].prior == 2 and generate.prior_count("Paris", city) == 1


def test_mention_detection_takes_the_longest_alias_first_and_skips_lowercase_words(task):
    text = "The Beatles toured the United States of America and the U.S. again; paris was quiet."
    spans = detect_mentions(text, task.generator)
    assert [text[s:e] for s, e in spans] == ["Beatles", "United States of America", "U.S."]


def test_recall_at_k_counts_out_of_kb_mentions_as_misses():
    assert recall_at([[1, 2], [3, 4], [5]], [2, 3, None], (1, 2)) == {1: 1 / 3, 2: 2 / 3}


# -- metrics ---------------------------------------------------------------------------------------
def test_metrics_equal_a_hand_computation():
    # 5 gold mentions: 3 in KB (1 right, 1 wrong, 1 without candidates), 2 out of KB (1 predicted)
    gold = [7, 8, 9, None, None]
    predicted = [7, 5, None, 3, None]
    m = linking_metrics(gold, predicted)
    assert m["correct"] == 1 and m["in_kb"] == 3 and m["predictions"] == 3
    assert m["accuracy"] == m["recall"] == pytest.approx(1 / 3)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(1 / 3)
    assert m["in_kb_share"] == pytest.approx(3 / 5)
    assert linking_metrics([None], [None])["accuracy"] is None


# -- the counts of a run ---------------------------------------------------------------------------
def test_counts_keep_every_mention_and_the_in_kb_share(task):
    test = task.counts["test"]["all"]
    assert test["mentions"] == 32 and test["in_kb"] == 32 and test["recall@4"] == 1.0
    # each name has two senses of equal degree and frequency: the prior is right on one sense
    assert test["recall@1"] == pytest.approx(0.5)
    assert task.counts["valid"]["all"]["mentions"] == 8
    assert task.counts["train"]["all"]["mentions"] == 56
    assert task.counts["files"]["context-train"]["documents"] == 64


# -- the bi-encoder learns -------------------------------------------------------------------------
@pytest.mark.parametrize("frozen", [True, False], ids=["frozen-lm", "fine-tuned-lm"])
def test_a_tiny_biencoder_learns_to_tell_senses_apart_by_context(world, tmp_path, frozen):
    epochs = 12 if frozen else 6
    config = tiny_config(world, **{"model.arm": "lm", "training.epochs": epochs,
                                   "model.frozen_lm": frozen})  # fmt: skip
    Trainer(config, run_dir=tmp_path / "run", quiet=True).fit()
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    # the alias prior and chance are 0.5 (two senses of equal degree, equally frequent)
    assert test["prior_accuracy"] == pytest.approx(0.5)
    assert test["accuracy"] >= 0.8, test["accuracy"]
    assert len(test["correct"]) == 32 and sum(test["correct"]) == round(32 * test["accuracy"])


# -- the re-ranker ---------------------------------------------------------------------------------
def test_the_reranker_starts_at_zero_and_masks_padding(task):
    examples = task.examples["test"][:3]
    batch = task.batch("test", examples, graphs=True)
    m, k = batch.candidates.shape
    assert batch.candidate_node.shape == (m, k) and m == sum(len(x) for _, x in examples)
    assert ((batch.candidate_node >= 0) == batch.mask).all()
    # every candidate's node holds that candidate's entity
    nodes = batch.graph.n_id[batch.candidate_node[batch.mask]]
    assert torch.equal(nodes, batch.candidates[batch.mask])
    hidden = 32
    reranker = CoherenceReranker(hidden, 8, 2 * task.kb.num_relations, num_features=4)
    table = torch.randn(task.kb.num_entities, hidden)
    delta = reranker(batch.graph, table, torch.randn(m, hidden), batch.candidate_node)
    assert delta.shape == (m, k) and (delta == 0).all()  # a fresh KG arm is the bi-encoder
    torch.nn.init.normal_(reranker.mlp[2].weight)
    delta = reranker(batch.graph, table, torch.randn(m, hidden), batch.candidate_node)
    assert (delta[~batch.mask] == 0).all() and (delta[batch.mask] != 0).all()
    assert "channels=8" in repr(reranker)


def test_the_kg_arm_links_by_coherence_where_the_text_cannot_tell(world, tmp_path):
    """Each document names an ambiguous name and its sense's anchor; with a context of the mention
    alone, only the graph (the sense is next to the anchor) tells the senses apart."""
    results = {}
    for arm in ("lm", "kg"):
        config = tiny_config(world, **{
            "model.arm": arm, "data.train": ["anchors-train"], "data.test": ["anchors-test"],
            "data.context_chars": 1, "training.epochs": 10, "seed": 0, "model.frozen_lm": True,
        })  # fmt: skip
        Trainer(config, run_dir=tmp_path / arm, quiet=True).fit()
        test = json.loads((tmp_path / arm / "metrics.json").read_text())["test"]
        results[arm] = test
    # ambiguous names are half the in-KB mentions; anchors are unambiguous
    lm, kg = results["lm"]["accuracy"], results["kg"]["accuracy"]
    assert results["kg"]["prior_accuracy"] == pytest.approx(0.75)
    assert lm <= 0.8 and kg >= 0.95, (lm, kg)


# -- engine, variants, predict ---------------------------------------------------------------------
def test_an_engine_run_with_variants_reports_both_arms_and_the_prior(world, tmp_path):
    from gnnlm.train.variants import run_variants

    config = tiny_config(world, **{"seeds": [0], "training.epochs": 1,
                                   "variants": {"lm": {"model.arm": "lm"},
                                                "kg": {"model.arm": "kg"}}})  # fmt: skip
    comparison = run_variants(config, tmp_path / "cmp", quiet=True)
    for arm in ("lm", "kg"):
        test = next(iter(comparison.arms[arm]["runs"].values()))["test"]
        for key in ("accuracy", "precision", "recall", "f1", "prior_accuracy",
                    "accuracy_context-test", "prior_f1_context-test"):  # fmt: skip
            assert 0.0 <= test[key] <= 1.0, key
        assert test["counts"]["context-test"]["mentions"] == 32
    assert (tmp_path / "cmp" / "comparison.md").is_file()


def test_predict_text_links_mentions_through_the_cli(world, tmp_path, capsys):
    config = tiny_config(world, **{"model.arm": "kg", "training.epochs": 1})
    config.save(tmp_path / "config.yaml")
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "config.yaml"), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    text = "The Fab Four played in the U.S. and in Paris."
    assert main(["predict", str(run), "--text", text]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert "'Fab Four'" in lines[0] and "The Beatles (/x/beatles, Q1299)" in lines[0]
    assert lines[1].startswith("[27:31]") and "United States of America" in lines[1]
    assert "'Paris'" in lines[2] and "Paris (/x/paris" in lines[2]
    score = float(lines[2].split()[-1])
    assert 0.0 < score <= 1.0
    assert main(["predict", str(run), "--text", text, "--json"]) == 0
    links = json.loads(capsys.readouterr().out)
    assert [x["qid"] for x in links[:2]] == ["Q1299", "Q30"]


# -- the real files --------------------------------------------------------------------------------
@needs_real_data
def test_the_real_files_read_with_their_published_counts():
    counts = {name: read_benchmark(DATA / "entity-linking" / f"{name}.benchmark.jsonl").counts
              for name in ("kore50", "msnbc", "oke-2016-train", "derczynski")}  # fmt: skip
    assert (counts["kore50"]["documents"], counts["kore50"]["mentions"]) == (50, 144)
    assert counts["kore50"]["with_qid"] == 143
    assert (counts["msnbc"]["mentions"], counts["msnbc"]["with_qid"]) == (755, 666)
    assert (counts["oke-2016-train"]["mentions"], counts["oke-2016-train"]["with_qid"]) == (
        1049,
        869,
    )
    assert (counts["derczynski"]["documents"], counts["derczynski"]["with_qid"]) == (183, 210)
