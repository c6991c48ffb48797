"""task: generative_qa: prompts per style, training through the engine, constrained generation."""

from __future__ import annotations

import json

import pytest
import torch

from gnnlm.config import ConfigError, apply_overrides
from gnnlm.tasks.generative_qa import GenerativeQAConfig, GenerativeQATask
from gnnlm.train import Trainer
from tests.tasks.helpers import set_up
from tests.tasks.test_metaqa import DIRECTORS, MOVIES, YEARS, movie_kb  # noqa: F401 (fixture)


def tiny_config(root, **overrides) -> GenerativeQAConfig:
    values = {
        "dataset": f"tsv:{root}",
        "dataset_kwargs": {
            "files": {"train": "kb.txt"},
            "entity_text": "names.tsv",
            "cache": False,
        },
        "model.lm": "tiny-gpt2",
        "model.node_channels": 16,
        "model.num_prompt_tokens": 2,
        "model.encoder": "rgcn",
        "model.encoder_kwargs": {},
        "data.root": str(root),
        "data.valid_fraction": 0.25,
        "data.max_nodes": 12,
        "data.max_length": 64,
        "data.triple_budget": 24,
        "data.max_answer_length": 6,
        "training.batch_size": 4,
        "evaluation.batch_size": 8,
    }
    values.update(overrides)
    return apply_overrides(GenerativeQAConfig(), values)


def load_task(config) -> GenerativeQATask:
    return set_up(GenerativeQATask, config)


def test_prompts_per_style_link_the_topic_and_hold_whole_triples(movie_kb):  # noqa: F811
    text = load_task(tiny_config(movie_kb, **{"model.style": "text"}))
    triples = load_task(tiny_config(movie_kb, **{"model.style": "triples"}))
    q = next(q for q in text.questions["test"] if q.question.text.startswith("who directed Kismet"))
    plain, verbal = text.example(q, "Gus Rand"), triples.example(q, "Gus Rand")
    assert plain.text == "question: who directed Kismet ? answer:" and plain.target == " Gus Rand"
    assert verbal.text.endswith(plain.text) and verbal.text.startswith("Kismet ")
    s, e, topic = verbal.mentions[0]
    assert verbal.text[s:e] == "Kismet" and topic == q.topic
    facts = verbal.text[: -len(plain.text)].strip()
    assert triples._count_tokens(facts) <= 24 and facts.endswith(".")
    assert "Kismet directed by Gus Rand." in facts  # the topic's own triples come first
    batch = triples.collate([verbal])
    assert batch.graph.num_nodes > 1 and int(batch.token_node.max()) == 0


def test_constrained_generation_only_emits_kb_names_and_hits_is_hand_computed(movie_kb):  # noqa: F811
    task = load_task(tiny_config(movie_kb, **{"model.style": "inject"}))
    model = task.build_model()
    names = {task.kg.entity_label(i) for i in range(task.kg.num_entities)}
    questions = task.questions["test"][:8]
    generations = task.generate_answers(model, questions)
    assert all(g.finished and g.names and set(g.names) <= names for g in generations)
    metrics = task.evaluate(model, "test")
    expected = [
        int(q.topic is not None and bool(set(g.names) & set(q.question.answers)))
        for q, g in zip(
            task.questions["test"], task.generate_answers(model, task.questions["test"])
        )
    ]
    assert metrics["correct"] == expected
    assert metrics["hits@1"] == pytest.approx(sum(expected) / len(expected))
    assert metrics["not_a_name"] == 0 and metrics["num_examples"] == 28


def test_subgraph_constraint_answers_from_the_topic_s_subgraph(movie_kb):  # noqa: F811
    task = load_task(tiny_config(movie_kb, **{"model.style": "text", "data.constrain": "subgraph"}))
    model = task.build_model()
    questions = task.questions["test"][:6]
    for q, g in zip(questions, task.generate_answers(model, questions)):
        allowed = {task.kg.entity_label(n) for n in task.sampler.node_set([q.topic]).tolist()}
        assert set(g.names) <= allowed - {q.question.topic}


@pytest.mark.parametrize("style", ["triples", "prompt"])
def test_an_engine_run_learns_to_answer(movie_kb, tmp_path, style):  # noqa: F811
    """Chance with the KB-name constraint is ~1/20; the tiny decoder learns the 1-hop facts it
    trains on (test repeats dev, 75% of which is trained on)."""
    config = tiny_config(movie_kb, **{
        "model.style": style, "training.epochs": 30, "training.lr": 3e-3,
        "evaluation.frequency": 0, "data.constrain": "subgraph",
    })  # fmt: skip
    torch.set_num_threads(1)
    Trainer(config, run_dir=tmp_path / "run", quiet=True).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    test = metrics["test"]
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert test["hits@1"] >= 0.3 and len(test["correct"]) == 28


def test_predict_links_a_text_with_entities(movie_kb):  # noqa: F811
    task = load_task(tiny_config(movie_kb, **{"model.style": "prompt"}))
    model = task.build_model()
    out = task.predict(model, [{"question": "who directed [Solaris]"},
                               {"text": "when was Vertigo released", "entities": ["Vertigo"]}])  # fmt: skip
    names = (
        set(MOVIES)
        | set(DIRECTORS)
        | set(YEARS)
        | {task.kg.entity_label(i) for i in range(task.kg.num_entities)}
    )
    assert [o["topic"] for o in out] == ["Solaris", "Vertigo"]
    assert all(o["names"] and set(o["names"]) <= names for o in out)
    with pytest.raises(ConfigError, match="unknown entity 'Nobody'"):
        task.predict(model, [{"text": "who is Nobody", "entities": ["Nobody"]}])


def test_bad_options_are_refused(movie_kb):  # noqa: F811
    with pytest.raises(ValueError, match="style"):
        tiny_config(movie_kb, **{"model.style": "graph"})
    with pytest.raises(ConfigError, match="freeze_lm"):
        GenerativeQATask(
            tiny_config(movie_kb, **{"model.style": "text", "model.freeze_lm": True})
        ).validate()
    with pytest.raises(ConfigError, match="data.pruning: question is not supported"):
        GenerativeQATask(tiny_config(movie_kb, **{"data.pruning": "question"})).validate()


# -- KG completion as generation ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def completion_kb(movie_kb, tmp_path_factory):  # noqa: F811
    """The movie KB with its last 6 triples held out as test queries."""
    root = tmp_path_factory.mktemp("completion")
    lines = (movie_kb / "kb.txt").read_text().splitlines()
    (root / "train.txt").write_text("\n".join(lines[:-6]) + "\n")
    (root / "test.txt").write_text("\n".join(lines[-6:]) + "\n")
    (root / "names.tsv").write_text((movie_kb / "names.tsv").read_text())
    return root


def completion_task(root, **overrides):
    from gnnlm.tasks.generative_qa.completion import TripleCompletionConfig, TripleCompletionTask

    values = {
        "dataset": f"tsv:{root}",
        "dataset_kwargs": {"files": {"train": "train.txt", "test": "test.txt"},
                           "entity_text": "names.tsv", "cache": False},
        "model.lm": "tiny-gpt2", "model.node_channels": 16, "model.num_prompt_tokens": 2,
        "model.encoder": "rgcn", "model.encoder_kwargs": {},
        "data.max_nodes": 12, "data.max_length": 64, "data.triple_budget": 32,
        "data.max_answer_length": 6, "training.batch_size": 8, "evaluation.batch_size": 8,
        "evaluation.frequency": 0,
    }  # fmt: skip
    values.update(overrides)
    task = TripleCompletionTask(apply_overrides(TripleCompletionConfig(), values))
    task.validate()
    task.setup()
    return task


def test_completion_context_never_holds_the_queried_triple(completion_kb):
    task = completion_task(completion_kb, **{"model.style": "triples"})
    kg = task.kg
    for h, r, t in task.triples["train"][:10]:
        ex = task.example((h, r, t), True)
        fact = f"{kg.entity_label(h)} {task.relation_text(r)} {kg.entity_label(t)}."
        context = ex.text[: ex.text.rindex(kg.entity_label(h) + " " + task.relation_text(r) + " :")]
        assert fact not in context and ex.target == " " + kg.entity_label(t)
        others = [x for x in task.triples["train"] if x[0] == h and x != (h, r, t)]
        if others:  # the head's other facts are there
            o = others[0]
            assert (
                f"{kg.entity_label(o[0])} {task.relation_text(o[1])} {kg.entity_label(o[2])}."
                in context
            )
        batch = task.collate([ex])
        edges = {(int(a), int(b)) for a, b in batch.graph.n_id[batch.graph.edge_index].t().tolist()}
        assert (h, t) not in edges and (t, h) not in edges


def test_completion_generates_kb_names_and_counts_any_known_tail(completion_kb):
    task = completion_task(completion_kb, **{"model.style": "prompt"})
    model = task.build_model()
    metrics = task.evaluate(model, "test")
    assert metrics["num_examples"] == 6 and metrics["not_a_name"] == 0
    assert metrics["hits@1"] == pytest.approx(sum(metrics["correct"]) / 6)
    out = task.predict(model, [{"head": "Kismet", "relation": "directed_by"}])
    names = {task.kg.entity_label(i) for i in range(task.kg.num_entities)}
    assert out[0]["names"] and set(out[0]["names"]) <= names


def test_a_completion_run_lowers_the_loss(completion_kb, tmp_path):
    task = completion_task(completion_kb, **{"model.style": "triples", "training.epochs": 15,
                                             "training.lr": 3e-3})  # fmt: skip
    Trainer(task, run_dir=tmp_path / "run", quiet=True).fit()
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["correct"]) == 6
