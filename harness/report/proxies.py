"""The "Proxies" leaderboard section and its cost-vs-correlation plot, from the ``rank`` table.

One row per benchmark x dataset x proxy over random architectures (selections ``random-<n>`` and
``all-<n>``; top-k rows stay in the rank section): n, KROCC, SROCC (mean ± std over draws where
there are several), seconds per architecture (zero-cost proxies: measured alone, see
:mod:`harness.bench.kinds.rank_zero_cost`; trained proxies: a training run; table proxies: a look-up, no
cost shown), device, and the published Spearman's rho of Abdelfattah et al. (ICLR 2021, all
15,625 NB201 architectures, ground truth = the cifar10-valid run; :mod:`harness.report.reference`).

The plot ``proxies.png``: x = seconds per architecture (log scale), y = SROCC, one point per
proxy with a measured cost and dataset (latest batch; of the benchmark with the largest n where
several scored it), the Pareto front (no other proxy both
cheaper and better ranked) joined by a line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.reference import published_srocc
from harness.spaces import dataset_order
from harness.store.files import write_png
from harness.store.markdown import markdown_table, num, pm, seconds
from harness.store.tables import RANK_KEY, col, latest_batches, read_results, sort_preferred

PLOT = "proxies.png"


def proxy_rows(rank: "pd.DataFrame | None") -> "pd.DataFrame | None":
    """Latest-batch rank rows over random architectures, with numeric columns and a cost."""
    rank = latest_batches(rank, key=RANK_KEY)
    if rank is None or "selection" not in rank.columns:
        return None
    sel = rank["selection"].astype(str)
    r = rank[sel.str.startswith("random-") | sel.str.startswith("all-")]
    if r.empty:
        return None
    proxy = r["proxy"].astype(str)
    looked_up = ~(proxy.str.startswith("zc:") | proxy.str.contains(":"))
    cost = col(r, "wall_s").where(~looked_up)
    device = r["device"].astype(object) if "device" in r.columns else pd.Series(None, index=r.index, dtype=object)
    device = pd.Series(np.where(looked_up, "table look-up", device.where(device.notna(), "–")), index=r.index)
    bench = r["benchmark"].astype(str) if "benchmark" in r.columns else pd.Series("–", index=r.index)
    out = r.assign(krocc=col(r, "krocc"), srocc=col(r, "srocc"), krocc_std=col(r, "krocc_std"),
                   srocc_std=col(r, "srocc_std"), draws=col(r, "draws").fillna(1), n=col(r, "n"),
                   cost_s=cost, total=col(r, "total_s"), device=device, bench=bench)
    out = sort_preferred(out, {"bench": (), "dataset": dataset_order()})
    return out.sort_values(["bench", "dataset", "srocc"], ascending=[True, True, False], kind="stable",
                           key=lambda s: s.map({d: i for i, d in enumerate(dataset_order())}) if s.name == "dataset" else s)


def proxies_section(rank: "pd.DataFrame | None", plot: str = PLOT) -> str:
    """The section over the latest rank rows; ``plot``: the link to ``proxies.png``."""
    rows = proxy_rows(rank)
    if rows is None:
        return ""
    table = []
    for r in rows.itertuples(index=False):
        several = r.draws > 1
        ref = published_srocc(r.proxy, r.dataset)
        table.append([r.bench, r.dataset, r.proxy, r.selection, num(r.n, 0),
                      pm(r.krocc, r.krocc_std, 3) if several else num(r.krocc, 3),
                      pm(r.srocc, r.srocc_std, 3) if several else num(r.srocc, 3),
                      seconds(r.cost_s), seconds(r.total), r.device, num(ref, 3) if ref is not None else "–"])
    return "\n\n".join([
        "## Proxies: rank correlation vs cost per architecture",
        "Zero-cost proxies (`zc:`, Abdelfattah et al. ICLR 2021 protocol: one minibatch of 64 CIFAR-10 training "
        "images, default init, BN in training mode) next to table and trained proxies, against the 200-epoch "
        "test accuracy. Cost = seconds per architecture of the proxy alone (zero-cost: build + proxy, mean "
        "over the timed architectures); total = cost x n. Published = Spearman's rho over all 15,625 "
        "architectures from the reference code, against the cifar10-valid run's accuracy (a different ground "
        "truth). The published fisher is lower mainly because the reference scored networks with a bias on every "
        "cell convolution, which inflates fisher where a convolution reads an all-zero node "
        "(`harness.proxies.zero_cost`). Non-finite zero-cost values rank last.",
        markdown_table(["benchmark", "dataset", "proxy", "architectures", "n", "KROCC", "SROCC", "cost / arch",
                        "total", "device", "published SROCC"], table),
        f"![cost per architecture vs SROCC]({plot})"])


def pareto(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both (lower cost, higher score), by cost."""
    order = np.lexsort((-score, cost))
    front, best = [], -np.inf
    for i in order:
        if score[i] > best:
            front.append(i)
            best = score[i]
    return np.asarray(front, dtype=int)


def plot_points(rank: "pd.DataFrame | None") -> "pd.DataFrame | None":
    """The plotted rows: a measured cost and SROCC, one per proxy and dataset (the benchmark that
    scored it on the most architectures); None when there are none."""
    rows = proxy_rows(rank)
    if rows is None:
        return None
    rows = rows[rows["cost_s"].notna() & (rows["cost_s"] > 0) & rows["srocc"].notna()]
    rows = rows.sort_values("n", ascending=False, kind="stable").drop_duplicates(["dataset", "proxy"])
    return None if rows.empty else rows


def plot_proxies(rank: "pd.DataFrame | None", path) -> "Path | None":
    """Cost per architecture (log x) vs SROCC, one panel per dataset; None when no proxy has a cost."""
    rows = plot_points(rank)
    if rows is None:
        return None
    datasets = [d for d in dataset_order() if d in set(rows["dataset"])] + \
        sorted(set(rows["dataset"]) - set(dataset_order()))
    fig = Figure(figsize=(5.2 * len(datasets) + 0.4, 4.2), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, ds in zip(axes, datasets):
        d = rows[rows["dataset"] == ds]
        cost, score = d["cost_s"].to_numpy(float), d["srocc"].to_numpy(float)
        ax.scatter(cost, score, color="C0", zorder=3)
        for c, s, name in zip(cost, score, d["proxy"]):
            ax.annotate(str(name), (c, s), textcoords="offset points", xytext=(4, 3), fontsize=7)
        front = pareto(cost, score)
        ax.plot(cost[front], score[front], color="C3", linewidth=1.2, zorder=2, label="Pareto front")
        ax.scatter(cost[front], score[front], facecolors="none", edgecolors="C3", s=90, zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel("seconds per architecture (log)")
        ax.set_title(f"{ds} (n = {', '.join(sorted({str(int(n)) for n in d['n']}))})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("SROCC vs 200-epoch test accuracy")
    return write_png(fig, path, dpi=120)


def write_proxy_plot(results_dir: "str | Path") -> list[Path]:
    """``proxies.png`` in ``results_dir`` from its rank table ([] when there is nothing to plot)."""
    results_dir = Path(results_dir)
    path = plot_proxies(read_results(results_dir, tables=("rank",))["rank"], results_dir / PLOT)
    return [path] if path is not None else []
