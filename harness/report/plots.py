"""Result plots: anytime search curves (paper Fig. 4 bottom) and memory / time bars (Fig. 4 top).

Drawn with matplotlib's object API on the Agg canvas (no pyplot global state) and written
atomically through :func:`harness.store.files.write_png`. Bands and error bars are
mean ± population std (ddof 0) over seeds or runs, as in the leaderboard, and each figure says
over what; only results of one benchmark share an axis. Rows come from the
results store through :mod:`harness.store.tables`; :mod:`harness.search.summary` defines the best-by-proxy rule the
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
from harness.search.summary import anytime_curves, search_results
from harness.spaces import dataset_order
from harness.store.files import write_png
from harness.store.tables import SAMPLER_ORDER, col, latest_batches, order_values, read_results

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


def _grid(n_rows: int, n_cols: int, width: float, height: float):
    fig = Figure(figsize=(width * n_cols + 0.4, height * n_rows + 0.5), layout="constrained")
    return fig, fig.subplots(n_rows, n_cols, squeeze=False)


def plot_anytime(runs_df: pd.DataFrame, path) -> Path:
    """:func:`anytime_figure` written to ``path``."""
    return write_png(anytime_figure(runs_df), path, dpi=120)


def anytime_figure(runs_df: pd.DataFrame) -> Figure:
    """Anytime curves: x = queries, y = 200-epoch test accuracy of the best-by-proxy architecture so
    far; mean ± std band over seeds. One panel per benchmark and dataset (a row per benchmark):
    only the curves of one benchmark -- same budget, seeds and kind of evaluation -- share an
    axis, so a 1-seed smoke run of real training is never drawn against 10-seed table curves.
    Runs without a ground truth (a space with no tabular benchmark) have no curve.

    The y axis starts at the band's lowest point after the first 10% of the queries, so the
    converged part stays readable (the first few queries fall below the frame).
    """
    _need(runs_df, ("run_id", "dataset", *_LINE_KEY, "trial", "proxy", "ground_truth"), "anytime plot")
    curves = anytime_curves(runs_df)
    stats = curves.groupby(["dataset", *_LINE_KEY, "query"], sort=False)["best_truth"].agg(
        mean="mean", std=_pstd, seeds="size").reset_index()
    stats = stats[stats.groupby(["dataset", *_LINE_KEY])["mean"].transform(lambda m: m.notna().any())]
    if stats.empty:
        raise HarnessError("anytime plot: no run has a ground truth to plot")
    benchmarks = sorted(stats["benchmark"].unique())
    panels = {b: order_values(stats.loc[stats["benchmark"] == b, "dataset"], dataset_order()) for b in benchmarks}
    fig, axes = _grid(len(benchmarks), max(len(d) for d in panels.values()), 4.6, 3.6)
    for row, bench in zip(axes, benchmarks):
        for ax in row[len(panels[bench]):]:
            ax.set_visible(False)
        for ax, ds in zip(row, panels[bench]):
            _anytime_panel(ax, stats[(stats["benchmark"] == bench) & (stats["dataset"] == ds)], f"{ds} · {bench}")
        row[0].set_ylabel("200-epoch test acc.\nof best-by-proxy (%)")
    fig.suptitle("mean ± std over seeds (band); one benchmark per row: curves share an axis only within a "
                 "benchmark", fontsize=9)
    return fig


def _anytime_panel(ax, stats: pd.DataFrame, title: str) -> None:
    # Stable colours: Original first, then REA / random / TPE.
    lines = sorted({tuple(k) for k in stats[["method", "sampler"]].to_numpy()},
                   key=lambda k: (k[0] != "original", k[0],
                                  SAMPLER_ORDER.index(k[1]) if k[1] in SAMPLER_ORDER else len(SAMPLER_ORDER), k[1]))
    lows = []
    for i, (method, sampler) in enumerate(lines):
        s = stats[(stats["method"] == method) & (stats["sampler"] == sampler)]
        n = int(s["seeds"].max())
        label = f"{sampler} · {method} ({n} seed{'s' if n != 1 else ''}{': no band' if n == 1 else ''})"
        x, m, sd = s["query"].to_numpy(), s["mean"].to_numpy(), s["std"].to_numpy()
        ax.plot(x, m, color=f"C{i % 10}", label=label, linewidth=1.6)
        ax.fill_between(x, m - sd, m + sd, color=f"C{i % 10}", alpha=0.18, linewidth=0)
        lows.append(np.nanmin((m - sd)[x >= max(1, int(np.ceil(0.1 * x.max())))]))
    top = stats[["mean", "std"]].sum(axis=1).max()
    if lows and np.isfinite(min(lows)) and np.isfinite(top):
        pad = 0.05 * max(top - min(lows), 0.5)
        ax.set_ylim(min(lows) - pad, top + pad)
    ax.set_title(f"{title}\n{int(stats['query'].max())} queries", fontsize=10)
    ax.set_xlabel("queries")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def _bars(ax, labels, means, stds, ylabel: str, title: str) -> None:
    x = np.arange(len(labels))
    # Whiskers: ± std, the lower one clipped at 0 (a spread across architectures, not a negative size).
    bars = ax.bar(x, means, yerr=[np.minimum(stds, means), stds], capsize=4, color=[f"C{i % 10}" for i in x],
                  alpha=0.85)
    ax.bar_label(bars, labels=[f"{m:,.1f}" for m in means], padding=2, fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)


def _labels(groups: pd.DataFrame, keys: list[str], unit: str) -> list[str]:
    """Method names, plus whichever other key (epochs, dataset, device) varies between the bars,
    and how many runs each bar averages."""
    varying = [k for k in keys[1:] if groups[k].nunique() > 1]
    fmt = {"epochs": "{} epochs"}
    return [r[keys[0]] + "".join(f"\n{fmt.get(k, '{}').format(r[k])}" for k in varying) + f"\nn = {r['n']} {unit}"
            for _, r in groups.iterrows()]


def plot_memory(df: pd.DataFrame, path) -> Path:
    """:func:`memory_figure` written to ``path``."""
    return write_png(memory_figure(df), path, dpi=120)


def memory_figure(df: pd.DataFrame) -> Figure:
    """Bars per method, one column of panels per benchmark (bars are compared within a benchmark
    only): memory on top, wall time below; mean ± std over the ``n`` runs under each bar.

    With training rows (table train: ``saved_bytes``): saved-for-backward MB per training step,
    plus the CUDA peak when recorded on GPU, and wall time per training run; n counts training
    runs (different architectures, so the whisker is the spread between architectures), and
    methods trained for different numbers of epochs say so. With search summaries (table summary:
    ``peak_bytes``): mean peak memory per evaluation and search wall time per run (n = seeds);
    rows without a memory figure (table look-ups) are left out. Each benchmark's latest batch.
    """
    if df is not None and "saved_bytes" in df.columns:
        kind, keys, unit = "train", ["method", "epochs", "dataset", "device"], "runs"
        panels = [("saved_bytes", "saved-for-backward MB / step"), ("peak_cuda_bytes", "peak CUDA MB")]
        wall_title = "wall time per training run (s)"
    else:
        kind, keys, unit = "summary", ["method", "dataset", "device"], "seeds"
        panels = [("peak_bytes", "peak memory MB / evaluation")]
        wall_title = "search wall time per run (s)"
    _need(df, ("method", "wall_s", panels[0][0]), f"memory plot ({kind} rows)")
    d = latest_batches(df.assign(**{c: col(df, c) for c, _ in panels}, wall_s=col(df, "wall_s")))
    bench = d["benchmark"] if "benchmark" in d.columns else pd.Series(None, index=d.index, dtype=object)
    d = d.assign(benchmark=bench.astype(object).where(bench.notna(), "(no benchmark recorded)").astype(str))
    for k in keys:
        d[k] = d[k].astype(str) if k in d.columns else ""
    d = d[d[panels[0][0]].notna()]
    if d.empty:
        raise HarnessError(f"memory plot: no rows with a memory figure ({panels[0][0]})")
    agg = {"n": ("wall_s", "size")}
    for c in [c for c, _ in panels] + ["wall_s"]:
        agg[f"{c}_mean"], agg[f"{c}_std"] = (c, "mean"), (c, _pstd)
    g = d.groupby(["benchmark", *keys], sort=False).agg(**agg).reset_index()
    g = g.assign(_o=g["method"] != "original").sort_values(["benchmark", "_o", *keys], kind="stable").drop(columns="_o")
    panels = [p for p in panels if g[f"{p[0]}_mean"].notna().any()] + [("wall_s", wall_title)]  # no CUDA peak on CPU

    benchmarks = list(dict.fromkeys(g["benchmark"]))
    width = max(3.2, 1.1 * g.groupby("benchmark").size().max() + 1.2)
    fig, axes = _grid(len(panels), len(benchmarks), width, 3.0)
    for j, bench in enumerate(benchmarks):
        b = g[g["benchmark"] == bench]
        labels = _labels(b, keys, unit)
        for i, (c, title) in enumerate(panels):
            scale = 1e6 if c != "wall_s" else 1.0
            epochs_differ = kind == "train" and b["epochs"].nunique() > 1
            head = f"{bench}{' (epochs differ)' if epochs_differ else ''}\n" if i == 0 else ""
            _bars(axes[i][j], labels, b[f"{c}_mean"].to_numpy() / scale, b[f"{c}_std"].to_numpy() / scale,
                  "MB" if c != "wall_s" else "seconds", head + title)
    over = "training runs of each bar (each a different architecture" if kind == "train" else "seeds of each bar ("
    fig.suptitle(f"mean ± std over the n {over}; whiskers clipped at 0); compare bars within a column", fontsize=9)
    return fig


def write_plots(results_dir: "str | Path") -> list[Path]:
    """``rea_anytime.png`` from the latest search batches and ``memory.png`` from the training
    runs (or, without any, the search summaries); a plot without data is skipped."""
    results_dir = Path(results_dir)
    res = read_results(results_dir, tables=("runs", "summary", "train"))
    summary, runs, _ = search_results(res)
    written = []
    if runs is not None and col(runs, "ground_truth").notna().any():
        written.append(plot_anytime(runs, results_dir / ANYTIME))
    memory = res["train"]
    if memory is None and summary is not None and col(summary, "peak_bytes").notna().any():
        memory = summary
    if memory is not None:
        written.append(plot_memory(memory, results_dir / MEMORY))
    written += write_proxy_plot(results_dir)
    written += write_oneshot_plots(results_dir)
    return written

