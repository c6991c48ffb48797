"""Multiple-choice QA over a KG (task: multiple_choice): reader, grounding, bridge subgraphs, the
multiple-choice head, an engine run on a tiny set, and the real CommonsenseQA / ConceptNet files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("simplemma")

from gnnlm.config import apply_overrides  # noqa: E402
from gnnlm.data.errors import DataFormatError  # noqa: E402
from gnnlm.tasks.multiple_choice import MultipleChoiceConfig, MultipleChoiceTask  # noqa: E402
from gnnlm.tasks.multiple_choice.conceptnet import load_conceptnet  # noqa: E402
from gnnlm.tasks.multiple_choice.extraction import (  # noqa: E402
    ANSWER,
    OTHER,
    QUESTION,
    BridgeExtractor,
)
from gnnlm.tasks.multiple_choice.grounding import ConceptMatcher  # noqa: E402
from gnnlm.tasks.multiple_choice.model import choice_scores  # noqa: E402
from gnnlm.tasks.multiple_choice.reader import question_counts, read_questions  # noqa: E402
from gnnlm.train import Trainer  # noqa: E402

DATA = Path(os.environ.get("GNNLM_DATA_DIR", "/nonexistent"))
needs_real_data = pytest.mark.skipif(
    not (DATA / "commonsenseqa" / "train_data.jsonl").is_file()
    or not (DATA / "conceptnet" / "CN-100K" / "train.txt").is_file(),
    reason="needs $GNNLM_DATA_DIR with commonsenseqa and conceptnet",
)
CONFIG = Path(__file__).parents[2] / "configs" / "tasks" / "commonsenseqa.yaml"

#: a hand-made ConceptNet (relation, head, tail): "dog" reaches "park" only through "fetch ball";
#: "dog" is a hub with many neighbours that lead nowhere, so a budget has to choose.
CN_100K = """\
CapableOf\tdog\tfetch ball
AtLocation\tfetch ball\tpark
CapableOf\tdog\trun
AtLocation\tice cream\tfreezer
IsA\tice cream\tdessert
HasProperty\tice\tcold
IsA\tcream\tdairy product
AtLocation\tcat\thouse
CapableOf\tcat\tsleep
AtLocation\tfreezer\tkitchen
AtLocation\tbook\tlibrary
UsedFor\tlibrary\tread
AtLocation\tmoney\tbank
UsedFor\tbank\tstore money
UsedFor\toven\tbake
AtLocation\toven\tkitchen
AtLocation\tbed\tbedroom
UsedFor\tbed\tsleep
"""
CN_82K = "CapableOf\tdog\tfetch ball\n" + "".join(
    f"RelatedTo\tdog\tdistraction {i}\n" for i in range(12)
)


@pytest.fixture(scope="module")
def conceptnet_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("conceptnet")
    for subset, text in (("CN-100K", CN_100K), ("CN-82K", CN_82K)):
        (folder / subset).mkdir()
        (folder / subset / "train.txt").write_text(text)
    return folder


@pytest.fixture(scope="module")
def kg(conceptnet_dir):
    return load_conceptnet(conceptnet_dir)


def concepts(matcher: ConceptMatcher, text: str) -> list[str]:
    return [matcher.concepts[m.concept] for m in matcher.ground(text)]


# -- ConceptNet --------------------------------------------------------------------------------------
def test_conceptnet_union_reads_relation_first_and_keeps_a_repeated_triple_once(kg):
    names = kg.entity_text.names
    head, relation, tail = kg.train[0].tolist()
    triple = (names[head], kg.relations.name(relation), names[tail])
    assert triple == ("dog", "CapableOf", "fetch ball")
    assert kg.train.size(0) == 18 + 12  # "dog CapableOf fetch ball" is in both subsets: kept once
    assert sum(kg.extra["dropped_triples"].values()) == 1


# -- grounding ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matcher(kg) -> ConceptMatcher:
    return ConceptMatcher(kg.entity_text.names + ["the", "what", "is", "a lot"])


def test_grounding_lemmatises_inflected_forms(matcher):
    assert concepts(matcher, "The dogs were running") == ["dog", "run"]
    assert concepts(matcher, "Cats sleeping in beds") == ["cat", "sleep", "bed"]


def test_grounding_prefers_the_longest_multi_word_concept(matcher):
    assert concepts(matcher, "Where is ice cream kept?") == ["ice cream"]  # not "ice", "cream"
    assert concepts(matcher, "ice and cream") == ["ice", "cream"]
    text = "I fetched the ball; dogs fetch balls"  # "fetch the ball" is no concept
    assert concepts(matcher, text) == ["dog", "fetch ball"]
    match = matcher.ground(text)[-1]
    assert text[match.start : match.end] == "fetch balls"


def test_stop_words_are_never_grounded_alone(matcher):
    # "the", "what", "is" and "a lot"... are concepts of this vocabulary, yet never matched
    assert concepts(matcher, "What is the thing?") == []
    # "a lot" is kept: "lot" is no stop word
    assert matcher.num_indexed == len(matcher.concepts) - 3


def test_a_concept_longer_than_max_ngram_is_not_matched(kg):
    text = "store money in a bank"
    assert concepts(ConceptMatcher(kg.entity_text.names), text) == ["store money", "bank"]
    assert concepts(ConceptMatcher(kg.entity_text.names, max_ngram=1), text) == ["money", "bank"]


# -- bridge subgraphs --------------------------------------------------------------------------------
def test_the_bridge_subgraph_holds_the_path_a_question_needs_within_the_budget(kg):
    names = {n: i for i, n in enumerate(kg.entity_text.names)}
    dog, mid, park = names["dog"], names["fetch ball"], names["park"]
    relevance = torch.zeros(kg.num_entities)
    for budget in (3, 5, 40):
        data = BridgeExtractor(kg, max_nodes=budget, max_hops=2).extract([dog], [park], relevance)
        nodes = data.n_id.tolist()
        assert len(nodes) <= budget
        assert nodes[:3] == [park, dog, mid]  # answer, question, then the bridge node
        assert data.node_type.tolist()[:3] == [ANSWER, QUESTION, OTHER]
        local = {n: k for k, n in enumerate(nodes)}
        edges = set(map(tuple, data.edge_index.t().tolist()))
        assert (local[dog], local[mid]) in edges and (local[mid], local[park]) in edges
        # the hub's twelve "distraction" neighbours lie on no dog-park path: never taken
        assert not any(kg.entity_text.names[n].startswith("distraction") for n in nodes)


def test_relevance_orders_bridge_nodes_and_trims_question_concepts_to_the_budget(kg):
    names = {n: i for i, n in enumerate(kg.entity_text.names)}
    # question {ice cream, oven, dog}, answer {kitchen}: "oven" is next to "kitchen", "ice cream"
    # reaches it through the bridge "freezer", "dog" not at all. A budget of 3 keeps the answer and the
    # two question concepts ranked first by relevance ("oven", then the first listed of the ties).
    relevance = torch.zeros(kg.num_entities)
    relevance[names["oven"]] = 0.9
    question = [names["ice cream"], names["oven"], names["dog"]]
    data = BridgeExtractor(kg, max_nodes=3, max_hops=2).extract(
        question, [names["kitchen"]], relevance
    )
    assert data.n_id.tolist() == [names["kitchen"], names["oven"], names["ice cream"]]
    assert data.relevance[1] == pytest.approx(0.9)
    wide = BridgeExtractor(kg, max_nodes=10, max_hops=2).extract(question, [names["kitchen"]])
    assert names["freezer"] in wide.n_id.tolist()[wide.num_seeds :]


# -- the multiple-choice head ------------------------------------------------------------------------
def test_choice_scores_pad_short_questions_with_minus_infinity():
    scores = choice_scores(torch.arange(5.0), torch.tensor([3, 2]))
    assert scores.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, float("-inf")]]


# -- reader ------------------------------------------------------------------------------------------
def question_line(k: int, answer: str = "A", **question) -> str:
    record = {
        "id": f"q{k}",
        "answerKey": answer,
        "question": {
            "stem": f"Question {k}?",
            "choices": [{"label": "A", "text": "park"}, {"label": "B", "text": "bank"}],
            **question,
        },
    }
    return json.dumps(record) + "\n"


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("{not json\n", "invalid JSON"),
        (question_line(9, answer="Z"), "answerKey must be one of"),
        (question_line(9, choices=[{"label": "A", "text": "x"}]), "at least 2 choices"),
        (question_line(9, stem="  "), "non-empty string"),
        (question_line(9, choices=[{"label": "A", "text": "x"}, {"label": "A", "text": "y"}]),
         "repeated"),
    ],
)  # fmt: skip
def test_reader_errors_name_the_file_line_and_value(tmp_path, bad, problem):
    path = tmp_path / "q.jsonl"
    path.write_text(question_line(0) + "\n" + bad)
    with pytest.raises(DataFormatError, match=problem) as err:
        read_questions(path)
    assert str(err.value).startswith(f"{path}:3: ")


def test_reader_counts_every_question_and_reads_files_without_answers(tmp_path):
    path = tmp_path / "q.jsonl"
    three = question_line(2).replace(
        '"text": "bank"}', '"text": "bank"}, {"label": "C", "text": "x"}'
    )
    path.write_text(question_line(0) + question_line(1, question_concept="dog") + "\n" + three)
    questions = read_questions(path)
    assert question_counts(questions) == {
        "questions": 3, "choices_per_question": {"2": 2, "3": 1}, "with_answer": 3,
        "with_question_concept": 1, "repeated_ids": 0,
    }  # fmt: skip
    assert questions[2].source == f"{path}:4" and questions[2].choices == ("park", "bank", "x")
    no_answers = tmp_path / "test.jsonl"
    no_answers.write_text(question_line(0).replace('"answerKey": "A", ', ""))
    with pytest.raises(DataFormatError, match="answerKey"):
        read_questions(no_answers)
    assert read_questions(no_answers, answers=False)[0].answer is None


# -- the task ----------------------------------------------------------------------------------------
#: (question, answer, distractors): each answer is linked to a concept of its question in the graph
TEMPLATES = [
    ("Where does a dog fetch a ball?", "park", ["bank", "library"]),
    ("Where is ice cream kept cold?", "freezer", ["bedroom", "library"]),
    ("Where do you store money?", "bank", ["freezer", "park"]),
    ("Where would you read a book?", "library", ["kitchen", "bank"]),
    ("What do you do in a bed?", "sleep", ["bake", "run"]),
]


@pytest.fixture(scope="module")
def question_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("questions")
    rng = random.Random(0)
    files = {}
    for split, n in (("train", 14), ("dev", 5)):
        lines = []
        for k in range(n):
            stem, answer, others = TEMPLATES[k % len(TEMPLATES)]
            texts = [answer, *others]
            rng.shuffle(texts)
            labels = "ABC"
            record = {
                "id": f"{split}-{k}", "answerKey": labels[texts.index(answer)],
                "question": {"stem": stem, "choices": [
                    {"label": lab, "text": t} for lab, t in zip(labels, texts)]},
            }  # fmt: skip
            lines.append(json.dumps(record) + "\n")
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(lines))
    return files


def tiny_config(question_files, conceptnet_dir, **overrides) -> MultipleChoiceConfig:
    values = {
        "model.lm": "tiny-bert",
        "model.node_channels": 16,
        "model.freeze_lm_layers": 1,
        "model.injection": ["graph"],
        "data.train_file": str(question_files["train"]),
        "data.dev_file": str(question_files["dev"]),
        "data.conceptnet_dir": str(conceptnet_dir),
        "data.in_house_test": 4,
        "data.max_nodes": 6,
        "data.max_length": 32,
        "training.batch_size": 4,
        "evaluation.batch_size": 3,
        "evaluation.frequency": 0,
    }
    values.update(overrides)
    return apply_overrides(MultipleChoiceConfig(), values)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """Text encodings (node features, relevance) cached in a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GNNLM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def ready(question_files, conceptnet_dir):
    task = MultipleChoiceTask(tiny_config(question_files, conceptnet_dir))
    task.validate()
    task.setup()
    return task


def test_splits_hold_out_the_last_training_questions_and_count_coverage(ready):
    assert ready.qa.counts["splits"] == {"train": 10, "valid": 5, "test": 4}
    test_ids = [g.question.id for g in ready.qa.questions["test"]]
    assert test_ids == ["train-10", "train-11", "train-12", "train-13"]
    assert ready.qa.counts["coverage"]["valid"]["questions_with_concept"] == 1.0
    assert ready.qa.counts["coverage"]["valid"]["choices_with_concept"] == 1.0


def test_pairs_point_mention_tokens_at_their_nodes_and_mark_node_types(ready):
    pairs = ready.qa.pairs(
        "train", 0
    )  # "Where does a dog fetch a ball?" with park / bank / library
    park = next(p for p in pairs if p.choice == "park")
    names = ready.qa.kg.entity_text.names
    assert [names[n] for n in park.graph.n_id.tolist()[:3]] == ["park", "dog", "fetch ball"]
    batch = ready.collate([(pairs, 0)])
    tokens = ready.collate.tokenizer.convert_ids_to_tokens(batch.pairs.input_ids[0])
    linked = {tokens[t] for t in (batch.pairs.token_node[0] >= 0).nonzero().flatten().tolist()}
    assert "dog" in linked and "park" in linked
    assert batch.num_choices.tolist() == [3]
    assert batch.pairs.input_ids.size(0) == 3


def test_the_multiple_choice_head_equals_a_loop_over_single_questions(ready):
    torch.manual_seed(0)
    model = ready.build_model().eval()
    items = [
        (ready.qa.pairs("train", i), ready.qa.questions["train"][i].question.answer)
        for i in range(4)
    ]
    with torch.no_grad():
        scores, loss = model(ready.collate(items))
        single = [model(ready.collate([item])) for item in items]
    assert torch.allclose(scores, torch.cat([s for s, _ in single]), atol=1e-5)
    assert loss == pytest.approx(float(torch.stack([lo for _, lo in single]).mean()), abs=1e-5)
    expected = torch.nn.functional.cross_entropy(scores, torch.tensor([it[1] for it in items]))
    assert loss == pytest.approx(float(expected), abs=1e-6)


def test_roles_combine_node_type_and_relevance_bins(ready):
    torch.manual_seed(0)
    model = ready.build_model()
    batch = ready.collate([(ready.qa.pairs("train", 0), 0)])
    graph = batch.pairs.graph
    graph.relevance = torch.linspace(-0.5, 0.99, graph.num_nodes)
    roles = model.fused.node_roles(batch.pairs)
    bins = ready.config.model.relevance_bins
    assert model.fused.role_embedding.num_embeddings == 3 * bins
    expected = graph.node_type * bins + (graph.relevance * bins).floor().long().clamp(0, bins - 1)
    assert torch.equal(roles, expected)


def test_predict_reads_both_record_forms_and_survives_questions_with_no_concept(ready):
    torch.manual_seed(0)
    model = ready.build_model()
    records = [
        {"question": "Where does a dog fetch a ball?", "choices": ["park", "bank", "oven"]},
        {"question": {"stem": "Why?", "choices": [{"label": "X", "text": "zzz"},
                                                  {"label": "Y", "text": "qqq"}]}},
    ]  # fmt: skip
    probabilities = ready.predict(model, records)
    assert [len(p) for p in probabilities] == [3, 2]
    for p in probabilities:
        assert sum(p) == pytest.approx(1.0) and all(x == x for x in p)  # no NaN from empty graphs
    assert ready.qa.make_pairs(ready.qa.ground(read_back(records[1])))[0].graph.num_nodes == 0
    with pytest.raises(DataFormatError, match="<input>:1: .*at least 2 choices"):
        ready.predict(model, [{"question": "Why?", "choices": ["only one"]}])


def read_back(record):
    from gnnlm.tasks.multiple_choice.reader import parse_question

    return parse_question(json.dumps(record), Path("<input>"), 1, answers=False)


def test_an_engine_run_writes_accuracy_for_dev_and_in_house_test(
    question_files, conceptnet_dir, tmp_path
):
    config = tiny_config(question_files, conceptnet_dir, **{"training.epochs": 2})
    result = Trainer(config, run_dir=tmp_path / "run", quiet=True).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result.task.num_train_examples() == 10
    for split, n in (("valid", 5), ("test", 4)):
        assert metrics[split]["num_examples"] == n
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
        assert len(metrics[split]["correct"]) == n
        assert metrics[split]["coverage"]["questions_with_concept"] == 1.0
        assert metrics[split]["subgraphs"]["with_bridge"] > 0
        # every hand-made answer is one or two edges from its question's concepts
        assert metrics[split]["subgraphs"]["answer_linked"] == 1.0
    assert metrics["steps"] == 6  # 10 questions in batches of 4, twice
    assert metrics["splits"] == {"train": 10, "valid": 5, "test": 4}


def test_the_shipped_config_runs_every_arm_through_gnnlm_train(
    question_files, conceptnet_dir, tmp_path, capsys
):
    from gnnlm.cli import main

    out = tmp_path / "csqa"
    tiny = tiny_config(question_files, conceptnet_dir)
    sets = ["seeds=[0]", "model.lm=tiny-bert", "model.node_channels=16", "data.in_house_test=4",
            "data.num_train=8", "data.max_length=32", "training.batch_size=4",
            f"data.train_file={tiny.data.train_file}", f"data.dev_file={tiny.data.dev_file}",
            f"data.conceptnet_dir={tiny.data.conceptnet_dir}"]  # fmt: skip
    args = [x for s in sets for x in ("--set", s)]
    code = main(["train", str(CONFIG), *args, "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["arms"]) == ["lm", "late", "inject", "both"]
    runs = {arm: json.loads((out / "runs" / arm / "seed-0" / "metrics.json").read_text())
            for arm in comparison["arms"]}  # fmt: skip
    for metrics in runs.values():
        assert metrics["steps"] == 2 and metrics["test"]["num_examples"] == 4
    assert runs["lm"]["test"]["gates"] == {}  # LM-only: no injection
    assert runs["late"]["test"]["gates"]["graph"] == [0.0, 0.0]  # late fusion: injection held at 0
    assert runs["both"]["test"]["gates"]["graph"] != [0.0, 0.0]


def test_runs_reading_the_same_data_share_it_and_other_data_is_prepared_anew(
    question_files, conceptnet_dir
):
    def task(**overrides):
        t = MultipleChoiceTask(tiny_config(question_files, conceptnet_dir, **overrides))
        t.setup()
        return t

    first = task()
    assert task(**{"model.injection": [], "seed": 3}).qa is first.qa  # another arm and seed
    assert task(**{"data.max_nodes": 5}).qa is not first.qa


def test_a_missing_file_is_a_config_error_naming_the_key(question_files, conceptnet_dir, tmp_path):
    from gnnlm.config import ConfigError

    config = tiny_config(question_files, conceptnet_dir, **{"data.dev_file": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="data.dev_file"):
        MultipleChoiceTask(config).validate()


# -- the real files ----------------------------------------------------------------------------------
@needs_real_data
def test_real_commonsenseqa_counts_and_grounding():
    files = DATA / "commonsenseqa"
    assert question_counts(read_questions(files / "train_data.jsonl"))["questions"] == 9741
    dev = read_questions(files / "dev_data.jsonl")
    assert question_counts(dev) == {
        "questions": 1221, "choices_per_question": {"5": 1221}, "with_answer": 1221,
        "with_question_concept": 1221, "repeated_ids": 0,
    }  # fmt: skip
    kg = load_conceptnet(DATA / "conceptnet")
    matcher = ConceptMatcher(kg.entity_text.names)
    # dev question 0: "A revolving door is convenient for two direction travel, but it also serves
    # as a security measure at a what?"
    found = concepts(matcher, dev[0].stem)
    assert "revolve door" in found and "security" in found and "what" not in found
    assert concepts(matcher, "department store") == ["department store"]
    grounded = sum(bool(matcher.ground(q.stem)) for q in dev[:200])
    assert grounded >= 195


# -- the no-parameter rules ------------------------------------------------------------------------
def test_the_rules_score_connectivity_and_pick_uniformly_among_the_top(kg, ready):
    from gnnlm.tasks.multiple_choice.rule import (
        expected_correct,
        links_score,
        path_score,
        rule_baselines,
    )

    names = {n: i for i, n in enumerate(kg.entity_text.names)}
    extractor = BridgeExtractor(kg, max_nodes=40, max_hops=2)
    joined = extractor.extract([names["dog"]], [names["park"]])  # dog - fetch ball - park
    assert (path_score(joined), links_score(joined)) == (1.0, 1.0)
    alone = extractor.extract([names["dog"]], [])  # no choice concept: nothing joined
    assert (path_score(alone), links_score(alone)) == (0.0, 0.0)
    assert expected_correct([1, 0, 1, 0, 0], 2) == 0.5
    assert expected_correct([1, 0, 1, 0, 0], 1) == 0.0
    assert expected_correct([0, 0, 0, 0, 0], 3) == 0.2  # no signal: chance
    rules = rule_baselines(ready, "test")
    for rule, score in (("path", path_score), ("links", links_score)):
        expected = rules[rule]["expected"]
        assert len(expected) == len(ready.qa.questions["test"])
        for i, q in enumerate(ready.qa.questions["test"]):
            scores = [score(p.graph) for p in ready.qa.pairs("test", i)]
            assert expected[i] == expected_correct(scores, q.question.answer)
        assert rules[rule]["accuracy"] == pytest.approx(sum(expected) / len(expected))
