"""Few-shot relation classification (task: fewrel): the FewRel reader, entity markers, N-way K-shot
episodes, the prototypical loss, Wikidata linking, a tiny-bert protonet that learns, and engine runs of
every arm on a synthetic FewRel-format file; the real val_wiki.json when $GNNLM_DATA_DIR has it."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

from gnnlm.config import ConfigError, apply_overrides
from gnnlm.data import KnowledgeGraph
from gnnlm.data.errors import DataFormatError
from gnnlm.data.vocab import Vocabulary
from gnnlm.tasks.fewrel import FewRelConfig, FewRelTask
from gnnlm.tasks.fewrel.episodes import fixed_episodes, group_by_relation, sample_episode
from gnnlm.tasks.fewrel.linking import link_counts, link_instances, wikidata_index
from gnnlm.tasks.fewrel.markers import FewRelCollator, mark
from gnnlm.tasks.fewrel.model import (
    episode_logits,
    leave_one_out_logits,
    prototypes,
    prototypical_logits,
)
from gnnlm.tasks.fewrel.reader import read_fewrel
from gnnlm.tasks.fewrel.task import split_relations
from gnnlm.train import Trainer
from gnnlm.train.variants import run_variants

DATA = Path(os.environ.get("GNNLM_DATA_DIR", "/nonexistent"))
needs_real_data = pytest.mark.skipif(
    not (DATA / "fewrel" / "val_wiki.json").is_file(), reason="needs $GNNLM_DATA_DIR/fewrel"
)
CONFIG = Path(__file__).parents[2] / "configs" / "tasks" / "fewrel.yaml"

#: synthetic relations: each is signalled by its verb between head and tail, amid random filler words
VERBS = ["founded", "married", "crossed", "painted", "joined", "orbits", "defeated", "taught"]
FILLER = "the a of in on at during after before city river team book song red old new big".split()
NAMES = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike oscar".split()
)


def synthetic_fewrel(per_relation: int = 24, seed: int = 0) -> dict:
    """``{P0: [...], ..., P7: [...]}``: ``<2 filler words> HEAD <verb> TAIL <0-3 filler words>``;
    entity ``Q<k>`` is name ``k`` (so heads and tails carry Wikidata ids that the test KG partly
    knows). The head starts at a fixed position: a random LM's states are dominated by their position
    embeddings, which would otherwise drown the verb at first."""
    rng = random.Random(seed)
    record = {}
    for r, verb in enumerate(VERBS):
        items = []
        for _ in range(per_relation):
            h, t = rng.sample(range(len(NAMES)), 2)
            before = rng.choices(FILLER, k=2)
            after = rng.choices(FILLER, k=rng.randint(0, 3))
            tokens = [*before, NAMES[h], verb, NAMES[t], *after]
            i = len(before)
            items.append(
                {
                    "tokens": tokens,
                    "h": [NAMES[h], f"Q{h}", [[i]]],
                    "t": [NAMES[t], f"Q{t}", [[i + 2]]],
                }
            )
        record[f"P{r}"] = items
    return record


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fewrel")
    fewrel = folder / "fewrel.json"
    fewrel.write_text(json.dumps(synthetic_fewrel()))
    mapping = folder / "entity2wikidata.json"
    # KG entities /m/0 .. /m/5 are Wikidata Q0 .. Q5; /m/6 has no Wikidata id in the mapping
    mapping.write_text(
        json.dumps({f"/m/{k}": {"wikidata_id": f"Q{k}", "label": NAMES[k]} for k in range(6)})
    )
    return {"fewrel": fewrel, "mapping": mapping}


@pytest.fixture(scope="module")
def kg() -> KnowledgeGraph:
    triples = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 0, 3], [3, 1, 4], [4, 0, 5], [5, 1, 6]])
    return KnowledgeGraph(
        Vocabulary([f"/m/{k}" for k in range(7)]), Vocabulary(["r0", "r1"]), {"train": triples}
    )


def tiny_config(files: dict[str, Path], **overrides) -> FewRelConfig:
    values = {
        "model.lm": "tiny-bert", "model.freeze_lm_layers": 0, "model.node_channels": 16,
        "model.temperature": 16.0,  # a random LM's marker states: a softmax out of saturation
        "data.path": str(files["fewrel"]), "data.kg_mapping": str(files["mapping"]),
        "data.train_relations": ["P0", "P1", "P2", "P3", "P4"],
        "data.test_relations": ["P5", "P6", "P7"], "data.max_length": 32,
        "training.epochs": 1, "training.batch_size": 15, "training.lr": 1e-3,
        "training.checkpoint_frequency": 0, "training.param_groups": {"lm": {"lr": 3e-3}},
        "evaluation.settings": [[3, 1], [3, 2]], "evaluation.queries": 2,
        "evaluation.episodes": 40, "evaluation.batch_size": 16,
    }  # fmt: skip
    return apply_overrides(FewRelConfig(), {**values, **overrides})


# -- reader ----------------------------------------------------------------------------------------
def test_reader_counts_relations_instances_and_extra_occurrences(tmp_path):
    record = synthetic_fewrel(per_relation=5)
    record["P0"][0]["h"][2].append([0])  # a second occurrence of the head: listed, not marked
    path = tmp_path / "f.json"
    path.write_text(json.dumps(record))
    data = read_fewrel(path)
    assert data.counts["relations"] == 8 and data.counts["instances"] == 40
    assert data.counts["per_relation"] == {f"P{r}": 5 for r in range(8)}
    assert data.counts["extra_occurrences"] == 1
    first = data.relations["P0"][0]
    assert (first.head.start, first.head.end, first.head.occurrences) == (
        record["P0"][0]["h"][2][0][0], record["P0"][0]["h"][2][0][0] + 1, 2,
    )  # fmt: skip
    assert first.relation == "P0" and first.index == 0


@pytest.mark.parametrize(
    ("edit", "problem", "value"),
    [
        (lambda x: x.pop("tokens"), "tokens must be a non-empty list", ""),
        (lambda x: x["h"][2][0].__setitem__(0, 99), "positions outside the sentence", "[99]"),
        (lambda x: x["t"].__setitem__(2, [[1, 3]]), "consecutive increasing", "[1, 3]"),
        (lambda x: x["t"].__setitem__(2, x["h"][2]), "overlap", ""),
        (lambda x: x.__setitem__("h", ["x", "Q1"]), "h must be [name, id", "['x', 'Q1']"),
        (lambda x: x["h"].__setitem__(1, 17), "h id must be a string or null", "17"),
    ],
)
def test_malformed_entries_name_file_relation_instance_and_value(tmp_path, edit, problem, value):
    record = synthetic_fewrel(per_relation=4)
    edit(record["P3"][2])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    with pytest.raises(DataFormatError) as err:
        read_fewrel(path)
    message = str(err.value)
    assert message.startswith(f"{path}: relation P3, instance 2: ")
    assert problem in message and value in message


def test_invalid_json_and_wrong_top_level_are_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"P1": [\n{"tokens": }')
    with pytest.raises(DataFormatError, match=r"bad\.json:2: invalid JSON"):
        read_fewrel(bad)
    bad.write_text('{"P1": []}')
    with pytest.raises(DataFormatError, match="relation P1: expected a non-empty list"):
        read_fewrel(bad)


@needs_real_data
def test_real_val_wiki_has_16_relations_of_700_and_the_documented_split():
    data = read_fewrel(DATA / "fewrel" / "val_wiki.json")
    assert data.counts["relations"] == 16 and data.counts["instances"] == 11200
    assert set(data.counts["per_relation"].values()) == {700}
    train, test = split_relations(list(data.relations), 10, 0)
    from gnnlm.tasks.loading import load_config

    config = load_config(CONFIG)
    assert train == config.data.train_relations and test == config.data.test_relations


# -- markers ---------------------------------------------------------------------------------------
def test_markers_wrap_head_and_tail_and_point_at_their_tokens(kg):
    from gnnlm.data.subgraph import SubgraphSampler
    from gnnlm.lm import load_tokenizer

    data = {"tokens": ["Yesterday", "Ann", "Lee", "married", "Bob", "."],
            "h": ["bob", "Q1", [[4]]], "t": ["ann lee", "Q2", [[1, 2]]]}  # fmt: skip
    from gnnlm.tasks.fewrel.reader import parse_instance

    instance = parse_instance(data, "P26", 0, Path("x.json"))
    marked = mark(instance)
    assert marked.text == "Yesterday # Ann Lee # married @ Bob @ ."
    assert marked.text[slice(*marked.head_span)] == "@ Bob @"
    assert marked.text[slice(*marked.tail_span)] == "# Ann Lee #"
    tokenizer = load_tokenizer("tiny-bert")
    sampler = SubgraphSampler(kg.homogeneous(add_inverse=True), num_hops=1, max_nodes=4)
    collate = FewRelCollator(tokenizer, sampler, max_length=32)
    batch = collate([instance], [(1, None)])
    ids = batch.inputs.input_ids[0]
    assert tokenizer.convert_ids_to_tokens([int(ids[batch.head_position[0]])]) == ["@"]
    assert tokenizer.convert_ids_to_tokens([int(ids[batch.tail_position[0]])]) == ["#"]
    # "# ann lee #" comes first: [CLS] yesterday # ... so the tail marker is token 2
    assert int(batch.tail_position[0]) == 2
    assert int(batch.head_position[0]) > int(batch.tail_position[0])
    # the linked head's whole marked span (markers included) points at its node; the tail is unlinked
    linked = (batch.inputs.token_node[0] >= 0).nonzero().squeeze(-1).tolist()
    head = int(batch.head_position[0])
    assert linked == [head, head + 1, head + 2]
    assert not bool(batch.truncated[0])
    short = FewRelCollator(tokenizer, sampler, max_length=6)([instance], [(None, None)])
    assert bool(short.truncated[0]) and int(short.head_position[0]) == 0


# -- episodes --------------------------------------------------------------------------------------
def test_episodes_are_disjoint_n_way_and_reproducible_by_seed():
    relations = [f"P{k % 7}" for k in range(70)]  # 7 relations x 10 instances
    groups = group_by_relation(relations)
    episode = sample_episode(groups, torch.Generator().manual_seed(3), ways=5, shots=2, queries=3)
    assert len(set(episode.relations)) == 5
    support, query = episode.support.tolist(), episode.query.tolist()
    assert len(support) == 10 and len(query) == 15
    assert not set(support) & set(query) and len(set(support + query)) == 25
    for indices, labels in ((support, episode.support_labels), (query, episode.query_labels)):
        assert [episode.relations[int(k)] for k in labels] == [relations[i] for i in indices]
    again = sample_episode(groups, torch.Generator().manual_seed(3), ways=5, shots=2, queries=3)
    assert again.support.tolist() == support and again.query.tolist() == query
    a = fixed_episodes(groups, ways=5, shots=1, queries=2, count=20, seed=7)
    b = fixed_episodes(groups, ways=5, shots=1, queries=2, count=20, seed=7)
    c = fixed_episodes(groups, ways=5, shots=1, queries=2, count=20, seed=8)
    assert [e.query.tolist() for e in a] == [e.query.tolist() for e in b]
    assert [e.query.tolist() for e in a] != [e.query.tolist() for e in c]


def test_an_episode_needs_enough_relations_with_enough_instances():
    groups = group_by_relation(["A"] * 5 + ["B"] * 5 + ["C"] * 2)
    with pytest.raises(ConfigError, match="only 2 of the split's 3 relations"):
        sample_episode(groups, torch.Generator(), ways=3, shots=2, queries=1)


# -- the prototypical network ----------------------------------------------------------------------
def test_prototypes_and_logits_equal_a_hand_computation():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0, 1])
    protos = prototypes(support, labels, 2)
    torch.testing.assert_close(protos, torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    query = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    # squared distances: q0 -> (1, 1 + 9 = 10); q1 -> (1 + 9 = 10, 1)
    expected = -torch.tensor([[1.0, 10.0], [10.0, 1.0]])
    torch.testing.assert_close(prototypical_logits(query, protos), expected)
    torch.testing.assert_close(episode_logits(support, labels, query, 2), expected)
    loss = torch.nn.functional.cross_entropy(expected, torch.tensor([0, 1]))
    torch.testing.assert_close(loss, torch.log1p(torch.exp(torch.tensor(-9.0))))
    with pytest.raises(ValueError, match="every class needs a support instance"):
        prototypes(support, labels, 3)


def test_leave_one_out_scores_each_instance_against_the_others():
    x = torch.tensor([[0.0], [2.0], [10.0], [12.0], [5.0]])
    labels = torch.tensor([7, 7, 9, 9, 4])  # class 4 has one instance: no query, but a class
    logits, targets, queries = leave_one_out_logits(x, labels)
    assert queries.tolist() == [0, 1, 2, 3] and targets.tolist() == [1, 1, 2, 2]  # sorted: 4, 7, 9
    # instance 0: class 4 at 5 (25), class 7 without it at 2 (4), class 9 at 11 (121)
    torch.testing.assert_close(logits[0], -torch.tensor([25.0, 4.0, 121.0]))
    # instance 3: class 4 at 5 (49), class 7 at 1 (121), class 9 without it at 10 (4)
    torch.testing.assert_close(logits[3], -torch.tensor([49.0, 121.0, 4.0]))
    with pytest.raises(ValueError, match="at least two classes"):
        leave_one_out_logits(x[:2], labels[:2])
    with pytest.raises(ValueError, match="shots and queries >= 2"):
        leave_one_out_logits(x[[0, 2, 4]], labels[[0, 2, 4]])


# -- linking ---------------------------------------------------------------------------------------
def test_linking_through_wikidata_ids_and_the_share(tmp_path, kg):
    mapping = tmp_path / "e2w.json"
    mapping.write_text(json.dumps({
        "/m/0": {"wikidata_id": "Q0"}, "/m/1": {"wikidata_id": "Q1"},
        "/m/2": {"wikidata_id": "Q1"},          # shares Q1: the first keeps it
        "/m/9": {"wikidata_id": "Q9"},          # not an entity of the graph
        "/m/3": {"label": "no id"},
    }))  # fmt: skip
    index, counts = wikidata_index(mapping, kg.entities.names)
    assert index == {"Q0": 0, "Q1": 1}
    assert counts == {"mapped": 5, "in_graph": 3, "no_wikidata_id": 1, "shared_wikidata_id": 1}
    from gnnlm.tasks.fewrel.reader import parse_instance

    def instance(h: str | None, t: str | None):
        item = {"tokens": ["a", "b", "c"], "h": ["a", h, [[0]]], "t": ["c", t, [[2]]]}
        return parse_instance(item, "P1", 0, Path("x"))

    instances = [
        instance("Q0", "Q5"),
        instance("Q1", "Q0"),
        instance(None, "Q7"),
        instance("Q5", "Q5"),
    ]
    links = link_instances(instances, index)
    assert links == [(0, None), (1, 0), (None, None), (None, None)]
    counts = link_counts(instances, links)
    assert counts["head_linked"] == 2 and counts["tail_linked"] == 1
    assert counts["mention_share"] == 3 / 8
    assert counts["both_linked"] == 1 and counts["either_linked"] == 2
    # distinct entities: Q0, Q5, Q1, Q7 and the unnamed-id head "a" -> 2 of 5 link
    assert counts["entities"] == 5 and counts["entities_linked"] == 2


# -- the task --------------------------------------------------------------------------------------
def test_a_tiny_bert_protonet_learns_the_synthetic_relations(files, kg):
    """5 meta-train relations, 3 unseen test relations: after training, 3-way 1-shot query accuracy is
    at least 0.55 (chance 1/3) and 0.1 above the untrained encoder's on the same episodes."""
    torch.manual_seed(0)
    config = tiny_config(files, **{"training.epochs": 16})  # 128 steps of 15
    trainer = Trainer(config, data=kg, quiet=True)
    trainer.fit()
    task = trainer.task
    torch.manual_seed(0)
    with torch.no_grad():
        trained = task.evaluate(trainer.model.eval(), "test")
        untrained = task.evaluate(task.build_model().eval(), "test")
    assert trained["accuracy_3w1s"] >= 0.55
    assert trained["accuracy_3w1s"] > untrained["accuracy_3w1s"] + 0.1
    assert trained["accuracy_3w2s"] > untrained["accuracy_3w2s"] + 0.1


def test_engine_runs_every_arm_on_the_same_episodes(files, kg, tmp_path):
    meta = {"ways": 3, "shots": 2, "queries": 2, "inner_steps": 1, "meta_batch_size": 1}
    config = tiny_config(files, seeds=[0], variants={
        "proto": {},
        "reptile": {"finetuning.meta": {"method": "reptile", **meta}},
        "fomaml": {"finetuning.meta": {"method": "fomaml", **meta}},
        "kg": {"model.injection": ["entity"], "model.injection_kwargs": {"entity": {"source": "gnn"}}},
    })  # fmt: skip
    comparison = run_variants(config, tmp_path / "run", data=kg, quiet=True)
    assert (tmp_path / "run" / "comparison.md").is_file()
    runs = {arm: a["runs"]["0"] for arm, a in comparison.arms.items()}
    for metrics in runs.values():
        test = metrics["test"]
        assert set(test["episode_accuracy"]) == {"3w1s", "3w2s"}
        assert len(test["episode_accuracy"]["3w1s"]) == 40
        assert 0.0 <= test["accuracy_3w1s"] <= 1.0 and test["ci95_3w1s"] > 0
        assert metrics["split"] == {
            "train": ["P0", "P1", "P2", "P3", "P4"],
            "test": ["P5", "P6", "P7"],
        }
        assert test["num_instances"] <= 72 and test["truncated"] == 0
    # Q0..Q5 link (KG entities /m/0../m/5) of names 0..13: both splits report their share
    links = runs["kg"]["links"]["test"]
    assert links["instances"] == 72 and 0 < links["mention_share"] < 1
    assert runs["kg"]["test"]["accuracy"] != runs["proto"]["test"]["accuracy"]
    assert runs["reptile"]["test"]["accuracy"] != runs["proto"]["test"]["accuracy"]


def test_meta_learning_with_one_shot_support_is_refused(files, kg):
    config = tiny_config(files, **{"finetuning.meta": {"method": "reptile", "shots": 1}})
    with pytest.raises(ConfigError, match="shots and queries must be >= 2"):
        Trainer(config, data=kg, quiet=True).fit()


def test_unknown_relations_in_the_split_are_config_errors(files, kg):
    config = tiny_config(files, **{"data.test_relations": ["P5", "P6", "P99"]})
    with pytest.raises(ConfigError, match=r"data.test_relations: \['P99'\] not in"):
        task = FewRelTask(config, data=kg)
        task.validate()
        task.setup()
    config = tiny_config(files, **{"data.test_relations": ["P4", "P5", "P6"]})
    with pytest.raises(ConfigError, match=r"must be disjoint; both list \['P4'\]"):
        FewRelTask(config, data=kg).validate()


def test_a_kg_batch_where_nothing_links_runs_on_an_empty_graph(kg):
    """No placeholder node: the fused LM's GNN runs on zero nodes and leaves the text as the LM's."""
    from gnnlm.data.subgraph import SubgraphSampler
    from gnnlm.fusion import FusedLM, FusionConfig
    from gnnlm.lm import load_lm, load_tokenizer
    from gnnlm.tasks.fewrel.reader import parse_instance

    item = {"tokens": ["a", "b", "c"], "h": ["a", "Q99", [[0]]], "t": ["c", None, [[2]]]}
    instance = parse_instance(item, "P1", 0, Path("x"))
    sampler = SubgraphSampler(kg.homogeneous(add_inverse=True), num_hops=1, max_nodes=4)
    batch = FewRelCollator(load_tokenizer("tiny-bert"), sampler, max_length=16)(
        [instance], [(None, None)]
    )
    assert batch.inputs.graph.num_nodes == 0
    config = FusionConfig(
        lm="tiny-bert", injection=["entity"], injection_kwargs={"entity": {"source": "gnn"}},
        encoder="compgcn", encoder_kwargs={"batch_norm": False}, node_channels=8,
        num_entities=kg.num_entities, num_relations=2 * kg.num_relations,
    )  # fmt: skip
    lm = load_lm("tiny-bert", seed=0)
    model = FusedLM(config, lm=lm).eval()
    with torch.no_grad():
        out = model(batch.inputs)
        plain = lm(input_ids=batch.inputs.input_ids, attention_mask=batch.inputs.attention_mask)
    torch.testing.assert_close(out.last_hidden_state, plain)
