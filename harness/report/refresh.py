"""Rebuild every report of a results folder: plots first, so the leaderboard links those that exist."""
from __future__ import annotations

from pathlib import Path

from harness.report.cka import write_cka_reports
from harness.report.leaderboard import write_leaderboard
from harness.report.plots import write_plots
from harness.report.table1 import write_table1_reports
from harness.report.table1_ablation import write_table1_ablation
from harness.report.table1_paper import write_table1_paper


def refresh(results_dir: "str | Path") -> list[Path]:
    """Returns ``[leaderboard.md, *the rest of the leaderboard, *plots written]`` (the leaderboard's
    files as :func:`harness.report.leaderboard.write_leaderboard` lists them; then the results
    folder's plots, the CKA heatmaps and the Table 1 reports of :mod:`harness.report.table1`, its
    ablation and the paper-protocol run, when there are rows for them)."""
    table1 = write_table1_reports(results_dir) + write_table1_ablation(results_dir) + write_table1_paper(results_dir)
    plots = write_plots(results_dir) + write_cka_reports(results_dir) + table1
    return [*write_leaderboard(results_dir), *plots]
