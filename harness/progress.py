"""Progress output: bars on a terminal, one line per finished item otherwise.

A bar's redraws in a log file (``make bench-nb201 | cat``, CI) are unreadable, so bars are drawn
only when stderr is a terminal, or when forced with ``--progress``; otherwise each finished item
(a trained candidate, a search run) is logged as one line on stderr, and work that runs longer
than :data:`LINE_EVERY_S` (a backbone's pre-training, a full-size candidate) also logs a line
with its position, rate and time left at least that often, so a log never goes quiet for minutes.
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

_FORCE: "bool | None" = None  # None: bars iff stderr is a terminal


def force_bars(on: "bool | None") -> None:
    """``True``: always draw bars; ``False``: never; ``None``: only on a terminal."""
    global _FORCE
    _FORCE = on


def bars_shown() -> bool:
    return _FORCE if _FORCE is not None else sys.stderr.isatty()


#: Seconds between two progress lines of one long piece of work when bars are not shown.
LINE_EVERY_S = 30.0


class _Lines:
    """The bar's stand-in in a log: ``update`` prints ``desc: done/total (pct), elapsed, left``
    when :data:`LINE_EVERY_S` have passed since the last line; ``close`` prints nothing (the
    caller's :func:`finished` line says how it ended)."""

    def __init__(self, total: int, desc: str, initial: int = 0):
        self.total, self.desc, self.n, self.start_n = total, desc, initial, initial
        self.t0 = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= LINE_EVERY_S:
            self.last = now
            done, elapsed = self.n - self.start_n, now - self.t0
            left = elapsed / done * (self.total - self.n) if done else float("nan")
            print(f"{self.desc}: {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%), "
                  f"{_clock(elapsed)} elapsed, ~{_clock(left)} left", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _clock(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def bar(total: int, desc: str, enabled: bool = True, initial: int = 0) -> "tqdm | _Lines":
    """A tqdm bar when ``enabled`` and bars are shown; timed progress lines when ``enabled`` and
    not (a log); a silent bar otherwise."""
    if enabled and not bars_shown():
        return _Lines(total, desc, initial)
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, initial=initial)


def finished(line: str, enabled: bool = True) -> None:
    """Log one finished item when bars are not shown (a bar already told the terminal user)."""
    if enabled and not bars_shown():
        print(line, file=sys.stderr, flush=True)
