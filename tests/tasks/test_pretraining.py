"""Pre-training injection: MLM masking, KEPLER's scores, DRAGON's held-out edges, training on the engine,
and the hand-over of ``fused.*`` to triple classification."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from gnnlm.config import ConfigError, apply_overrides
from gnnlm.data.knowledge_graph import KnowledgeGraph
from gnnlm.data.schema import EntityText
from gnnlm.data.vocab import Vocabulary
from gnnlm.tasks.loading import load_config
from gnnlm.tasks.pretraining import PretrainingConfig, PretrainingTask, mask_tokens, maskable_tokens
from gnnlm.tasks.pretraining import task as task_module
from gnnlm.tasks.pretraining.edges import canonical_triples
from gnnlm.tasks.pretraining.masking import IGNORE
from gnnlm.train import Trainer
from gnnlm.train.trainer import seed_everything
from tests.tasks.helpers import set_up

CONFIGS = Path(__file__).parents[2] / "configs" / "tasks"
WORDS = (
    "apple river stone cloud tiger violin garden candle mirror rocket island pencil forest "
    "button lemon castle planet anchor bridge feather"
).split()
KINDS = ("fruit", "place", "tool", "animal", "instrument")


@pytest.fixture(scope="module")
def kg() -> KnowledgeGraph:
    """20 entities with names and descriptions, 3 relations, 90 / 12 / 12 triples; entity ``i`` is of
    kind ``i % 5`` (named in its description) and relation ``r`` leads from kind ``k`` to kind
    ``k + r + 1 (mod 5)``: structure that TransE and DistMult can learn."""
    rng = random.Random(0)
    triples = set()
    while len(triples) < 114:
        h, r = rng.randrange(20), rng.randrange(3)
        t = (h + r + 1) % 5 + 5 * rng.randrange(4)
        triples.add((h, r, t))
    triples = sorted(triples)
    rng.shuffle(triples)
    tensor = torch.tensor(triples)
    splits = {"train": tensor[:90], "valid": tensor[90:102], "test": tensor[102:]}
    descriptions = [
        f"a {KINDS[i % 5]} that is often seen near the {WORDS[(i + 7) % 20]}" for i in range(20)
    ]
    text = EntityText(list(WORDS), descriptions, [[] for _ in WORDS])
    return KnowledgeGraph(
        Vocabulary([f"e{i}" for i in range(20)]), Vocabulary(["likes", "fears", "holds"]), splits,
        name="words", entity_text=text, relation_text=["likes", "fears", "holds"],
    )  # fmt: skip


def tiny_config(**overrides) -> PretrainingConfig:
    """A tiny-bert run on the small KG."""
    values = {
        "dataset": "words",
        "objectives": ["mlm", "kepler", "link_prediction"],
        "model.lm": "tiny-bert",
        "model.injection": ["graph", "entity"],
        "model.node_channels": 16,
        "model.freeze_lm_layers": 0,
        "data.num_train": 8,
        "data.num_valid": 4,
        "data.max_length": 24,
        "data.max_nodes": 8,
        "training.batch_size": 8,
        "evaluation.batch_size": 8,
    }
    values.update(overrides)
    return apply_overrides(PretrainingConfig(), values)


def load_task(config: PretrainingConfig, kg: KnowledgeGraph) -> PretrainingTask:
    return set_up(PretrainingTask, config, data=kg)


# -- masking -----------------------------------------------------------------------------------------
def test_masking_rates_specials_labels_and_seed():
    """15% of maskable tokens selected (80% [MASK], 10% random, 10% kept); special and padding
    tokens never; labels are the original ids exactly where selected; the same seed masks the same."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (400, 64), generator=g)
    ids[:, 0], ids[:, 40] = 101, 102  # [CLS], [SEP]
    attention = torch.ones_like(ids)
    attention[:, 41:] = 0
    ids[:, 41:] = 0  # padding
    maskable = maskable_tokens(ids, attention, [0, 101, 102, 103])
    assert not maskable[:, 0].any() and not maskable[:, 40:].any() and maskable[:, 1:40].all()

    def run(seed):
        return mask_tokens(ids, maskable, mask_token_id=103, vocab_size=30522,
                           generator=torch.Generator().manual_seed(seed))  # fmt: skip

    inputs, labels = run(1)
    selected = labels != IGNORE
    assert not (selected & ~maskable).any()  # specials and padding are never selected
    assert torch.equal(inputs[~maskable], ids[~maskable])
    assert torch.equal(labels[selected], ids[selected])  # -100 elsewhere, the original id here
    assert (labels[~selected] == IGNORE).all()
    n = int(maskable.sum())  # 15,600 tokens: the binomial's std of the rate is 0.003
    assert abs(int(selected.sum()) / n - 0.15) < 0.012
    masked = inputs[selected] == 103
    kept = inputs[selected] == ids[selected]
    assert abs(float(masked.float().mean()) - 0.8) < 0.03
    assert (
        abs(float(kept.float().mean()) - 0.1) < 0.025
    )  # a random draw equal to the original is rare
    assert abs(float((~masked & ~kept).float().mean()) - 0.1) < 0.025
    assert not ((inputs != ids) & ~selected).any()  # nothing else changes
    again, again_labels = run(1)
    other, _ = run(2)
    assert torch.equal(again, inputs) and torch.equal(again_labels, labels)
    assert not torch.equal(other, inputs)


# -- KEPLER ------------------------------------------------------------------------------------------
def test_kepler_score_equals_a_per_triple_hand_computation(kg):
    """gamma - ||E(h) + r - E(t)||_1, E(e) the fused LM's pooled output on e's text alone (its
    subgraph less the triple and its twin), for positives and both kinds of corruption."""
    config = tiny_config(**{"kepler.gamma": 3.0, "kepler.negatives": 2})
    task = load_task(config, kg)
    seed_everything(0)
    model = task.build_model().eval()
    triples = task.corpus.train_triples.triples[:3]
    replacements = torch.tensor([[5, 6], [7, 8], [9, 10]])
    head_corrupted = torch.tensor([[True, False], [False, True], [True, True]])
    with torch.no_grad():
        positive, negative = task.kepler_scores(model, triples, replacements, head_corrupted)

        def encode(entity, h, r, t):
            exclude = torch.tensor([[h, r, t], [t, r, h]])
            return model.fused(task.collate([task.example(entity, exclude)])).pooled_output[0]

        for k, (h, r, t) in enumerate(triples.tolist()):
            rel = model.kepler_relations.weight[r]
            head, tail = encode(h, h, r, t), encode(t, h, r, t)
            expected = 3.0 - (head + rel - tail).abs().sum()
            torch.testing.assert_close(positive[k], expected, rtol=1e-4, atol=1e-4)
            for j, e in enumerate(replacements[k].tolist()):
                other = encode(e, h, r, t)
                if head_corrupted[k, j]:
                    expected = 3.0 - (other + rel - tail).abs().sum()
                else:
                    expected = 3.0 - (head + rel - other).abs().sum()
                torch.testing.assert_close(negative[k, j], expected, rtol=1e-4, atol=1e-4)


# -- DRAGON ------------------------------------------------------------------------------------------
def test_held_out_edges_are_absent_from_the_gnn_input_and_only_they(kg, monkeypatch):
    """Every held-out triple is missing from the GNN's input in both directions; every other edge of
    the subgraphs is there; the scored corruptions stay inside their subgraph."""
    task = load_task(tiny_config(**{"objectives": ["mlm", "link_prediction"],
                                    "link_prediction.drop_rate": 0.3}), kg)  # fmt: skip
    seed_everything(0)
    model = task.build_model()
    seen, held_out, inputs = {}, [], []
    real_drop, real_corrupt = task_module.drop_edges, task_module.corrupt_in_subgraph

    def drop(graph, *args):
        seen["graph"] = graph
        kept, held = real_drop(graph, *args)
        held_out.append(held)
        return kept, held

    def corrupt(held, graph, n, generator):
        negatives, flags = real_corrupt(held, graph, n, generator)
        seen["negatives"] = negatives
        return negatives, flags

    monkeypatch.setattr(task_module, "drop_edges", drop)
    monkeypatch.setattr(task_module, "corrupt_in_subgraph", corrupt)
    forward = model.fused.encoder.layer_forward

    def record(j, x, edge_index, edge_type, *args):
        inputs.append((edge_index, edge_type))
        return forward(j, x, edge_index, edge_type, *args)

    monkeypatch.setattr(model.fused.encoder, "layer_forward", record)
    task.text_graph_objectives(model, task.corpus.train, torch.Generator().manual_seed(0))

    graph, held = seen["graph"], held_out[0]
    R = kg.num_relations
    assert len(held) > 0 and len(inputs) == model.fused.encoder.num_layers
    edge_index, edge_type = inputs[0]
    given = {tuple(e) for e in torch.cat([edge_index.t(), edge_type[:, None]], 1).tolist()}
    banned = {(h, t, r) for h, r, t in held.tolist()} | {(t, h, r + R) for h, r, t in held.tolist()}
    assert not given & banned
    everything = {
        tuple(e) for e in torch.cat([graph.edge_index.t(), graph.edge_type[:, None]], 1).tolist()
    }
    assert given == everything - banned and banned <= everything
    assert {tuple(x) for x in canonical_triples(edge_index, edge_type, R).tolist()}.isdisjoint(
        {tuple(x) for x in held.tolist()}
    )
    negatives = seen["negatives"]  # [k, n, 3]: both ends in the held-out edge's subgraph
    example = graph.batch[held[:, 0]]
    assert (graph.batch[negatives[..., 0]] == example[:, None]).all()
    assert (graph.batch[negatives[..., 2]] == example[:, None]).all()
    assert not (negatives == held[:, None]).all(-1).any()


# -- training on the engine --------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["mlm", "kepler", "link_prediction"])
def test_each_objective_loss_decreases_over_30_steps(kg, objective):
    """30 optimizer steps of one objective (one batch of 8 entities per epoch): the mean training loss
    of the last 5 steps is at least 0.1 below that of the first 5."""
    config = tiny_config(**{
        "objectives": [objective], "training.epochs": 30, "training.lr": 1e-2,
        "training.param_groups": {"lm": {"lr": 1e-2}}, "evaluation.frequency": 0,
    })  # fmt: skip
    if objective == "kepler":
        # the toy graph is random, which TransE cannot fit: what a short run learns is to bring the
        # encodings' distances (initially far above a small margin) down to the margin
        config = apply_overrides(config, {"kepler.gamma": 1.0, "kepler.negatives": 4})
    if objective == "link_prediction":  # more held-out edges and negatives: a steadier loss
        overrides = {"link_prediction.drop_rate": 0.3, "link_prediction.negatives": 4}
        config = apply_overrides(config, overrides)
    losses = []
    key = {"mlm": "mlm", "kepler": "kepler", "link_prediction": "link"}[objective]

    def record(trainer, row):
        losses.append(row[f"train_{key}_loss"])

    result = Trainer(config, data=kg, quiet=True, callbacks=[record]).fit()
    assert result.metrics["steps"] == 30 and len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.1, losses
    valid = result.metrics["valid"]
    assert set(valid) >= {"loss", f"{key}_loss", f"{key}_accuracy"}
    other = {"mlm", "kepler", "link"} - {key}
    assert not any(k.startswith(tuple(other)) for k in valid)  # only this run's objectives


def test_fused_parameters_match_a_triple_classifier_of_the_same_model_block(kg):
    """The pre-trained model's fused.* names and shapes are a TripleClassifier's (same model block),
    and at the same seed they even start equal; the heads are the only other parameters."""
    from gnnlm.tasks import TripleClassificationConfig, TripleClassificationTask

    config = tiny_config(**{"model.injection": ["graph", "entity", "relation"]})
    block = {f"model.{k}": v for k, v in config.model.to_dict().items()}
    classification = apply_overrides(TripleClassificationConfig(), {"dataset": "words", **block})
    tc = TripleClassificationTask(classification, data=kg)
    tc.validate()
    tc.setup()
    task = load_task(config, kg)
    seed_everything(0)
    pre = task.build_model().state_dict()
    seed_everything(0)
    down = tc.build_model().state_dict()
    fused = {k: v for k, v in pre.items() if k.startswith("fused.")}
    assert fused.keys() == {k for k in down if k.startswith("fused.")}
    assert all(torch.equal(fused[k], down[k]) for k in fused)
    assert {k.split(".")[0] for k in pre} == {
        "fused",
        "mlm_head",
        "kepler_relations",
        "link_head",
    }
    groups = task.parameter_groups(task.build_model())
    assert set(groups) == {"lm", "gnn", "fusion", "gates", "head"} and groups["head"]


# -- config ------------------------------------------------------------------------------------------
def test_config_errors_name_file_and_line(tmp_path, kg):
    path = tmp_path / "p.yaml"
    path.write_text("task: pretraining\nobjectives: [mlm, kepplr]\nmodel: {lm: tiny-bert}\n")
    with pytest.raises(ConfigError, match=r"p.yaml:2: objectives\[1\]: unknown objective 'kepplr'"):
        PretrainingTask(load_config(path), data=kg).validate()
    path.write_text("task: pretraining\nobjectives: [link_prediction]\nmodel:\n  lm: tiny-bert\n"
                    "  injection: []\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"p.yaml:5: objective link_prediction .* needs a mode"):
        PretrainingTask(load_config(path), data=kg).validate()
    path.write_text("task: pretraining\nkepler: {norm: 3}\n")
    with pytest.raises(ConfigError, match=r"p.yaml:2"):
        load_config(path)


@pytest.mark.parametrize("name", ["pretraining_fb15k237.yaml", "pretraining_wn18rr.yaml"])
def test_the_shipped_configs_load_as_pretraining_runs(name):
    config = load_config(CONFIGS / name)
    assert isinstance(config, PretrainingConfig) and config.model.lm == "minilm"
    assert set(config.objectives) == {"mlm", "kepler", "link_prediction"}
