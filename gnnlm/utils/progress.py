"""Progress reporting that suits where the output goes.

In a terminal (or a notebook) :func:`progress` returns a ``tqdm`` bar. Anywhere else (a log file, a pipe,
CI) a bar would redraw many times a second and leave one line per redraw in the log, so it returns a
:class:`LineProgress` instead: one plain line per ``every`` seconds (``every=0``: one per update, e.g. per
epoch), and a last line when it closes (``leave=True``)::

    for batch in progress(batches, total=n, desc="epoch 3", leave=False, every=30):
        ...
    bar = progress(total=epochs, desc="epochs", every=0)  # a line per epoch in a log
    bar.set_postfix(loss="0.123")
    bar.update()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

#: seconds between two lines of a :class:`LineProgress` by default.
DEFAULT_EVERY = 30.0


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ip = shell.get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _tqdm_class() -> type:
    """A widget bar in a notebook with ipywidgets, else a text bar (``tqdm.auto`` would warn in a notebook
    without ipywidgets, and that warning would be saved in the notebook's outputs)."""
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            pass
        else:
            from tqdm.notebook import tqdm

            return tqdm
    from tqdm.std import tqdm

    return tqdm


def is_interactive(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal (or a notebook's output), where a redrawn bar belongs."""
    try:
        return bool(stream.isatty()) or _in_notebook()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool = False,
    leave: bool = True,
    unit: str = "it",
    every: float = DEFAULT_EVERY,
    file: IO[str] | None = None,
    initial: int = 0,
    **tqdm_kwargs: Any,
):
    """A ``tqdm`` bar on a terminal, else a :class:`LineProgress` (same calls: iterate, ``update``,
    ``set_postfix``, ``close``, ``with``).

    Args:
        iterable: what to iterate over (or ``None`` and call ``update``).
        total: expected number of updates (default ``len(iterable)`` when it has one).
        desc: label at the start of each line.
        disable: report nothing.
        leave: keep the finished bar (a last line outside a terminal).
        unit: what one update counts.
        every: outside a terminal, seconds between lines (``0``: a line per update).
        file: where to write (default ``sys.stderr``).
        initial: count to start from (e.g. the epoch a resumed run continues after).
        **tqdm_kwargs: passed to ``tqdm`` in a terminal.
    """
    stream = file if file is not None else sys.stderr
    if not disable and is_interactive(stream):
        tqdm = _tqdm_class()
        tqdm_kwargs.setdefault("dynamic_ncols", True)
        return tqdm(
            iterable, total=total, desc=desc, leave=leave, unit=unit, file=stream, initial=initial,
            **tqdm_kwargs,
        )  # fmt: skip
    return LineProgress(
        iterable, total=total, desc=desc, disable=disable, leave=leave, unit=unit, every=every,
        file=stream, initial=initial,
    )  # fmt: skip


class LineProgress:
    """Progress as plain lines: at most one per ``every`` seconds, plus one at the end (``leave``).

    A line reads ``desc: n/total (pct%) elapsed 12.3s, 4.5 it/s, key=value ...``.

    Args:
        iterable: what to iterate over (or ``None`` and call :meth:`update`).
        total: expected number of updates.
        desc: label of each line.
        disable: write nothing.
        leave: write a last line when closed (if anything was counted since the previous line).
        unit: what one update counts.
        every: seconds between lines (``0``: a line per update).
        file: the stream.
        initial: count to start from.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str | None = None,
        disable: bool = False,
        leave: bool = True,
        unit: str = "it",
        every: float = DEFAULT_EVERY,
        file: IO[str] | None = None,
        initial: int = 0,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.disable = disable
        self.leave = leave
        self.unit = unit
        self.every = every
        self.file = file if file is not None else sys.stderr
        self.n = initial
        self.postfix: dict[str, Any] = {}
        self._start = self._last = time.monotonic()
        self._printed_n: int | None = None
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress without an iterable: call update()")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line if ``every`` seconds passed since the last one."""
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self._last >= self.every:
            self._write(now)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Values shown at the end of the next line (``loss=0.12``)."""
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc: str | None = None) -> None:
        self.desc = desc

    def close(self) -> None:
        """Write the last line (``leave`` and something new to report); idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.leave and self._printed_n != self.n:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        elapsed = now - self._start
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        rate = f", {self.n / elapsed:.3g} {self.unit}/s" if elapsed > 0 and self.n else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        label = f"{self.desc}: " if self.desc else ""
        print(f"{label}{count} elapsed {elapsed:.1f}s{rate}{extra}", file=self.file, flush=True)
        self._last, self._printed_n = now, self.n
