"""Relation classification on SemEval-2010 Task 8 with WordNet (task: relation_classification): the
reader, entity markers, the official scorer against a hand-computed confusion matrix, its paired
bootstrap, nominal linking, the collator, a tiny model that learns, the config and an engine run of
every arm; the real files when $GNNLM_DATA_DIR has them."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("simplemma")

from gnnlm.config import ConfigError, apply_overrides  # noqa: E402
from gnnlm.data import KnowledgeGraph  # noqa: E402
from gnnlm.data.errors import DataFormatError  # noqa: E402
from gnnlm.data.schema import EntityText  # noqa: E402
from gnnlm.data.vocab import Vocabulary  # noqa: E402
from gnnlm.tasks.relation_classification import (  # noqa: E402
    RelationClassificationConfig,
    RelationClassificationTask,
)
from gnnlm.tasks.relation_classification.linking import WordNetLinker, link_counts  # noqa: E402
from gnnlm.tasks.relation_classification.markers import insert_markers  # noqa: E402
from gnnlm.tasks.relation_classification.reader import (  # noqa: E402
    LABEL_IDS,
    LABELS,
    example_counts,
    read_examples,
)
from gnnlm.tasks.relation_classification.scorer import (  # noqa: E402
    official_scores,
    paired_bootstrap_macro_f1,
)
from gnnlm.train import Trainer  # noqa: E402

DATA = Path(os.environ.get("GNNLM_DATA_DIR", "/nonexistent"))
SEMEVAL = DATA / "semeval2010-task8"
needs_semeval = pytest.mark.skipif(
    not (SEMEVAL / "TRAIN_FILE.TXT").is_file(), reason="needs $GNNLM_DATA_DIR/semeval2010-task8"
)
CONFIG = Path(__file__).parents[2] / "configs" / "tasks" / "semeval.yaml"

SAMPLE = (
    '1\t"The system has an arrayed <e1>configuration</e1> of antenna <e2>elements</e2>."\r\n'
    "Component-Whole(e2,e1)\r\n"
    "Comment: Not a collection: there is structure here, organisation.\r\n"
    "\r\n"
    '2\t"The <e1>child</e1> was carefully wrapped and bound into the <e2>cradle</e2>."\r\n'
    "Other\r\n"
    "Comment:\r\n"
    "\r\n"
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- reader ------------------------------------------------------------------------------------------
def test_reader_strips_tags_keeps_spans_and_counts_every_label(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(SAMPLE.encode())
    first, second = read_examples(path)
    assert first.sentence == "The system has an arrayed configuration of antenna elements."
    assert (first.e1_text, first.e2_text) == ("configuration", "elements")
    assert LABELS[first.label] == "Component-Whole(e2,e1)" and LABELS[second.label] == "Other"
    assert first.comment.startswith("Not a collection") and second.comment is None
    assert first.source == f"{path}:1" and second.source == f"{path}:5"
    counts = example_counts([first, second])
    assert counts["examples"] == 2 and counts["other"] == 1 and counts["with_comment"] == 1
    assert counts["labels"] == {"Other": 1, "Component-Whole(e2,e1)": 1}
    assert counts["relations"] == {"Component-Whole": 1, "Other": 1}


@pytest.mark.parametrize(
    "lines, line, problem",
    [
        (['1 "no tab <e1>a</e1> <e2>b</e2>"', "Other", "Comment:"], 1, "expected id<TAB>"),
        (['1\t"only <e1>a</e1> here"', "Other", "Comment:"], 1, "<e2>...</e2> missing"),
        (['1\t"<e1>a <e2>b</e2></e1>"', "Other", "Comment:"], 1, "repeated or nested"),
        (['1\t"empty <e1></e1> <e2>b</e2>"', "Other", "Comment:"], 1, "empty nominal"),
        (['1\t"<e1>a</e1> <e2>b</e2>"', "Cause-Effect(e3,e1)", "Comment:"], 2, "unknown relation"),
        (['1\t"<e1>a</e1> <e2>b</e2>"', "Other", "Note: x"], 3, "'Comment:' line"),
        (['1\t"<e1>a</e1> <e2>b</e2>"', "Other", "Comment:", "Other"], 4, "blank line"),
        (['7\t"<e1>a</e1> <e2>b</e2>"', "Other", "Comment:", "", '7\t"<e1>c</e1> <e2>d</e2>"',
          "Other", "Comment:"], 5, "id given twice \\(first at line 1\\)"),
    ],
)  # fmt: skip
def test_reader_errors_name_the_file_line_and_value(tmp_path, lines, line, problem):
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"bad.txt:{line}: .*{problem}"):
        read_examples(path)


@needs_semeval
def test_real_files_hold_8000_and_2717_sentences_with_the_published_label_counts():
    train = example_counts(read_examples(SEMEVAL / "TRAIN_FILE.TXT"))
    test = example_counts(read_examples(SEMEVAL / "TEST_FILE_FULL.TXT"))
    assert (train["examples"], test["examples"]) == (8000, 2717)
    assert (train["other"], test["other"]) == (1410, 454)
    assert len(train["labels"]) == len(test["labels"]) == 19
    assert test["relations"]["Cause-Effect"] == 328 and test["relations"]["Product-Producer"] == 231
    assert train["e2_before_e1"] == test["e2_before_e1"] == 0


# -- markers -----------------------------------------------------------------------------------------
def test_markers_wrap_both_nominals_and_the_tokenizer_finds_the_start_tokens():
    from gnnlm.lm import load_tokenizer

    sentence = "The child was bound into the cradle."
    marked = insert_markers(sentence, (4, 9), (29, 35))
    assert marked.text == "The $ child $ was bound into the # cradle # ."
    assert [marked.text[s] for s in marked.starts] == ["$", "#"]
    assert [marked.text[a:b] for a, b in marked.nominals] == ["child", "cradle"]
    assert [marked.text[a:b] for a, b in marked.spans] == ["$ child $", "# cradle #"]
    tokenizer = load_tokenizer("tiny-bert")  # MiniLM's word pieces: one token per marker
    tokens = tokenizer.tokenize(marked.text)
    assert tokens.count("$") == 2 and tokens.count("#") == 2
    brackets = insert_markers(sentence, (4, 9), (29, 35), ["[E1]", "[/E1]", "[E2]", "[/E2]"])
    assert brackets.text == "The [E1] child [/E1] was bound into the [E2] cradle [/E2] ."
    with pytest.raises(ValueError, match="overlap"):
        insert_markers(sentence, (4, 9), (6, 12))


# -- scorer ------------------------------------------------------------------------------------------
#: a hand-made test set; per line (gold, predicted). Worked out by hand, as the official scorer counts:
#:   Cause-Effect (CE): gold CE = #1 #2 #3 = 3; predicted CE (either direction) = #1 #2 #5 = 3;
#:     correct (relation and direction) = #1 = 1 (#2 is xDIRx, the wrong direction)
#:     -> P = 1/3, R = 1/3, F1 = 1/3
#:   Component-Whole (CW): gold CW = #4 #5 = 2; predicted CW = #4 #6 = 2; correct = #4 = 1
#:     -> P = 1/2, R = 1/2, F1 = 1/2
#:   Member-Collection: predicted once (#8) but never gold: not averaged (the scorer averages over the
#:     relations in the key)
#:   macro-F1 = (1/3 + 1/2) / 2 = 5/12; ignoring direction CE would be 2/3 (a different number)
#:   micro over CE and CW: correct 2, predicted 5, gold 5 -> 0.4
#:   accuracy (19-way, Other included) = #1 #4 #7 = 3/8
HAND_MADE = [
    ("Cause-Effect(e1,e2)", "Cause-Effect(e1,e2)"),  # 1 correct
    ("Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)"),  # 2 wrong direction
    ("Cause-Effect(e2,e1)", "Other"),  # 3 missed
    ("Component-Whole(e1,e2)", "Component-Whole(e1,e2)"),  # 4 correct
    ("Component-Whole(e2,e1)", "Cause-Effect(e1,e2)"),  # 5 wrong relation
    ("Other", "Component-Whole(e2,e1)"),  # 6 false positive
    ("Other", "Other"),  # 7 correct Other
    ("Other", "Member-Collection(e1,e2)"),  # 8 false positive of a relation absent from the key
]


def test_official_score_equals_the_hand_computed_confusion_matrix():
    gold = [LABEL_IDS[g] for g, _ in HAND_MADE]
    predicted = [LABEL_IDS[p] for _, p in HAND_MADE]
    scores = official_scores(gold, predicted)
    assert scores["macro_f1"] == pytest.approx(5 / 12)
    assert scores["accuracy"] == pytest.approx(3 / 8)
    assert scores["micro_f1"] == pytest.approx(0.4)
    ce, cw = scores["per_relation"]["Cause-Effect"], scores["per_relation"]["Component-Whole"]
    assert (ce["correct"], ce["predicted"], ce["gold"], ce["wrong_direction"]) == (1, 3, 3, 1)
    assert ce["precision"] == ce["recall"] == ce["f1"] == pytest.approx(1 / 3)
    assert (cw["correct"], cw["predicted"], cw["gold"]) == (1, 2, 2)
    assert cw["f1"] == pytest.approx(0.5)
    assert scores["per_relation"]["Member-Collection"]["predicted"] == 1
    perfect = official_scores(gold, gold)
    assert perfect["macro_f1"] == perfect["accuracy"] == 1.0


def test_paired_bootstrap_of_macro_f1_is_centred_on_the_observed_difference():
    rng = random.Random(0)
    gold = [rng.randrange(len(LABELS)) for _ in range(300)]
    good = [g if rng.random() < 0.8 else rng.randrange(len(LABELS)) for g in gold]
    bad = [g if rng.random() < 0.4 else rng.randrange(len(LABELS)) for g in gold]
    observed = official_scores(gold, good)["macro_f1"] - official_scores(gold, bad)["macro_f1"]
    diff = paired_bootstrap_macro_f1([gold], [good], [bad], rounds=400)
    assert diff["mean"] == pytest.approx(observed)
    assert 0 < diff["low"] < observed < diff["high"]
    same = paired_bootstrap_macro_f1([gold, gold], [good, good], [good, good], rounds=100)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0}


# -- linking -----------------------------------------------------------------------------------------
def test_linking_finds_inflected_cased_and_multi_word_nominals():
    names = ["dog", "mountain peak", "element", "bank", "bank", "child", None]
    degree = [3, 1, 2, 1, 9, 1, 0]  # the second "bank" has more edges: it wins
    linker = WordNetLinker(names, degree)
    found = {n: linker.link(n) for n in
             ["Dogs", "Mountain Peak", "antenna elements", "bank", "children", "kimchi", ""]}  # fmt: skip
    assert (found["Dogs"].entity, found["Dogs"].how) == (0, "lemma")
    assert (found["Mountain Peak"].entity, found["Mountain Peak"].how) == (1, "exact")
    assert (found["antenna elements"].entity, found["antenna elements"].how) == (2, "head_lemma")
    assert found["bank"].entity == 4
    assert found["children"].entity == 5
    assert found["kimchi"].entity is None and found[""].entity is None
    counts = link_counts(list(found.values()))
    assert counts["nominals"] == 7 and counts["linked"] == 5 and counts["lemma"] == 2


# -- a tiny synthetic task ---------------------------------------------------------------------------
NOUNS = [
    "dog",
    "cat",
    "box",
    "river",
    "tree",
    "stone",
    "house",
    "car",
    "bird",
    "lamp",
    "rope",
    "cup",
]
#: the relation is told by the words between the nominals (and their order)
TEMPLATES = [
    ("The <e1>{a}</e1> caused the <e2>{b}</e2>.", "Cause-Effect(e1,e2)"),
    ("The <e1>{a}</e1> was caused by the <e2>{b}</e2>.", "Cause-Effect(e2,e1)"),
    ("The <e1>{a}</e1> is inside the <e2>{b}</e2>.", "Content-Container(e1,e2)"),
    ("The <e1>{a}</e1> stood near the <e2>{b}</e2>.", "Other"),
]


def write_semeval(path: Path, n: int, seed: int, start: int = 1) -> None:
    rng = random.Random(seed)
    blocks = []
    for i in range(n):
        template, label = TEMPLATES[i % len(TEMPLATES)]
        a, b = rng.sample(NOUNS, 2)
        blocks.append(f'{start + i}\t"{template.format(a=a, b=b)}"\n{label}\nComment:\n\n')
    path.write_text("".join(blocks))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("semeval")
    write_semeval(folder / "TRAIN_FILE.TXT", 120, seed=0)
    write_semeval(folder / "TEST_FILE_FULL.TXT", 48, seed=1, start=8001)
    return {"dir": folder}


@pytest.fixture(scope="module")
def wordnet() -> KnowledgeGraph:
    """A tiny WordNet: the nouns (bar "cup", never linked) and a few synsets around them."""
    names = [n for n in NOUNS if n != "cup"] + ["animal", "object", "water"]
    ids = {n: i for i, n in enumerate(names)}
    edges = [("dog", 0, "animal"), ("cat", 0, "animal"), ("bird", 0, "animal"), ("box", 0, "object"),
             ("stone", 0, "object"), ("lamp", 0, "object"), ("rope", 0, "object"),
             ("river", 1, "water"), ("house", 0, "object"), ("car", 0, "object"),
             ("tree", 1, "object")]  # fmt: skip
    triples = torch.tensor([[ids[h], r, ids[t]] for h, r, t in edges])
    return KnowledgeGraph(
        Vocabulary([f"{i:08d}" for i in range(len(names))]), Vocabulary(["_hypernym", "_part"]),
        {"train": triples}, name="tiny-wordnet",
        entity_text=EntityText(names=names, descriptions=[f"a {n}" for n in names]),
    )  # fmt: skip


def tiny_config(files, **overrides) -> RelationClassificationConfig:
    values = {
        "model.lm": "tiny-bert",
        "model.node_channels": 16,
        "model.freeze_lm_layers": 0,
        "model.num_fused_layers": 1,
        "model.injection": [],
        "model.node_features": "learned",
        "data.data_dir": str(files["dir"]),
        "data.valid_size": 24,
        "data.max_length": 32,
        "training.batch_size": 8,
        "training.lr": 3e-3,
        "training.param_groups": {"lm": {"lr": 3e-3}},
        "training.checkpoint_frequency": 0,
        "evaluation.frequency": 0,
        "evaluation.batch_size": 16,
    }
    values.update(overrides)
    return apply_overrides(RelationClassificationConfig(), values)


def test_the_collator_points_at_the_start_markers_and_the_linked_synsets(files, wordnet):
    task = RelationClassificationTask(
        tiny_config(files, **{"model.injection": ["entity"]}), data=wordnet
    )
    task.setup()
    items = task.prepared.items["train"][:6]
    batch = task.collate(items)
    tokenizer = task.collate.tokenizer
    for i, item in enumerate(items):
        tokens = tokenizer.convert_ids_to_tokens(batch.inputs.input_ids[i].tolist())
        assert [tokens[int(p)] for p in batch.markers[i]] == ["$", "#"]
        for k, link in enumerate(item.links):
            node = int(batch.linked[i, k])
            if link.entity is None:  # only "cup" is not in the tiny WordNet
                assert node == -1 and "cup" in (item.source.e1_text, item.source.e2_text)
            else:
                assert int(batch.inputs.graph.n_id[node]) == link.entity
                # the marker token reads its synset (entity injection reaches the head's input)
                assert int(batch.inputs.token_node[i, int(batch.markers[i, k])]) == node
    assert batch.truncated == 0
    assert task.prepared.counts["splits"] == {"train": 96, "valid": 24, "test": 48}


def test_a_tiny_model_learns_the_synthetic_relations(files, wordnet, tmp_path):
    """Chance is 1/4 on the four balanced labels; the cue words make the task learnable."""
    config = tiny_config(files, **{"training.epochs": 8, "model.injection": ["entity"]})
    result = Trainer(config, run_dir=tmp_path / "run", data=wordnet, quiet=True).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]["accuracy"]
    assert metrics["test"]["macro_f1"] >= 0.85
    test = metrics["test"]
    # evaluation runs in length order; the per-sentence lists are back in file order
    assert test["gold"] == [x.label for x in read_examples(files["dir"] / "TEST_FILE_FULL.TXT")]
    assert test["correct"] == [int(p == g) for p, g in zip(test["predictions"], test["gold"])]
    assert metrics["test"]["linking"]["share"] < 1.0  # "cup" never links
    history = [row["loss"] for row in result.history if "loss" in row]
    assert history[-1] < 0.5 * history[0]


def test_the_config_round_trips_through_yaml(tmp_path):
    from gnnlm.tasks.loading import load_config

    config = load_config(CONFIG)
    assert isinstance(config, RelationClassificationConfig)
    assert list(config.variants) == ["lm", "entity", "graph"]
    config.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again.to_dict() == config.to_dict()
    with pytest.raises(ValueError, match="data.markers"):
        apply_overrides(RelationClassificationConfig(), {"data.markers": ["$", "$"]})


def test_a_missing_file_is_a_config_error_naming_the_key(files, tmp_path):
    config = tiny_config(files, **{"data.test_file": str(tmp_path / "none.txt")})
    with pytest.raises(ConfigError, match="data.test_file"):
        RelationClassificationTask(config, data=object()).validate()


def test_the_shipped_config_runs_every_arm_through_the_engine(files, wordnet, tmp_path):
    from gnnlm.tasks.loading import load_config
    from gnnlm.train.variants import run_variants

    sets = ["seeds=[0]", "model.lm=tiny-bert", "model.node_channels=16", "model.node_features=learned",
            f"data.data_dir={files['dir']}", "data.valid_size=24", "data.num_train=32",
            "data.max_length=32", "training.batch_size=8"]  # fmt: skip
    config = load_config(CONFIG, sets)
    comparison = run_variants(config, tmp_path / "re", data=wordnet, quiet=True)
    assert list(comparison.arms) == ["lm", "entity", "graph"]
    runs = {arm: a["runs"]["0"] for arm, a in comparison.arms.items()}
    for metrics in runs.values():
        assert metrics["steps"] == 4 and metrics["test"]["num_examples"] == 48
        assert 0.0 <= metrics["test"]["macro_f1"] <= 1.0
    assert runs["lm"]["test"]["gates"] == {}
    assert set(runs["entity"]["test"]["gates"]) == {"entity"}
    assert set(runs["graph"]["test"]["gates"]) == {"graph"}
    # every arm sees the same sentences in the same order
    assert runs["lm"]["test"]["gold"] == runs["graph"]["test"]["gold"]
