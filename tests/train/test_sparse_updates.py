"""Row-sparse sLCWA updates (gnnlm.train.sparse) against the dense reference path."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gnnlm.kge import build_kge_model
from gnnlm.tasks.link_prediction import LinkPredictionTrainingConfig as TrainingConfig
from gnnlm.train import ConfigError, TrainConfig, Trainer
from gnnlm.train.config import apply_overrides
from gnnlm.train.loops import SLCWALoop
from gnnlm.train.losses import SoftplusLoss
from gnnlm.train.negative_sampling import UniformNegativeSampler
from gnnlm.train.regularizers import N3Regularizer
from gnnlm.train.sparse import (
    LazyAdam,
    RowAdagrad,
    RowSGD,
    sparse_updates_reason,
    use_sparse_updates,
)

NUM_ENTITIES, NUM_RELATIONS = 40, 3


def triples(n: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(NUM_ENTITIES, (n,), generator=g)
    r = torch.randint(NUM_RELATIONS, (n,), generator=g)
    t = torch.randint(NUM_ENTITIES, (n,), generator=g)
    return torch.stack([h, r, t], dim=1)


def loops(interaction: str, *, regularizer=None, **kwargs):
    """A dense-reference loop and a sparse loop over two identical models."""
    torch.manual_seed(0)
    model = build_kge_model(interaction, NUM_ENTITIES, NUM_RELATIONS, 6, **kwargs)
    data = triples()
    sampler = UniformNegativeSampler(data, NUM_ENTITIES, num_negatives=3)
    dense = SLCWALoop(model, data, sampler, SoftplusLoss(), batch_size=8, regularizer=regularizer)
    sparse = SLCWALoop(
        copy.deepcopy(model), data, sampler, SoftplusLoss(), batch_size=8,
        regularizer=regularizer, sparse=True,
    )  # fmt: skip
    return dense, sparse


def step(loop: SLCWALoop, optimizer, indices, seed: int) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = loop.batch_loss(indices, torch.Generator().manual_seed(seed))
    loss.backward()
    optimizer.step()
    loop.model.post_step()
    return loss.detach()


def weights(loop: SLCWALoop) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loop.model.parameters()]


@pytest.mark.parametrize("interaction", ["transe", "distmult", "complex", "rotate"])
def test_sparse_loss_and_gradient_equal_the_dense_reference(interaction):
    dense, sparse = loops(interaction, regularizer=N3Regularizer(0.1))
    indices = torch.tensor([0, 3, 5, 7, 11, 2])
    loss_d = dense.batch_loss(indices, torch.Generator().manual_seed(1))
    loss_s = sparse.batch_loss(indices, torch.Generator().manual_seed(1))
    assert torch.equal(loss_d, loss_s)
    loss_d.backward()
    loss_s.backward()
    for p_d, p_s in zip(dense.model.parameters(), sparse.model.parameters()):
        assert p_s.grad.is_sparse and not p_d.grad.is_sparse
        torch.testing.assert_close(p_s.grad.to_dense(), p_d.grad)  # summation order only
        touched = p_s.grad.coalesce()._indices()[0]
        untouched = torch.ones(len(p_d), dtype=torch.bool)
        untouched[touched] = False
        assert (p_d.grad[untouched] == 0).all()
    # not every entity row is used
    assert (dense.model.representation.entity.weight.grad == 0).all(dim=1).any()


@pytest.mark.parametrize(
    ("dense_cls", "row_cls", "kwargs"),
    [
        (torch.optim.Adagrad, RowAdagrad, {"lr": 0.1, "initial_accumulator_value": 0.1}),
        (torch.optim.SGD, RowSGD, {"lr": 0.5}),
    ],
)
@pytest.mark.parametrize("fused", [True, False])
def test_exact_row_optimizers_equal_dense_ones(dense_cls, row_cls, kwargs, fused):
    """Adagrad and SGD leave zero-gradient rows unchanged: the sparse run equals the dense one."""
    dense, sparse = loops("complex", regularizer=N3Regularizer(0.05))
    initial = weights(dense)
    opt_d = dense_cls(dense.model.parameters(), **kwargs)
    opt_s = row_cls(sparse.model.parameters(), **kwargs, fused=fused)
    for seed, indices in enumerate([torch.arange(8), torch.arange(8, 16), torch.arange(2, 10)]):
        assert torch.equal(step(dense, opt_d, indices, seed), step(sparse, opt_s, indices, seed))
    moved = 0
    for w0, w_d, w_s in zip(initial, weights(dense), weights(sparse)):
        torch.testing.assert_close(w_s, w_d, rtol=1e-6, atol=1e-7)
        still = (w_d == w0).all(dim=1)
        assert torch.equal(w_s[still], w0[still])  # untouched rows: bit for bit
        moved += int((~still).sum())
    assert moved > 0 and any(
        (w_d == w0).all(dim=1).any() for w0, w_d in zip(initial, weights(dense))
    )


def test_lazy_adam_equals_adam_on_the_first_step_then_leaves_unsampled_rows_alone():
    dense, sparse = loops("distmult")
    initial = weights(dense)
    opt_d = torch.optim.Adam(dense.model.parameters(), lr=0.01)
    opt_s = LazyAdam(sparse.model.parameters(), lr=0.01)
    first = torch.arange(4)
    step(dense, opt_d, first, 0)
    step(sparse, opt_s, first, 0)
    after_first = weights(sparse)
    for w_d, w_s in zip(weights(dense), after_first):
        torch.testing.assert_close(w_s, w_d, rtol=0, atol=1e-7)
    # Second step on other triples: dense Adam keeps moving the rows of step 1 (momentum), lazy Adam
    # moves only the rows of step 2.
    step(dense, opt_d, torch.arange(12, 16), 1)
    step(sparse, opt_s, torch.arange(12, 16), 1)
    ent0, ent1, ent2 = initial[0], after_first[0], weights(sparse)[0]
    only_first = (ent1 != ent0).any(1) & (ent2 == ent1).all(1)
    assert only_first.any()  # rows of step 1 that lazy Adam did not move in step 2 ...
    dense_ent = weights(dense)[0]
    assert not torch.equal(dense_ent[only_first], ent1[only_first])  # ... but dense Adam did


@pytest.mark.parametrize(
    ("row_cls", "kwargs"),
    [(LazyAdam, {"lr": 0.05}), (RowAdagrad, {"lr": 0.1, "lr_decay": 0.01})],
)
def test_fused_row_optimizers_equal_their_unfused_reference(row_cls, kwargs):
    """The fused form (rows gathered, torch's fused kernel, written back) equals the reference
    formulas on the rows: weights and state, over steps that share some rows and not others."""
    _, fused = loops("rotate", regularizer=N3Regularizer(0.05))
    reference = copy.deepcopy(fused)
    opt_f = row_cls(fused.model.parameters(), **kwargs)
    opt_r = row_cls(reference.model.parameters(), **kwargs, fused=False)
    assert opt_f.param_groups[0]["fused"] and not opt_r.param_groups[0]["fused"]
    initial = weights(fused)
    for seed, indices in enumerate([torch.arange(8), torch.arange(4, 12), torch.arange(16, 24)]):
        step(fused, opt_f, indices, seed)
        step(reference, opt_r, indices, seed)
    for w0, w_f, w_r in zip(initial, weights(fused), weights(reference)):
        torch.testing.assert_close(w_f, w_r, rtol=1e-5, atol=1e-6)
        still = (w_r == w0).all(dim=1)
        assert torch.equal(w_f[still], w0[still]) and not still.all()  # unsampled rows stay
    for p_f, p_r in zip(fused.model.parameters(), reference.model.parameters()):
        for key, value in opt_r.state[p_r].items():
            torch.testing.assert_close(opt_f.state[p_f][key], value, rtol=1e-5, atol=1e-7)
    assert set(opt_f.state_dict()["state"][0]) == set(opt_r.state_dict()["state"][0])  # no buffers


def test_lazy_adam_with_a_dense_gradient_is_adam():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    c = torch.nn.Parameter(a.detach().clone())
    opt_a, opt_b = torch.optim.Adam([a], lr=0.1), LazyAdam([b], lr=0.1)
    opt_c = LazyAdam([c], lr=0.1, fused=False)
    for _ in range(3):
        for p, opt in ((a, opt_a), (b, opt_b), (c, opt_c)):
            opt.zero_grad()
            (p**3).sum().backward()
            opt.step()
    torch.testing.assert_close(b, a)  # fused: torch's own kernel
    torch.testing.assert_close(c, a)  # reference: float rounding of v only


def test_transe_constraint_only_touches_the_batch_rows():
    dense, sparse = loops("transe")
    initial = weights(sparse)[0]
    opt = RowAdagrad(sparse.model.parameters(), lr=0.5)
    step(sparse, opt, torch.arange(6), 0)
    ent = weights(sparse)[0]
    changed = (ent != initial).any(dim=1)
    assert changed.any() and not changed.all()
    # moved rows are projected back onto the unit sphere
    torch.testing.assert_close(ent.norm(dim=1), torch.ones(NUM_ENTITIES))
    # the dense reference (whole-table projection) gives the same table
    step(dense, torch.optim.Adagrad(dense.model.parameters(), lr=0.5), torch.arange(6), 0)
    torch.testing.assert_close(weights(dense)[0], ent, rtol=1e-6, atol=1e-7)


def test_sparse_needs_a_row_gather_representation():
    model = build_kge_model("distmult", 5, 2, 4)
    model.representation.supports_row_gather = False
    sampler = UniformNegativeSampler(triples(), NUM_ENTITIES)
    with pytest.raises(ValueError, match="sparse updates need a representation"):
        SLCWALoop(model, triples(), sampler, SoftplusLoss(), batch_size=4, sparse=True)


# -- the trainer's choice --------------------------------------------------------------------------
def config(*overrides: str) -> TrainConfig:
    base = ["dataset=nations", "model.interaction=transe", "model.embedding_dim=16",
            "training.loop=slcwa", "training.loss=softplus", "training.num_negatives=4",
            "training.epochs=6", "training.batch_size=128", "training.lr=0.01",
            "evaluation.frequency=2", "evaluation.patience=5"]  # fmt: skip
    return apply_overrides(TrainConfig(), [*base, *overrides])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), LazyAdam),
        (("training.optimizer=adagrad",), RowAdagrad),
        (("training.optimizer=sgd",), RowSGD),
        (("training.sparse_updates=false",), torch.optim.Adam),
        (("training.sparse_updates=null",), torch.optim.Adam),  # auto: nations is too small
    ],
)
def test_trainer_builds_the_sparse_loop_and_optimizer(load_real, overrides, expected):
    cfg = config("training.sparse_updates=true", *overrides)
    trainer = Trainer(cfg, kg=load_real("nations"), quiet=True)
    trainer._build()
    assert type(trainer.optimizer) is expected
    assert (
        trainer.task.loop.sparse
        == trainer.task.sparse_updates
        == (expected is not torch.optim.Adam)
    )


def training(**kwargs) -> TrainingConfig:
    return TrainingConfig(**{"loop": "slcwa", "batch_size": 256, "num_negatives": 1, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "interaction", "reason"),
    [
        ({}, "transe", ""),
        ({"optimizer": "adagrad"}, "complex", ""),
        ({"loop": "kvsall"}, "distmult", "only the slcwa loop"),
        ({}, "tucker", "TuckER has weights of its own"),
        ({"clip_grad_norm": 1.0}, "rotate", "clip_grad_norm"),
        ({"optimizer": "adamw"}, "transe", "has no sparse form"),
        ({"optimizer_kwargs": {"weight_decay": 0.1}}, "transe", "weight_decay=0.1"),
        ({"optimizer": "sgd", "optimizer_kwargs": {"momentum": 0.9}}, "transe", "momentum=0.9"),
    ],
)
def test_where_sparse_updates_apply(kwargs, interaction, reason):
    model = build_kge_model(interaction, 5000, 3, 256)  # >= 2^20 parameters
    found = sparse_updates_reason(training(**kwargs), model)
    assert reason in found if reason else found == ""
    # auto, large KG: only where the sparse form is exact (Adam stays dense: fused, exact, as fast)
    exact = kwargs.get("optimizer") in ("adagrad", "sgd")
    assert use_sparse_updates(training(**kwargs), model) == (reason == "" and exact)
    if reason:
        with pytest.raises(ConfigError, match="sparse_updates=true cannot apply"):
            use_sparse_updates(training(sparse_updates=True, **kwargs), model)


def test_auto_stays_dense_when_a_batch_touches_most_rows_or_the_model_is_small():
    model = build_kge_model("transe", 5000, 3, 256)
    agd = {"optimizer": "adagrad"}
    assert use_sparse_updates(training(batch_size=1024, num_negatives=1, **agd), model)  # 4,096 ids
    assert not use_sparse_updates(training(batch_size=1024, num_negatives=2, **agd), model)  # 6,144
    assert not use_sparse_updates(training(batch_size=1024, num_negatives=1), model)  # Adam: lazy
    small = build_kge_model("transe", 5000, 3, 128)  # 640,384 parameters < 2^20
    assert not use_sparse_updates(training(batch_size=1024, num_negatives=1, **agd), small)
    assert use_sparse_updates(training(sparse_updates=True), small)
    assert use_sparse_updates(
        training(batch_size=1024, num_negatives=2, sparse_updates=True), model
    )
    assert not use_sparse_updates(training(sparse_updates=False, **agd), model)


def test_sparse_updates_true_where_impossible_is_a_config_error(load_real):
    trainer = Trainer(
        config("training.sparse_updates=true", "training.clip_grad_norm=1.0"),
        kg=load_real("nations"),
        quiet=True,
    )
    with pytest.raises(ConfigError, match="sparse_updates=true cannot apply: training.clip_grad"):
        trainer.fit()


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_sparse_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path, load_real, optimizer):
    kg = load_real("nations")
    cfg = config(f"training.optimizer={optimizer}", "training.regularizer=n3",
                 "training.regularizer_weight=0.01", "training.sparse_updates=true")  # fmt: skip
    full = Trainer(cfg, run_dir=tmp_path / "full", kg=kg, quiet=True).fit()
    assert full.metrics["test"]["mrr"] > 0.2  # it learns (random ranking: ~0.1 on 14 entities)

    def interrupt(trainer, row):
        if row["epoch"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run_dir=tmp_path / "cut", kg=kg, quiet=True, callbacks=[interrupt]).fit()
    resumed = Trainer(cfg, run_dir=tmp_path / "cut", kg=kg, quiet=True).fit(resume=True)
    losses = [row["loss"] for row in full.history]
    assert [row["loss"] for row in resumed.history] == losses and len(set(losses)) == 6
    assert (
        json.loads((tmp_path / "cut" / "metrics.json").read_text())["test"] == full.metrics["test"]
    )
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_shipped_umls_rotate_config_keeps_its_mrr_with_sparse_updates(load_real):
    """Auto keeps the shipped configs dense (a batch touches every row); forced sparse updates (lazy
    Adam) still come within 0.07 of the dense run's test MRR (0.819; random ~0.04)."""
    from pathlib import Path

    from tests.train.test_trainer import UMLS_BEFORE_THE_ENGINE

    path = Path(__file__).resolve().parents[2] / "configs" / "umls" / "rotate.yaml"
    cfg = TrainConfig.load(path, ["training.sparse_updates=true"])
    trainer = Trainer(cfg, kg=load_real("umls"), quiet=True)
    result = trainer.fit()
    assert isinstance(trainer.optimizer, LazyAdam)
    assert result.metrics["test"]["mrr"] > UMLS_BEFORE_THE_ENGINE["rotate"] - 0.07


@pytest.mark.parametrize("sparse", [False, True])
def test_gather_hrt_scores_equal_score_hrt(sparse):
    from gnnlm.kge import LinkPredictionModel, Representation

    torch.manual_seed(0)
    model = build_kge_model("complex", NUM_ENTITIES, NUM_RELATIONS, 4)
    data = triples()
    assert torch.equal(
        model.interaction(*model.gather_hrt(data, sparse=sparse)), model.score_hrt(data)
    )

    class Whole(Representation):  # computes every row at once (like a GNN): the default gather
        num_entities, num_relations = NUM_ENTITIES, NUM_RELATIONS

        def forward(self):
            return model.representation.entity.weight * 1.0, model.representation.relation.weight

    other = LinkPredictionModel(Whole(), model.interaction)
    assert not other.representation.supports_row_gather
    assert torch.equal(
        other.interaction(*other.gather_hrt(data, sparse=sparse)), model.score_hrt(data)
    )


@pytest.mark.parametrize("fused", [True, False])
def test_row_optimizers_coalesce_a_gradient_with_repeated_rows(fused):
    """``F.embedding(sparse=True)`` gives an uncoalesced gradient (row 3 twice, unsorted rows): it is
    summed per row first; on a first step lazy Adam equals Adam (untouched rows: m = v = 0)."""
    torch.manual_seed(0)
    dense = torch.nn.Parameter(torch.randn(6, 4))
    sparse = torch.nn.Parameter(dense.detach().clone())
    ids = torch.tensor([3, 1, 3, 5])
    opt_d, opt_s = torch.optim.Adam([dense], lr=0.1), LazyAdam([sparse], lr=0.1, fused=fused)
    for p, opt, is_sparse in ((dense, opt_d, False), (sparse, opt_s, True)):
        (torch.nn.functional.embedding(ids, p, sparse=is_sparse) ** 2).sum().backward()
        if is_sparse:
            assert not p.grad.is_coalesced()
        opt.step()
    torch.testing.assert_close(sparse, dense)
    assert torch.equal(sparse[[0, 2, 4]], dense[[0, 2, 4]])


def test_row_optimizer_state_dict_round_trip_and_an_older_checkpoint_without_fused():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(6, 4))
    opt = LazyAdam([param], lr=0.1)
    (torch.nn.functional.embedding(torch.tensor([1, 4]), param, sparse=True) ** 2).sum().backward()
    opt.step()
    saved = opt.state_dict()
    del saved["param_groups"][0]["fused"]  # as written before the fused form existed
    other = LazyAdam([param], lr=0.1, fused=False)
    other.load_state_dict(saved)
    assert other.param_groups[0]["fused"] is True  # the default form where torch has the kernel
    assert torch.equal(other.state[param]["exp_avg"], opt.state[param]["exp_avg"])
    other.zero_grad()
    (torch.nn.functional.embedding(torch.tensor([4]), param, sparse=True) ** 2).sum().backward()
    other.step()  # scratch buffers are rebuilt after loading
    assert other.state[param]["step"].item() == 2
