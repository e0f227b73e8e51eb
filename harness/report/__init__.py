"""Reports over the results tables: leaderboard (markdown), plots, CKA heatmaps.

:mod:`~harness.report.query` is the query layer both the leaderboard and the plots read through;
:func:`refresh` rebuilds everything of a results folder.
"""
from __future__ import annotations

from pathlib import Path


def refresh(results_dir: "str | Path") -> list[Path]:
    """Plots first (so the leaderboard links the ones that exist), then ``leaderboard.md``.

    Returns ``[leaderboard.md, *plots written]``.
    """
    from harness.report.leaderboard import write_leaderboard
    from harness.report.plots import write_plots

    plots = write_plots(results_dir)
    return [write_leaderboard(results_dir), *plots]
