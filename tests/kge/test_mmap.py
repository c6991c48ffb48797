"""Memory-mapped embedding tables (gnnlm.kge.mmap) against the in-RAM table."""

from __future__ import annotations

import pytest
import torch

from gnnlm.kge import build_kge_model, resolve_interaction
from gnnlm.kge.mmap import HEADER_NAME, MemmapRepresentation
from gnnlm.kge.representation import EmbeddingRepresentation, representation_resolver
from gnnlm.train.checkpoint import load_tensors, module_tensors, save_tensors
from gnnlm.train.loops import SLCWALoop
from gnnlm.train.losses import SoftplusLoss
from gnnlm.train.negative_sampling import UniformNegativeSampler
from gnnlm.train.sparse import LazyAdam, RowAdagrad, RowSGD

NUM_ENTITIES, NUM_RELATIONS, DIM = 50, 3, 6


def triples(n: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(NUM_ENTITIES, (n,), generator=g)
    r = torch.randint(NUM_RELATIONS, (n,), generator=g)
    t = torch.randint(NUM_ENTITIES, (n,), generator=g)
    return torch.stack([h, r, t], dim=1)


def model_pair(interaction: str, directory, seed: int = 0):
    """An in-RAM model and a memmap model built from the same seed."""
    inter = resolve_interaction(interaction, DIM)
    torch.manual_seed(seed)
    ram = build_kge_model(inter, NUM_ENTITIES, NUM_RELATIONS, DIM)
    torch.manual_seed(seed)
    table = MemmapRepresentation.for_interaction(
        inter, NUM_ENTITIES, NUM_RELATIONS, DIM, directory=directory
    )
    mapped = build_kge_model(inter, NUM_ENTITIES, NUM_RELATIONS, DIM, representation=table)
    return ram, mapped


def train(model, optimizer_cls, steps: int = 6, *, sparse: bool = True, **optimizer_kwargs):
    data = triples()
    sampler = UniformNegativeSampler(data, NUM_ENTITIES, num_negatives=4)
    loop = SLCWALoop(model, data, sampler, SoftplusLoss(), batch_size=8, sparse=sparse)
    optimizer = optimizer_cls(model.parameters(), lr=0.1, **optimizer_kwargs)
    generator = torch.Generator().manual_seed(3)
    losses = []
    for _ in range(steps):
        for indices in loop.batches(generator):
            optimizer.zero_grad(set_to_none=True)
            loss = loop.batch_loss(indices, generator)
            loss.backward()
            optimizer.step()
            model.post_step()
            losses.append(float(loss.detach()))
    return losses


def test_initialisation_equals_the_in_ram_table_and_lives_in_the_files(tmp_path):
    ram, mapped = model_pair("transe", tmp_path / "table")
    for (name, a), (_, b) in zip(ram.named_parameters(), mapped.named_parameters()):
        assert torch.equal(a, b), name
    table = mapped.representation
    assert (tmp_path / "table" / HEADER_NAME).is_file()
    on_disk = torch.from_file(
        str(tmp_path / "table" / "entity.f32"), size=NUM_ENTITIES * DIM, dtype=torch.float32
    ).view(NUM_ENTITIES, DIM)
    assert torch.equal(on_disk, table.entity.weight.detach())
    # The parameter is a view of the mapped file, not a copy.
    assert table.entity.weight.data_ptr() == table._arrays["entity"].ctypes.data
    assert "directory=" in repr(table)


@pytest.mark.parametrize(
    ("interaction", "optimizer", "sparse"),
    [
        ("transe", RowAdagrad, True),
        ("rotate", LazyAdam, True),
        ("distmult", RowSGD, True),
        ("transe", torch.optim.Adagrad, False),
    ],
)
def test_trains_equal_to_the_in_ram_table(tmp_path, interaction, optimizer, sparse):
    ram, mapped = model_pair(interaction, tmp_path / "table")
    losses_ram = train(ram, optimizer, sparse=sparse)
    losses_mapped = train(mapped, optimizer, sparse=sparse)
    assert losses_ram == losses_mapped
    assert losses_ram[-1] < losses_ram[0]  # it learned something
    for (name, a), (_, b) in zip(ram.named_parameters(), mapped.named_parameters()):
        assert torch.equal(a, b), name


def test_a_sparse_step_writes_only_the_batch_rows(tmp_path):
    _, mapped = model_pair("transe", tmp_path / "table")
    table = mapped.representation
    before = table.entity.weight.detach().clone()
    data = triples()
    sampler = UniformNegativeSampler(data, NUM_ENTITIES, num_negatives=2)
    loop = SLCWALoop(mapped, data, sampler, SoftplusLoss(), batch_size=4, sparse=True)
    optimizer = RowAdagrad(mapped.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    indices = torch.arange(4)
    loss = loop.batch_loss(indices, generator)
    loss.backward()
    used = mapped.representation.entity.weight.grad.coalesce()._indices()[0]
    optimizer.step()
    mapped.post_step()
    changed = (table.entity.weight.detach() != before).any(1).nonzero().flatten()
    assert len(changed) > 0
    assert set(changed.tolist()) <= set(used.tolist())
    assert len(used) < NUM_ENTITIES


def test_persists_across_reopen(tmp_path):
    _, mapped = model_pair("transe", tmp_path / "table")
    train(mapped, RowAdagrad, steps=2)
    expected = {k: v.detach().clone() for k, v in mapped.state_dict().items()}
    mapped.representation.flush()
    del mapped
    reopened = MemmapRepresentation.open(tmp_path / "table")
    assert (reopened.num_entities, reopened.num_relations) == (NUM_ENTITIES, NUM_RELATIONS)
    assert torch.equal(reopened.entity.weight, expected["representation.entity.weight"])
    assert torch.equal(reopened.relation.weight, expected["representation.relation.weight"])
    # Writes through a reopened table reach the file as well.
    with torch.no_grad():
        reopened.entity.weight[3] = 7.0
    reopened.flush()
    again = MemmapRepresentation.open(tmp_path / "table")
    assert (again.entity.weight[3] == 7.0).all()


def test_checkpoints_without_pickle(tmp_path):
    ram, mapped = model_pair("rotate", tmp_path / "table")
    train(mapped, LazyAdam, steps=2)
    # 1. The engine's safetensors checkpoint of the state dict, loaded into a fresh memmap table.
    save_tensors(tmp_path / "model.safetensors", module_tensors(mapped))
    tensors, _ = load_tensors(tmp_path / "model.safetensors")
    inter = resolve_interaction("rotate", DIM)
    fresh = build_kge_model(
        inter, NUM_ENTITIES, NUM_RELATIONS, DIM,
        representation=MemmapRepresentation.for_interaction(
            inter, NUM_ENTITIES, NUM_RELATIONS, DIM, directory=tmp_path / "fresh"
        ),
    )  # fmt: skip
    fresh.load_state_dict(tensors)
    for (name, a), (_, b) in zip(mapped.named_parameters(), fresh.named_parameters()):
        assert torch.equal(a, b), name
    # ...and the same state dict loads into the in-RAM table (same parameter names).
    ram.load_state_dict(tensors)
    assert torch.equal(ram.representation.entity.weight, mapped.representation.entity.weight)
    # 2. A streaming copy of the files, reopened.
    saved = mapped.representation.save(tmp_path / "copy")
    copy = MemmapRepresentation.open(saved)
    assert torch.equal(copy.entity.weight, mapped.representation.entity.weight)
    assert torch.equal(copy.relation.weight, mapped.representation.relation.weight)
    assert not any(p.suffix in (".pt", ".pkl") for p in saved.iterdir())
    with pytest.raises(ValueError, match="own folder"):
        mapped.representation.save(tmp_path / "table")


def test_open_refuses_incomplete_or_mismatched_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match=HEADER_NAME):
        MemmapRepresentation.open(tmp_path)
    _, mapped = model_pair("distmult", tmp_path / "table")
    with open(tmp_path / "table" / "entity.f32", "ab") as f:
        f.write(b"\0" * 4)
    with pytest.raises(ValueError, match=r"entity\.f32: 1204 bytes, expected 1200"):
        MemmapRepresentation.open(tmp_path / "table")
    _, other = model_pair("distmult", tmp_path / "other")
    with pytest.raises(ValueError, match="num_entities=50.*expected num_entities=51"):
        MemmapRepresentation(51, NUM_RELATIONS, DIM, directory=tmp_path / "other", initialize=False)


def test_registered_by_name_with_the_in_ram_table():
    assert representation_resolver.lookup("memmap") is MemmapRepresentation
    assert representation_resolver.lookup("mmap") is MemmapRepresentation
    assert representation_resolver.lookup("embedding") is EmbeddingRepresentation
    assert (
        representation_resolver.lookup("gnnlm.kge.mmap:MemmapRepresentation")
        is MemmapRepresentation
    )


@pytest.mark.parametrize("count", [15, 300, 2**16, 2**16 + 5, 3 * 2**16 + 21])
def test_skipping_draws_in_chunks_consumes_the_generator_as_one_call(count):
    from gnnlm.kge.mmap import _skip_normal_draws

    torch.manual_seed(0)
    torch.empty(count).normal_()
    expected = torch.rand(4)
    torch.manual_seed(0)
    _skip_normal_draws(count)
    assert torch.equal(torch.rand(4), expected)


# -- from a config: model.representation ------------------------------------------------------------


def _tiny_run_config(tmp_path, *overrides):
    from tests.train.tiny_kg import tiny_config, write_tiny_kg

    folder = write_tiny_kg(tmp_path / "kg")
    return tiny_config(
        folder, "training.loop=slcwa", "training.loss=softplus", "training.sparse_updates=true",
        "training.optimizer=adagrad", "training.reciprocal=true", "evaluation.frequency=0",
        *overrides,
    )  # fmt: skip


def test_a_config_trains_a_memory_mapped_table_like_the_in_ram_one(tmp_path):
    """``model.representation: memmap`` from a config: the same run as the in-RAM table (same seed,
    same row updates), the table's files in ``representation_kwargs.directory``; the saved model
    loads with fresh files and leaves the run's folder alone."""
    from gnnlm.train import Trainer
    from gnnlm.train.pretrained import from_pretrained

    tables = tmp_path / "tables"
    results = {}
    for name, extra in (
        ("ram", ()),
        ("memmap", ("model.representation=memmap", f"model.representation_kwargs.directory={tables}")),
    ):  # fmt: skip
        config = _tiny_run_config(tmp_path, *extra)
        results[name] = Trainer(config, run_dir=tmp_path / name, quiet=True).fit()
    rep = results["memmap"].model.representation
    assert isinstance(rep, MemmapRepresentation) and rep.directory == tables
    assert (tables / HEADER_NAME).is_file()
    assert results["memmap"].metrics["test"]["mrr"] == pytest.approx(
        results["ram"].metrics["test"]["mrr"], abs=1e-6
    )
    torch.testing.assert_close(
        rep.entity.weight.detach(), results["ram"].model.representation.entity.weight.detach()
    )
    stamp = (tables / "entity.f32").stat().st_mtime_ns
    loaded = from_pretrained(tmp_path / "memmap" / "model")
    assert isinstance(loaded.representation, MemmapRepresentation)
    assert loaded.representation.directory != tables
    torch.testing.assert_close(loaded.representation.entity.weight, rep.entity.weight.detach())
    assert (tables / "entity.f32").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.representation=memmapp",), "model.representation"),
        (("model.representation=memmap", "model.encoder=rgcn"), "the encoder computes the entity"),
        (("model.representation=memmap", "model.representation_kwargs.folder=/tmp/x"), "folder"),
        (("model.representation=embedding", "model.representation_kwargs.directory=/tmp/x"),
         "the in-RAM table takes none"),
    ],
)  # fmt: skip
def test_bad_representation_settings_are_refused_before_training(tmp_path, overrides, message):
    from gnnlm.train import ConfigError, Trainer

    with pytest.raises(ConfigError, match=message):
        Trainer(_tiny_run_config(tmp_path, *overrides), quiet=True)
