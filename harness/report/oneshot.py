"""The one-shot (DARTS+PT, DARTS) leaderboard section and plots (TR-NAS paper Table 4, Figs. 6 and 9).

Section: per benchmark x dataset x method x supernet (x warmup x cutout when a benchmark sweeps
them; a method column when the rows hold several methods, grouped by method), the found cell's
200-epoch test accuracy (mean ± population std over seeds), search time split into supernet
training and selection, bytes saved for backward in one search step and the CUDA peak, the last
Hessian eigenvalue, with the paper's figure beside it -- Table 4's accuracy on NB201, Table 5's
test error, search cost and GPU memory on the DARTS space; both are DARTS+PT's, so other methods'
rows have none. A space without a table (DARTS) has no accuracy for the found cell -- it would need
its own evaluation training -- and the row says so; its genotypes, too long for a cell, are listed
under the table. Only each benchmark's latest batch.

Plots: ``oneshot_memory.png`` (Fig. 6 style: saved-for-backward bytes, and CUDA peak where
measured, per supernet and dataset: a search step is the same for every method) and
``oneshot_eigenvalues.png`` (Fig. 9 style: the dominant Hessian eigenvalue per epoch, one panel per
supernet, one line per run, named by method when there are several).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.reference import DARTSPT_TABLE4, DARTSPT_TABLE5
from harness.spaces import dataset_order
from harness.store.files import write_png
from harness.store.markdown import markdown_table, mb, num, pm, seconds
from harness.store.tables import latest_batches, order_values, read_results

MEMORY_PLOT = "oneshot_memory.png"
EIGEN_PLOT = "oneshot_eigenvalues.png"
_KEY = ["benchmark", "dataset", "method", "supernet", "warmup_epochs", "cutout"]
#: The method the paper's Tables 4 and 5 report; rows without a method column are its.
PAPER_METHOD = "DARTS+PT"
SHORT_ARCH = 120  # longer genotypes (DARTS: ~400 characters; NB201 at most 93) are listed under the table


def _supernet_order(values) -> list:
    return sorted(set(values), key=lambda s: (s != "original", len(s), s))


def _with_method(rows: pd.DataFrame) -> pd.DataFrame:
    method = rows["method"] if "method" in rows else pd.Series(None, index=rows.index, dtype=object)
    return rows.assign(method=method.where(method.notna(), PAPER_METHOD).astype(str))


def _method_order(values) -> list:
    return order_values(values, (PAPER_METHOD,))


def _paper(space: str, supernet: str, dataset: str, cutout: int) -> str:
    """Table 4's accuracy (NB201), or Table 5's error / search cost / memory (DARTS space, CIFAR-10)."""
    if space == "darts":
        t5 = DARTSPT_TABLE5.get(supernet, {}).get("cutout" if cutout else "no_cutout")
        if t5 is None or dataset != "cifar10":
            return "–"
        return (f"T5: err {t5['error']:.2f} (best {t5['best']:.2f}), {t5['gpu_days']:.2f} GPU-d, "
                f"{t5['memory_gb']:.2f} GB")
    value = DARTSPT_TABLE4.get(supernet, {}).get(dataset)
    return f"T4: {num(value)}" if value is not None else "–"


def _accuracy(g: pd.DataFrame) -> str:
    acc = g["test_acc"].astype(float)
    if acc.notna().any():
        return pm(acc.mean(), acc.std(ddof=0))
    return f"unknown (no {g['space'].iloc[0]} table)" if "space" in g else "unknown"


def oneshot_section(rows: "pd.DataFrame | None") -> str:
    rows = latest_batches(rows)
    if rows is None or len(rows) == 0:
        return ""
    rows = _with_method(rows)
    methods = _method_order(rows["method"])
    several = len(methods) > 1
    table, long_archs = [], []
    for key, g in rows.groupby(_KEY, sort=False, dropna=False):
        bench, ds, method, supernet, warmup, cutout = key
        named = [method] if several else []
        space = str(g["space"].iloc[0]) if "space" in g else "nb201"
        cuda = g["cuda_peak_bytes"].astype(float) if "cuda_peak_bytes" in g else pd.Series([np.nan])
        archs = sorted(set(g["arch_str"]))
        if max(map(len, archs)) > SHORT_ARCH:
            where = " / ".join([bench, ds, *named, supernet])
            long_archs += [f"{where} w{int(warmup)} c{int(cutout)}: `{a}`" for a in archs]
            cells = f"{len(archs)} genotype(s), below"
        else:
            cells = " / ".join(archs)[:200] if len(g) <= 2 else f"{len(archs)} cells"
        order = (bench, dataset_order().index(ds) if ds in dataset_order() else 99, methods.index(method),
                 _supernet_order(rows["supernet"]).index(supernet), int(warmup), int(cutout))
        table.append((order, [
            bench, ds, *named, supernet, int(warmup), int(cutout), len(g), _accuracy(g),
            _paper(space, supernet, ds, int(cutout)) if method == PAPER_METHOD else "–", cells,
            seconds(g["search_s"].mean()), seconds(g["train_s"].mean()), seconds(g["select_s"].mean()),
            seconds(g["epoch_s"].mean()), mb(g["saved_bytes"].astype(float).mean()),
            mb(cuda.mean()) if cuda.notna().any() else "–", num(g["final_eig"].astype(float).mean(), 3),
            str(g["device"].iloc[0])]))
    table.sort(key=lambda t: t[0])
    body = markdown_table(["benchmark", "dataset", *(["method"] if several else []), "supernet", "warmup", "cutout",
                           "seeds", "test acc", "paper", "found cell(s)", "search", "supernet training", "selection",
                           "s / epoch", "saved for backward", "CUDA peak", "last eig", "device"],
                          [t[1] for t in table])
    ratios = []
    for (bench, ds, method), g in rows.groupby(["benchmark", "dataset", "method"], sort=False):
        by = g.groupby("supernet")
        if "original" in by.groups:
            for s in _supernet_order(g["supernet"]):
                if s != "original":
                    o, t = by.get_group("original"), by.get_group(s)
                    ratios.append(f"{bench} / {ds}{' / ' + method if several else ''}: original / {s}: saved bytes "
                                  f"{o['saved_bytes'].mean() / t['saved_bytes'].mean():.2f}x, search time "
                                  f"{o['search_s'].mean() / t['search_s'].mean():.2f}x")
    notes = ("Test acc = the found cell's 200-epoch NB201 test accuracy (mean ± std over seeds); the DARTS "
             "space has no table, so its found cells' accuracy is unknown (each would need its own "
             "evaluation training). Times are wall seconds (search = supernet training + selection, i.e. PT "
             "measurements and tuning; Hessian time excluded); saved for backward = one search step at the "
             "search batch size. Paper: T4 = Table 4's NB201 test accuracy; T5 = Table 5's DARTS-space test "
             "error (%, mean and best of 4 seeds, after the paper's own evaluation training), search cost and "
             "GPU memory. Fig. 6: 2.2x less memory, Fig. 5: 1.98x faster on CIFAR-10/100; Table 5: 1.6x less "
             "memory on the DARTS space.")
    if methods != [PAPER_METHOD]:
        notes += (" The paper's figures are DARTS+PT's. DARTS = the same supernet training, then each edge's op of "
                  "largest alpha (Liu et al. 2019): its selection takes no measurements and no tuning epochs.")
    out = [f"## One-shot search: {' vs '.join(methods)}, Original supernet vs Tr-Supernet", notes, body]
    if ratios:
        out.append("\n".join(f"- {r}" for r in ratios))
    if long_archs:
        out.append("Found genotypes:\n\n" + "\n".join(f"- {a}" for a in long_archs))
    return "\n\n".join(out)


def plot_oneshot_memory(rows: pd.DataFrame, path) -> Path:
    """Bars per (space, dataset) group: an NB201 and a DARTS-space supernet never share a bar."""
    rows = _with_method(rows).assign(space=rows["space"] if "space" in rows else "nb201")
    methods = " / ".join(_method_order(rows["method"]))
    spaces = sorted(set(rows["space"]), key=lambda sp: (sp != "nb201", sp))
    groups = [(sp, d) for sp in spaces for d in order_values(rows[rows["space"] == sp]["dataset"], dataset_order())]
    labels = [d if len(spaces) == 1 else f"{d}\n({sp})" for sp, d in groups]
    supernets = _supernet_order(rows["supernet"])
    has_cuda = "cuda_peak_bytes" in rows and rows["cuda_peak_bytes"].astype(float).notna().any()
    figures = [("saved_bytes", "saved for backward")] + ([("cuda_peak_bytes", "CUDA peak")] if has_cuda else [])
    fig = Figure(figsize=(4.2 * len(figures) + 0.4, 3.6), layout="constrained")
    axes = fig.subplots(1, len(figures), squeeze=False)[0]
    width = 0.8 / len(supernets)
    for ax, (column, title) in zip(axes, figures):
        for k, s in enumerate(supernets):
            means = [rows[(rows["space"] == sp) & (rows["dataset"] == d) & (rows["supernet"] == s)][column]
                     .astype(float).mean() / 1e6 for sp, d in groups]
            ax.bar(np.arange(len(groups)) + k * width, np.nan_to_num(means), width, label=s, color=f"C{k}")
        ax.set_xticks(np.arange(len(groups)) + width * (len(supernets) - 1) / 2, labels)
        ax.set_ylabel("MB")
        ax.set_title(f"{methods} supernet: {title}")
        ax.legend(fontsize=8)
    return write_png(fig, path)


def plot_oneshot_eigenvalues(epochs: pd.DataFrame, path) -> Path:
    """``epochs`` with a ``method`` column where the runs' rows give one (a line is named by it when
    there are several)."""
    epochs = _with_method(epochs[epochs["eig"].astype(float).notna()])
    supernets = _supernet_order(epochs["supernet"])
    fig = Figure(figsize=(4.2 * len(supernets) + 0.4, 3.4), layout="constrained")
    axes = fig.subplots(1, len(supernets), squeeze=False)[0]
    for ax, s in zip(axes, supernets):
        g = epochs[epochs["supernet"] == s]
        for k, (run, r) in enumerate(g.groupby("run_id", sort=False)):
            r = r.assign(step=np.where(r["phase"] == "tune", r["epoch"] + g[g["phase"] == "search"]["epoch"].max() + 1,
                                       r["epoch"]))
            label = (f"{r['benchmark'].iloc[0] + ' ' if g['benchmark'].nunique() > 1 else ''}"
                     f"{r['method'].iloc[0] + ' ' if epochs['method'].nunique() > 1 else ''}{r['dataset'].iloc[0]} "
                     f"w{int(r['warmup_epochs'].iloc[0])} c{int(r['cutout'].iloc[0])} s{int(r['seed'].iloc[0])}")
            ax.plot(r["step"] + 1, r["eig"], marker="o", ms=3, color=f"C{k % 10}", label=label)
        ax.set_title(s)
        ax.set_xlabel("epoch (search, then tuning)")
        ax.set_ylabel("dominant eigenvalue of the alpha Hessian")
        ax.legend(fontsize=7)
    return write_png(fig, path)


def write_oneshot_plots(results_dir: "str | Path") -> list[Path]:
    """Both plots from the latest one-shot batches; none without rows."""
    results_dir = Path(results_dir)
    res = read_results(results_dir, tables=("oneshot", "oneshot_epochs"))
    rows, epochs = latest_batches(res["oneshot"]), latest_batches(res["oneshot_epochs"])
    written = []
    if rows is not None:
        written.append(plot_oneshot_memory(rows, results_dir / MEMORY_PLOT))
    if epochs is not None and epochs["eig"].astype(float).notna().any():
        if rows is not None and "method" in rows:  # oneshot_epochs rows name their run, not its method
            epochs = epochs.assign(method=epochs["run_id"].map(dict(zip(rows["run_id"], rows["method"]))))
        written.append(plot_oneshot_eigenvalues(epochs, results_dir / EIGEN_PLOT))
    return written
