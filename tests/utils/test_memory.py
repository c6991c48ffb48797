"""gnnlm.utils.memory: the peak-RSS rise of a step counts what the step allocated."""

from __future__ import annotations

import pytest
import torch

from gnnlm.utils.memory import peak_rise, proc_status_bytes, reset_peak_rss


@pytest.mark.skipif(not reset_peak_rss(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_rise_counts_a_step_that_allocates_and_frees():
    mib = 2**20

    def step() -> float:
        block = torch.ones(64 * mib // 4)  # 64 MiB, written, then freed on return
        return float(block[-1])

    value, rise = peak_rise(step)
    assert value == 1.0
    assert rise >= 48 * mib  # the block was resident at the peak
    assert proc_status_bytes("VmHWM") >= proc_status_bytes("VmRSS")
    _, idle = peak_rise(lambda: None)
    assert idle < 16 * mib  # nothing allocated: no rise beyond noise


def test_an_unknown_field_is_an_error():
    with pytest.raises(RuntimeError, match="has no VmNope"):
        proc_status_bytes("VmNope")
