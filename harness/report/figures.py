"""The summary page's figures: critical-difference diagrams, anytime curves with bands, accuracy
against search cost and memory.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state) and written atomically
through :func:`harness.store.files.write_png`; what is compared comes from
:mod:`harness.report.compare`. Every accuracy axis carries the regret (NB201 optimum minus
accuracy) as a second axis on the right.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.report.compare import KIND_ONESHOT, KIND_TABULAR, KIND_TRAINED, optimum, pareto_fronts
from harness.spaces import dataset_order
from harness.stats import RankTest, mean_band
from harness.store.files import write_png
from harness.store.tables import order_values


def _regret_axis(ax, space: str, dataset: str) -> None:
    opt = optimum(space, dataset)
    if np.isfinite(opt):
        ax.secondary_yaxis("right", functions=(lambda a: opt - a, lambda r: opt - r)).set_ylabel(
            f"regret (optimum {opt:.2f})", fontsize=8)


# --------------------------------------------------------------------------- CD diagram


def cd_figure(test: RankTest, title: str) -> Figure:
    """Demšar's critical-difference diagram: mean ranks on a line (1 = best, left), the critical
    difference as a bar above it, and thick bars joining methods the Nemenyi test does not separate
    (all of them when the Friedman test does not reject)."""
    order, cliques = test.order(), test.cliques()
    k = len(order)
    half = (k + 1) // 2
    rows = max(half, k - half)
    below = 0.25 + 0.15 * len(cliques)  # room for the clique bars under the axis
    fig = Figure(figsize=(8.0, 1.6 + 0.28 * rows + 0.1 * len(cliques)), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(0.6 - 0.35 * k, k + 0.4 + 0.35 * k)
    ax.set_ylim(-(rows + below + 0.6), 1.6)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.15, color="black", linewidth=1)
        ax.text(r, 0.25, str(r), ha="center", va="bottom", fontsize=8)
    ax.hlines(1.1, 1, 1 + test.cd, color="C3", linewidth=2)
    ax.text(1 + test.cd / 2, 1.2, f"CD = {test.cd:.2f}", ha="center", va="bottom", fontsize=8, color="C3")
    for j, clique in enumerate(cliques):
        y = -0.2 - 0.15 * j
        ax.hlines(y, test.rank(clique[0]) - 0.03, test.rank(clique[-1]) + 0.03, color="C0", linewidth=3.5, alpha=0.8)
    for i, name in enumerate(order):
        left = i < half
        y = -(i + 1 if left else k - i) - below
        x_edge = 0.8 if left else k + 0.2
        rank = test.rank(name)
        ax.plot([rank, rank, x_edge], [0, y, y], color="black", linewidth=0.8, zorder=1)
        ax.text(x_edge + (-0.05 if left else 0.05), y, f"{name} ({rank:.2f})", ha="right" if left else "left",
                va="center", fontsize=8)
    verdict = "rejects equal ranks" if test.rejects() else "does not reject equal ranks"
    ax.set_title(f"{title}\nFriedman chi2 = {test.statistic:.2f}, p = {test.p:.2g} ({verdict}, alpha = "
                 f"{test.alpha:g}); N = {test.blocks} blocks; bars: no significant Nemenyi difference", fontsize=9)
    return fig


def write_cd(test: RankTest, title: str, path) -> Path:
    return write_png(cd_figure(test, title), path, dpi=120)


# --------------------------------------------------------------------------- anytime curves


def _band_line(ax, x, values: np.ndarray, label: str, colour: str) -> float:
    """Mean line over the rows of ``values`` with its 95% bootstrap band; returns the band's low
    point after the first 10% of x (for the y limits)."""
    mean, lo, hi = mean_band(values)
    n = len(values)
    banded = np.isfinite(lo).all()
    ax.plot(x, mean, color=colour, linewidth=1.5,
            label=f"{label} ({n} seed{'s' if n != 1 else ''}{'' if banded else ': no band'})")
    if banded:
        ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0)
    low = lo if banded else mean
    keep = x >= x[0] + 0.1 * (x[-1] - x[0])
    return float(np.nanmin(low[keep])) if keep.any() else float(np.nanmin(low))


def anytime_figure(curves: pd.DataFrame, x: str, xlabel: str) -> Figure:
    """One panel per benchmark (row) and dataset: best-found accuracy after each ``x`` (queries, or
    cumulative evaluation seconds), mean over seeds with a 95% bootstrap band, one line per method.
    ``curves``: benchmark, method, dataset, space, run_id, ``x``, best (one row per evaluation)."""
    benches = sorted(set(curves["benchmark"]))
    panels = {b: order_values(curves.loc[curves["benchmark"] == b, "dataset"], dataset_order()) for b in benches}
    cols = max(len(p) for p in panels.values())
    fig = Figure(figsize=(4.8 * cols + 0.6, 3.7 * len(benches) + 0.5), layout="constrained")
    axes = fig.subplots(len(benches), cols, squeeze=False)
    for row, bench in zip(axes, benches):
        for ax in row[len(panels[bench]):]:
            ax.set_visible(False)
        for ax, ds in zip(row, panels[bench]):
            c = curves[(curves["benchmark"] == bench) & (curves["dataset"] == ds)]
            lows, top = [], -np.inf
            for i, (method, m) in enumerate(c.groupby("method", sort=True)):
                grid, values = _on_grid(m, x)
                lows.append(_band_line(ax, grid, values, method, f"C{i % 10}"))
                top = max(top, float(np.nanmax(values)))
            if lows and np.isfinite(min(lows)):
                pad = 0.05 * max(top - min(lows), 0.5)
                ax.set_ylim(min(lows) - pad, top + pad)
            _regret_axis(ax, str(c["space"].iloc[0]), ds)
            ax.set_title(f"{ds} · {bench}", fontsize=10)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        row[0].set_ylabel("best-found 200-epoch test acc. (%)")
    fig.suptitle("mean over seeds, 95% bootstrap band (whole curves resampled; none under 5 seeds); "
                 "right axis: regret to the NB201 optimum", fontsize=9)
    return fig


def _on_grid(m: pd.DataFrame, x: str) -> tuple[np.ndarray, np.ndarray]:
    """seeds x points of best-found accuracy: per query; or, against time, each run's step curve
    (the best so far at every time) on a shared grid that starts once every run has a result."""
    if x == "query":
        wide = m.pivot_table(index="run_id", columns="query", values="best", aggfunc="first").dropna(axis=1)
        return wide.columns.to_numpy(float), wide.to_numpy(float)
    runs = [g.sort_values(x) for _, g in m.groupby("run_id", sort=False)]
    start, stop = max(g[x].iloc[0] for g in runs), max(g[x].iloc[-1] for g in runs)
    grid = np.linspace(start, stop, 200)
    values = np.array([g["best"].to_numpy(float)[np.searchsorted(g[x].to_numpy(float), grid, side="right") - 1]
                       for g in runs])
    return grid, values


def write_anytime(curves: pd.DataFrame, x: str, xlabel: str, path) -> Path:
    return write_png(anytime_figure(curves, x, xlabel), path, dpi=120)


# --------------------------------------------------------------------------- cost and memory


def cost_figure(table: pd.DataFrame) -> Figure:
    """Per dataset: each method that found an architecture with a known accuracy at (search seconds
    per run, mean best-found accuracy); marker area proportional to peak memory, shape = kind,
    hollow = smoke run; the Pareto front (no other point both cheaper and more accurate) dashed, and
    dotted the front of the methods that do not look accuracies up."""
    t = table[table["best"].notna() & (table["cost_s"] > 0)]
    datasets = order_values(t["dataset"], dataset_order())
    fig = Figure(figsize=(5.6 * len(datasets) + 0.6, 6.0), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    biggest = float(np.nanmax(t["peak_bytes"])) if t["peak_bytes"].notna().any() else 1.0
    marker = {KIND_TABULAR: "o", KIND_TRAINED: "s", KIND_ONESHOT: "^"}
    for ax, ds in zip(axes, datasets):
        d = t[t["dataset"] == ds]
        handles = []
        for i, r in enumerate(d.itertuples(index=False)):
            colour, memory = f"C{i % 10}", np.isfinite(r.peak_bytes)
            size = 30 + 600 * r.peak_bytes / biggest if memory else 30
            label = (f"{r.method} [{r.benchmark}{', smoke' if r.smoke else ''}]"
                     f"{f' {r.peak_bytes / 1e6:,.0f} MB' if memory else ' (no memory figure)'}")
            shape, face = marker.get(r.kind, "o"), "none" if r.smoke else colour
            ax.scatter(r.cost_s, r.best, s=size, marker=shape, zorder=3, alpha=0.75, facecolors=face,
                       edgecolors=colour, linewidths=1.5)
            handles.append(Line2D([], [], marker=shape, linestyle="", markerfacecolor=face, markeredgecolor=colour,
                                  markersize=6, label=label))  # legend markers of one size, whatever the memory
        every, real = pareto_fronts(d)
        tabular = (d["kind"] == KIND_TABULAR).any()
        for front, style, label in ((every, "--", "Pareto front"), (real, ":", "Pareto front without table look-ups")):
            if front and (style == "--" or tabular):  # without look-ups in the panel, the two fronts are one
                f = d.loc[sorted(front, key=lambda i: d.at[i, "cost_s"])]
                handles += ax.plot(f["cost_s"], f["best"], color="black", linestyle=style, linewidth=1, zorder=2,
                                   label=label)
                ax.scatter(f["cost_s"], f["best"], s=12, color="black", zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel("search cost per run (s, log)")
        ax.set_ylabel("mean best-found 200-epoch test acc. (%)")
        _regret_axis(ax, str(d["space"].iloc[0]) if "space" in d else "nb201", ds)
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.suptitle("marker area = peak memory (small fixed marker: none recorded); circle = tabular search, square = "
                 "real training, triangle = one-shot; hollow = smoke run (fewer than 5 seeds)",
                 fontsize=9)
    return fig


def write_cost(table: pd.DataFrame, path) -> Path:
    return write_png(cost_figure(table), path, dpi=120)
