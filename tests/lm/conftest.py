"""One intra-op thread for these tiny-model tests: on a shared 2-core machine, thread contention makes each
small op ~100x slower. Restored after each test so other packages' tests are unaffected."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
