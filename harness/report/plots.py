"""Result plots: anytime search curves (paper Fig. 4 bottom) and memory / time bars (Fig. 4 top).

Drawn with matplotlib's object API on the Agg canvas (no pyplot global state) and written
atomically through :func:`harness.store.files.write_png`. Bands and error bars are
mean ± population std (ddof 0) over seeds or runs, as in the leaderboard. Rows come from the
results store through :mod:`harness.report.query`, which also defines the best-by-proxy rule the
anytime curves follow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness import HarnessError
from harness.report.oneshot import write_oneshot_plots
from harness.report.proxies import write_proxy_plot
from harness.report.query import SAMPLER_ORDER, anytime_curves, col, order_values, read_results, search_results
from harness.store.files import write_png
from harness.tabular.nb201 import DATASETS

ANYTIME = "rea_anytime.png"
MEMORY = "memory.png"
_LINE_KEY = ["benchmark", "method", "sampler"]


def _pstd(values: pd.Series) -> float:
    return values.std(ddof=0)


def _need(df: "pd.DataFrame | None", cols, what: str) -> pd.DataFrame:
    if df is None or len(df) == 0:
        raise HarnessError(f"{what}: no rows to plot")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise HarnessError(f"{what}: missing column(s) {', '.join(missing)}")
    return df


def plot_anytime(runs_df: pd.DataFrame, path) -> Path:
    """Anytime curves: x = queries, y = 200-epoch test accuracy of the best-by-proxy architecture so
    far; mean ± std band over seeds; one panel per dataset, one line per (benchmark,) method, sampler.

    The y axis starts at the band's lowest point after the first 10% of the queries, so the
    converged part stays readable (the first few queries fall below the frame).
    """
    _need(runs_df, ("run_id", "dataset", *_LINE_KEY, "trial", "proxy", "ground_truth"), "anytime plot")
    curves = anytime_curves(runs_df)
    stats = curves.groupby(["dataset", *_LINE_KEY, "query"], sort=False)["best_truth"].agg(
        mean="mean", std=_pstd, seeds="size").reset_index()
    datasets = order_values(stats["dataset"], DATASETS)
    several_benchmarks = stats["benchmark"].nunique() > 1
    # Stable colours: benchmark, then Original first, then REA / random / TPE.
    lines = sorted({tuple(k) for k in stats[_LINE_KEY].to_numpy()},
                   key=lambda k: (k[0], k[1] != "original", k[1],
                                  SAMPLER_ORDER.index(k[2]) if k[2] in SAMPLER_ORDER else len(SAMPLER_ORDER), k[2]))
    colours = {k: f"C{i % 10}" for i, k in enumerate(lines)}

    fig = Figure(figsize=(4.6 * len(datasets) + 0.4, 3.8), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, ds in zip(axes, datasets):
        lows = []
        panel = dict(tuple(stats[stats["dataset"] == ds].groupby(_LINE_KEY, sort=False)))
        for key in lines:
            s = panel.get(key)
            if s is None:
                continue
            bench, method, sampler = key
            label = f"{sampler} · {method}" + (f" [{bench}]" if several_benchmarks else "")
            n = s["seeds"].max()
            label += f" ({n} seed{'s' if n != 1 else ''})"
            x, m, sd = s["query"].to_numpy(), s["mean"].to_numpy(), s["std"].to_numpy()
            ax.plot(x, m, color=colours[key], label=label, linewidth=1.6)
            ax.fill_between(x, m - sd, m + sd, color=colours[key], alpha=0.18, linewidth=0)
            lows.append(np.nanmin((m - sd)[x >= max(1, int(np.ceil(0.1 * x.max())))]))
        top = stats.loc[stats["dataset"] == ds, ["mean", "std"]].sum(axis=1).max()
        if lows and np.isfinite(min(lows)) and np.isfinite(top):
            pad = 0.05 * max(top - min(lows), 0.5)
            ax.set_ylim(min(lows) - pad, top + pad)
        ax.set_title(ds)
        ax.set_xlabel("queries")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("200-epoch test acc. of best-by-proxy (%)")
    return write_png(fig, path, dpi=120)


def _bars(ax, labels, means, stds, ylabel: str, title: str) -> None:
    x = np.arange(len(labels))
    bars = ax.bar(x, means, yerr=stds, capsize=4, color=[f"C{i % 10}" for i in x], alpha=0.85)
    ax.bar_label(bars, labels=[f"{m:,.1f}" for m in means], padding=2, fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)


def _labels(groups: pd.DataFrame, keys: list[str]) -> list[str]:
    """Method names, plus whichever other key (dataset, device) varies between the bars."""
    varying = [k for k in keys[1:] if groups[k].nunique() > 1]
    return [r[keys[0]] + "".join(f"\n{r[k]}" for k in varying) for _, r in groups.iterrows()]


def plot_memory(df: pd.DataFrame, path) -> Path:
    """Bars per method: memory on the left, wall time on the right (mean ± std).

    With training rows (table train: ``saved_bytes``): saved-for-backward MB per training
    step, plus the CUDA peak when recorded on GPU, and wall time per training run. With search
    summaries (table summary: ``peak_bytes``): mean peak memory per evaluation and search
    wall time per run; rows without a memory figure (table look-ups) are left out.
    """
    if df is not None and "saved_bytes" in df.columns:
        kind, keys = "train", ["method", "dataset", "device"]
        panels = [("saved_bytes", "saved-for-backward MB / step"), ("peak_cuda_bytes", "peak CUDA MB")]
        wall_title = "wall time per training run"
    else:
        kind, keys = "summary", ["method", "dataset", "benchmark", "device"]
        panels = [("peak_bytes", "peak memory MB / evaluation")]
        wall_title = "search wall time per run"
    _need(df, ("method", "wall_s", panels[0][0]), f"memory plot ({kind} rows)")
    d = df.assign(**{c: col(df, c) for c, _ in panels}, wall_s=col(df, "wall_s"))
    for k in keys:
        d[k] = d[k].astype(str) if k in d.columns else ""
    d = d[d[panels[0][0]].notna()]
    if d.empty:
        raise HarnessError(f"memory plot: no rows with a memory figure ({panels[0][0]})")
    agg = {}
    for c in [c for c, _ in panels] + ["wall_s"]:
        agg[f"{c}_mean"], agg[f"{c}_std"] = (c, "mean"), (c, _pstd)
    g = d.groupby(keys, sort=False).agg(**agg).reset_index()
    g = g.assign(_o=g["method"] != "original").sort_values(["_o", *keys], kind="stable").drop(columns="_o")
    labels = _labels(g, keys)
    panels = [p for p in panels if g[f"{p[0]}_mean"].notna().any()]  # no CUDA peak on CPU runs

    fig = Figure(figsize=(3.2 * (len(panels) + 1) + 0.6 * len(labels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    for ax, (c, title) in zip(axes, panels):
        _bars(ax, labels, g[f"{c}_mean"].to_numpy() / 1e6, g[f"{c}_std"].to_numpy() / 1e6, "MB", title)
    _bars(axes[-1], labels, g["wall_s_mean"].to_numpy(), g["wall_s_std"].to_numpy(), "seconds", wall_title)
    return write_png(fig, path, dpi=120)


def write_plots(results_dir: "str | Path") -> list[Path]:
    """``rea_anytime.png`` from the latest search batches and ``memory.png`` from the training
    runs (or, without any, the search summaries); a plot without data is skipped."""
    results_dir = Path(results_dir)
    res = read_results(results_dir, tables=("runs", "summary", "train"))
    summary, runs, _ = search_results(res)
    written = []
    if runs is not None:
        written.append(plot_anytime(runs, results_dir / ANYTIME))
    memory = res["train"]
    if memory is None and summary is not None and col(summary, "peak_bytes").notna().any():
        memory = summary
    if memory is not None:
        written.append(plot_memory(memory, results_dir / MEMORY))
    written += write_proxy_plot(results_dir)
    written += write_oneshot_plots(results_dir)
    return written

