"""Rebuild every report of a results folder: plots first, so the leaderboard links those that exist."""
from __future__ import annotations

from pathlib import Path

from harness.report.cka import write_cka_reports
from harness.report.leaderboard import write_leaderboard
from harness.report.plots import write_plots


def refresh(results_dir: "str | Path") -> list[Path]:
    """Returns ``[leaderboard.md, *plots written]`` (CKA heatmaps last, when there is a ``cka`` table)."""
    plots = write_plots(results_dir) + write_cka_reports(results_dir)
    return [write_leaderboard(results_dir), *plots]
