"""One progress helper for every long loop: a tqdm bar on a terminal, log lines elsewhere.

When stderr is a terminal, :func:`progress` returns a ``tqdm`` bar. Otherwise (a log file, a
pipe, a batch job) carriage-return bars would turn into megabyte-long lines, so it returns a
:class:`LogProgress` that writes a plain log line every 10 % of the work or every 30 s, and
nothing at all for work that finishes within ``min_seconds``.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

logger = logging.getLogger("reid.progress")


class LogProgress:
    """A tqdm-like progress object that reports through ``logging``.

    Args:
        iterable: items to iterate over (optional when ``update`` is called by hand).
        total: number of steps; default ``len(iterable)`` when it has one.
        desc: label of the log lines.
        disable: report nothing.
        every_fraction: log when this fraction of ``total`` was done since the last line.
        every_seconds: log at least this often (seconds) while work goes on.
        min_seconds: stay silent until this many seconds have passed since the start.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        disable: bool = False,
        every_fraction: float = 0.1,
        every_seconds: float = 30.0,
        min_seconds: float = 1.0,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:  # no length (a generator, an iterable-style DataLoader)
                total = None
        self.total = total
        self.desc = desc
        self.disable = disable
        self.every_fraction = every_fraction
        self.every_seconds = every_seconds
        self.min_seconds = min_seconds
        self.n = 0
        self.postfix = ""
        self.lines = 0
        self._start = time.monotonic()
        self._last_time = self._start
        self._last_n = 0
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress without an iterable cannot be iterated")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix(self, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Values appended to the next log line (as tqdm's ``set_postfix``)."""
        items = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; logs a line when 10 % or 30 s have passed."""
        self.n += n
        if self.disable:
            return
        now = time.monotonic()
        if now - self._start < self.min_seconds:
            return
        step = (self.total or 0) * self.every_fraction
        if (self.total and self.n - self._last_n >= max(step, 1)) or (
                now - self._last_time >= self.every_seconds):
            self._emit(now)

    def _emit(self, now: float) -> None:
        elapsed = now - self._start
        if self.total:
            done = f"{self.n}/{self.total} ({100.0 * self.n / self.total:.0f}%)"
        else:
            done = f"{self.n}"
        extra = f", {self.postfix}" if self.postfix else ""
        logger.info("%s: %s, %.1f s%s", self.desc or "progress", done, elapsed, extra)
        self._last_time, self._last_n = now, self.n
        self.lines += 1

    def close(self) -> None:
        """Log the final count when anything was logged or the work took ``min_seconds``."""
        if self._closed:
            return
        self._closed = True
        now = time.monotonic()
        if not self.disable and self.n != self._last_n and (
                self.lines or now - self._start >= self.min_seconds):
            self._emit(now)


def stderr_is_terminal() -> bool:
    """True when ``sys.stderr`` is an interactive terminal."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    disable: bool = False,
    leave: bool = False,
) -> Any:
    """A progress reporter over ``iterable`` (or ``total`` steps advanced with ``update``).

    Args:
        iterable: the items; iterate over the returned object instead.
        total: number of steps (default: ``len(iterable)``).
        desc: label.
        disable: report nothing.
        leave: keep the finished tqdm bar on the terminal.

    Returns:
        A ``tqdm`` bar when stderr is a terminal, else a :class:`LogProgress`; both support
        iteration, ``update(n)``, ``set_postfix(dict)``, ``close()`` and ``with``.
    """
    if stderr_is_terminal():
        return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave,
                    dynamic_ncols=True)
    return LogProgress(iterable, total=total, desc=desc, disable=disable)
