"""Memory stays bounded at 2.5 million entities (a synthetic KG with few triples): a sparse training
step, the filtered evaluation against every entity, a 1-N step and a memory-mapped table.

Measured in a child process (``tests/scale/probe.py``) as the rise of its peak RSS during each phase,
so that nothing else in the test session counts. Sizes, not times: the step-time ratio when the
entity count grows 10x is ``benchmarks/scale.py``'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gnnlm.utils.memory import reset_peak_rss

# ~1 min on two idle cores (a 2.5M-entity model built four times): with the slow tests.
pytestmark = pytest.mark.slow

NUM_ENTITIES, DIM = 2_500_000, 8
MIB = 2**20
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    if not reset_peak_rss():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")
    # A fixed mmap threshold: glibc then maps (and on free unmaps) every block over 1 MiB, so a
    # phase's allocations show in its RSS instead of reusing memory an earlier phase freed.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    directory = tmp_path_factory.mktemp("memmap")
    done = subprocess.run(
        [sys.executable, "-m", "tests.scale.probe", str(NUM_ENTITIES), str(DIM), str(directory)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_sparse_step_allocates_a_small_fraction_of_the_table(probe):
    table = probe["table_bytes"]  # 2.5M x 8 floats: 76 MiB
    # The dense reference materialises a whole-table gradient (the contrast that makes this a test;
    # pages of it that stay zero may never become resident, hence not the whole table).
    assert probe["dense_step"] >= table / 2
    assert probe["sparse_step"] < table / 8


def test_evaluation_against_every_entity_stays_within_its_budget(probe):
    # DistMult: fewer than 16 rows of 2.5M scores fit in 2**23 floats, so entity slices. A few
    # [Q, W] blocks of 2**23 floats (32 MiB each: the product, its row-major copy, the comparison
    # buffer); whole rows for the 256 queries of a block would be 256 x 2.5M floats = 2.4 GiB.
    assert probe["evaluation_sliced"]
    assert probe["evaluation"] < 160 * MIB
    assert probe["ranks_equal_rows_path"] and probe["ranks_in_range"]


def test_a_kvsall_step_stays_bounded(probe):
    # The [N, d] table gradient (76 MiB; twice while the candidates' and the queries' parts are
    # added) plus a few 32 MiB slices; the unsliced [32, N] scores alone would be 305 MiB.
    assert probe["kvsall"] < 2 * probe["table_bytes"] + 128 * MIB
    assert probe["kvsall_loss"] > 0
    assert probe["kvsall_grad_rows"] > 0.99 * NUM_ENTITIES  # every candidate got its gradient


def test_a_memmap_table_trains_with_a_small_step(probe):
    assert probe["memmap_step"] < probe["table_bytes"] / 8
    assert probe["memmap_loss"] > 0
