"""Progress output: bars on a terminal, one line per finished item otherwise.

A bar's redraws in a log file (``make bench-nb201 | cat``, CI) are unreadable, so bars are drawn
only when stderr is a terminal, or when forced with ``--progress``; otherwise each finished item
(a trained candidate, a search run) is logged as one line on stderr.
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

_FORCE: "bool | None" = None  # None: bars iff stderr is a terminal


def force_bars(on: "bool | None") -> None:
    """``True``: always draw bars; ``False``: never; ``None``: only on a terminal."""
    global _FORCE
    _FORCE = on


def bars_shown() -> bool:
    return _FORCE if _FORCE is not None else sys.stderr.isatty()


def bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar when ``enabled`` and bars are shown; a silent one otherwise."""
    return tqdm(total=total, desc=desc, disable=not (enabled and bars_shown()), leave=False)


def finished(line: str, enabled: bool = True) -> None:
    """Log one finished item when bars are not shown (a bar already told the terminal user)."""
    if enabled and not bars_shown():
        print(line, file=sys.stderr, flush=True)
