"""Suite-wide test settings.

One intra-op thread per test: the tests use tiny models and graphs, and on a small shared machine (CI has 2
cores) thread contention makes each small op up to ~100x slower. Restored after each test.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
