"""The leaderboard, rebuilt from the Parquet tables alone (``harness leaderboard``).

* ``results/leaderboard.md`` -- the summary page (:mod:`harness.report.summary`);
* ``results/leaderboard/<definition>.md`` -- one detail page per benchmark, every number of its
  latest batch (:mod:`harness.report.details`), and ``cost-and-memory.md``, the cost tables;
* ``results/leaderboard/*.png`` -- critical-difference diagrams, anytime curves, cost and memory
  (:mod:`harness.report.figures`);
* ``results/leaderboard-<table>.csv`` and ``.tex`` -- the summary tables for a paper.

A rebuild replaces all of them; pages, figures and exports it no longer writes (a benchmark whose
rows are gone) are removed, so the folder never shows a stale page.
"""
from __future__ import annotations

from pathlib import Path

from harness.report.details import PAGE_TABLES, detail_pages
from harness.report.summary import COST_PAGE, FOLDER, cost_page, exports, figure_plan, summarise, summary_markdown
from harness.store.files import write_text
from harness.store.tables import read_results

LEADERBOARD = "leaderboard.md"
#: The tables the leaderboard reads (zero_cost: per-architecture values for the proxy rank test).
TABLES = PAGE_TABLES + ("zero_cost",)


def build_leaderboard(results_dir: "str | Path") -> str:
    """The summary page's markdown for ``results_dir`` (nothing written)."""
    res = read_results(results_dir, TABLES)
    s = summarise(res)
    return summary_markdown(s, list(detail_pages(res, results_dir)), set(figure_plan(s)))


def write_leaderboard(results_dir: "str | Path") -> list[Path]:
    """Write everything (see the module docstring) atomically, file by file; returns
    ``[leaderboard.md, *figures, *detail pages, cost page, *exports]``."""
    results_dir = Path(results_dir)
    res = read_results(results_dir, TABLES)
    s = summarise(res)
    folder = results_dir / FOLDER
    plan = figure_plan(s)
    pages = detail_pages(res, results_dir)
    written = [draw(folder / name) for name, draw in plan.items()]
    written += [write_text(text, folder / name) for name, text in pages.items()]
    if s.methods is not None:
        written.append(write_text(cost_page(s, set(plan)), folder / COST_PAGE))
    written += [write_text(text, results_dir / name) for name, text in exports(s).items()]
    keep = set(written)
    stale = [p for p in folder.glob("*") if p.suffix in (".md", ".png") and p not in keep]
    stale += [p for p in results_dir.glob("leaderboard-*") if p.suffix in (".csv", ".tex") and p not in keep]
    for p in stale:
        p.unlink()
    return [write_text(summary_markdown(s, list(pages), set(plan)), results_dir / LEADERBOARD), *written]
