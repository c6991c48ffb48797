"""Meta-learning episodes of triple classification (a relation per episode), and a meta step through the
task's own training_step."""

from __future__ import annotations

import pytest
import torch

from gnnlm.config import ConfigError
from gnnlm.strategies.config import MetaConfig
from gnnlm.strategies.meta import meta_gradients
from gnnlm.tasks.episodes import by_relation, example_relation, sample_relation_episode
from gnnlm.tasks.triple_classification import make_example
from tests.tasks.test_triple_classification import graph_dir, load_task, tiny_config  # noqa: F401

META = MetaConfig(method="fomaml", shots=2, queries=3, inner_steps=1, inner_lr=0.05)


@pytest.fixture(scope="module")
def task(graph_dir):  # noqa: F811
    """40 positives and 40 negatives over 3 relations: about 13 of each per relation."""
    return load_task(tiny_config(graph_dir, **{"data.num_train": 40}))


def draw(task, seed: int, settings: MetaConfig = META):
    return task.sample_episode(torch.Generator().manual_seed(seed), settings)


def test_an_episode_is_one_relations_disjoint_balanced_support_and_query(task):
    examples = task.examples["train"]
    relations = set()
    for seed in range(8):
        episode = draw(task, seed)
        support, query = episode.support.tolist(), episode.query.tolist()
        assert len(support) == 2 * META.shots and len(query) == 2 * META.queries
        assert len(set(support) | set(query)) == len(support) + len(query)  # all distinct
        chosen = {example_relation(examples[i]) for i in support + query}
        assert len(chosen) == 1
        relations |= chosen
        for indices, per_class in ((support, META.shots), (query, META.queries)):
            assert sum(examples[i].label for i in indices) == per_class  # as many true as false
    assert len(relations) > 1  # the relation is drawn too


def test_the_generator_seed_fixes_the_episode(task):
    def key(episode):
        return episode.support.tolist(), episode.query.tolist()

    assert key(draw(task, 5)) == key(draw(task, 5))
    assert len({str(key(draw(task, seed))) for seed in range(6)}) > 1


def test_relations_without_enough_examples_are_never_drawn():
    entity, relation = [f"e{i}" for i in range(6)], ["big", "small"]
    triples = [(0, 0, 1), (1, 0, 2), (2, 0, 3), (3, 0, 4)] + [(0, 1, 5)]
    examples = [make_example(torch.tensor(t), 1.0, entity, relation) for t in triples]
    examples += [make_example(torch.tensor(t), 0.0, entity, relation) for t in triples]
    assert {r: (len(p), len(n)) for r, (p, n) in by_relation(examples).items()} == {
        0: (4, 4),
        1: (1, 1),
    }
    for seed in range(5):
        episode = sample_relation_episode(
            examples, torch.Generator().manual_seed(seed), shots=1, queries=1
        )
        assert {example_relation(examples[i]) for i in episode.support.tolist()} == {0}
    with pytest.raises(ConfigError, match="shots \\+ queries = 5 .* at most 4"):
        sample_relation_episode(examples, torch.Generator(), shots=3, queries=2)


def test_episode_settings_are_checked(task):
    with pytest.raises(ConfigError, match="finetuning.meta: an episode needs"):
        draw(task, 0, MetaConfig(shots=20, queries=5))
    with pytest.raises(ConfigError, match="finetuning.meta.ways must be 2"):
        draw(task, 0, MetaConfig(ways=5))


@pytest.mark.parametrize("method", ["fomaml", "reptile"])
def test_a_meta_step_through_the_tasks_training_step(task, method):
    """meta_gradients on the task's own loss: weights restored, then an outer SGD step moves them."""
    settings = MetaConfig(method=method, shots=2, queries=2, inner_steps=2, inner_lr=0.05)
    torch.manual_seed(0)
    model = task.build_model()
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    episodes = [task.sample_episode(generator, settings) for _ in range(2)]

    def loss_fn(indices):
        return task.training_step(model, indices, generator).loss

    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    logs = meta_gradients(model, params, episodes, loss_fn, settings)
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], b) for n, b in before.items())  # only .grad was written
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert model.head.weight.grad.abs().sum() > 0
    torch.optim.SGD(params, lr=0.1).step()
    moved = {n for n, b in before.items() if not torch.equal(now[n], b)}
    assert "head.weight" in moved
    assert any(n.startswith("fused.lm.") for n in moved)  # through the inner loop's LM gradients
    assert torch.isfinite(loss_fn(episodes[0].query))
