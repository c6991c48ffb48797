"""This process's resident memory from Linux's ``/proc``: the current and peak RSS, and a way to reset
the peak so that it measures only what follows (used by the memory benchmarks and tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def proc_status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` in bytes: ``VmRSS`` (now) or ``VmHWM`` (peak).

    Raises:
        OSError: no ``/proc`` (not Linux); RuntimeError: no such field.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Reset the peak RSS (``VmHWM``, and ``getrusage``'s maximum) to the current RSS through
    ``/proc/self/clear_refs`` (Linux >= 4.0). Returns whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rise(run: Callable[[], T]) -> tuple[T, int]:
    """``(run(), bytes by which the peak RSS rose above the RSS before it)``.

    Raises:
        OSError: the peak cannot be reset here (see :func:`reset_peak_rss`).
    """
    if not reset_peak_rss():
        raise OSError("cannot reset the peak RSS: /proc/self/clear_refs is not writable")
    before = proc_status_bytes("VmRSS")
    out = run()
    return out, max(0, proc_status_bytes("VmHWM") - before)


__all__ = ["peak_rise", "proc_status_bytes", "reset_peak_rss"]
