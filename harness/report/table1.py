"""The paper's Table 1 as measured by a ``rank`` benchmark that trains Original and a Tr-Net on the
same random architectures (e.g. ``benchmarks/nb201-table1-cpu.toml``): one markdown table beside
the paper's columns, a scatter plot and the bootstrap distribution of the paired difference.

Everything comes from one benchmark's latest batch: the rank rows (KROCC / SROCC with their 95%
intervals), its ``rank_pairs`` rows (Tr-Net minus Original, paired over architectures), and the
training rows of the architectures it ranked (cost: total training seconds, saved-for-backward
bytes, peak RSS; the backbone's pre-training seconds from its checkpoint metadata, shown apart and
amortised over the architectures). Rows a resumed run replayed (``recorded:``) count with the cost
they had when they were trained.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness import HarnessError
from harness.proxies.settings import TRAIN_DATASET
from harness.report.reference import PAPER_MEMORY, PAPER_RANK
from harness.report.table1_ablation import CELLS, ablation, ablation_appendix
from harness.stats import LEVEL, RESAMPLES, paired_rank_difference
from harness.store.files import write_png, write_text
from harness.store.markdown import markdown_table
from harness.store.tables import col, latest_batches, read_results
from harness.tabular.nb201 import NB201Table

ORIGINAL, TRNET = "original", "tr-net-5-5"
#: Architecture counts the report extrapolates the interval width to (an interval shrinks like 1/sqrt(N)).
SCALE_N = (40, 100, 200, 1000)


def _method(proxy: str) -> str:
    return proxy.partition(":")[2]


def _batch_rows(res: dict, benchmark: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    rank = latest_batches(res["rank"])
    rank = rank[rank["benchmark"] == benchmark] if rank is not None else None
    if rank is None or rank.empty:
        raise HarnessError(f"table 1 report: no rank rows of benchmark {benchmark!r}; run it first "
                           f"(`harness bench benchmarks/{benchmark}.toml`)")
    batch = rank["batch_id"].iloc[-1]
    pairs = res["rank_pairs"]
    pairs = pairs[pairs["batch_id"] == batch] if pairs is not None else pd.DataFrame()
    config = json.loads(rank["config"].iloc[-1])
    return rank, pairs, config


def trained_rows(train: "pd.DataFrame | None", benchmark: str, config: dict, dataset: str) -> pd.DataFrame:
    """The training rows of the architectures the batch ranked: the latest row per (architecture,
    method) of this benchmark on its data, restricted to the random draw its config names. A cell
    that declares ``ablation_of`` replayed the methods it did not change (it trained none of them):
    their rows are the ablated definition's."""
    if train is None:
        raise HarnessError(f"table 1 report: the train table is empty (benchmark {benchmark!r})")
    archs = selected_archs(config)
    images = config["train"].get("dataset") or TRAIN_DATASET.get(dataset, dataset)
    t = train[train["arch_index"].isin(archs) & (train["dataset"] == images)]
    limits = config["train"].get("limits", {})
    if "train" in limits:
        t = t[t["n_train"] == limits["train"]]
    own = t[t["benchmark"] == benchmark]
    if config.get("ablation_of"):
        own = pd.concat([own, t[(t["benchmark"] == config["ablation_of"]) & ~t["method"].isin(set(own["method"]))]])
    return own.drop_duplicates(subset=["arch_index", "method"], keep="last").sort_values("arch_index")


def selected_archs(config: dict) -> np.ndarray:
    """The architectures a rank batch's config trains (kind ``rank``'s ``trained_selections``)."""
    rng = np.random.default_rng(config["seed"])
    if "ordered" in config.get("train_selections", ()):
        return rng.permutation(15625)[:config["train"]["archs"]]
    return rng.choice(15625, size=config["train"]["archs"], replace=False)


def _fmt(v: float, digits: int = 4) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _iv(est: float, lo: float, hi: float, digits: int = 3) -> str:
    if not np.isfinite(est):
        return "–"
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(lo) else f"{est:.{digits}f}"


def table1_report(results_dir: "str | Path", benchmark: str) -> tuple[str, dict]:
    """(markdown, figures) of ``benchmark``'s latest batch; figures are the numbers the text shows."""
    res = read_results(results_dir, ("rank", "rank_pairs", "train"))
    rank, pairs, config = _batch_rows(res, benchmark)
    dataset = config["datasets"][0]
    t = trained_rows(res["train"], benchmark, config, dataset)
    by = {m: t[t["method"] == m] for m in (ORIGINAL, TRNET)}
    both = set(by[ORIGINAL]["arch_index"]) & set(by[TRNET]["arch_index"])
    by = {m: g[g["arch_index"].isin(both)] for m, g in by.items()}
    n = len(both)  # all of train.archs, or those trained before a run's stop time
    trained = rank[rank["selection"] == f"all-{n}"].set_index("proxy")
    if trained.empty:
        raise HarnessError(f"table 1 report: {benchmark!r} has rows of both methods for {n} architectures (its own, "
                           f"or for a method an `ablation_of` cell replayed, the ablated definition's) but its latest "
                           f"batch ranked others; rerun it to rank them")
    pair = pairs[(pairs["selection"] == f"all-{n}") & (pairs["proxy"].map(_method) == TRNET)] if len(pairs) else pairs
    if pair is None or pair.empty:
        raise HarnessError(f"table 1 report: {benchmark!r} has no paired Tr-Net minus Original row")
    pair = pair.iloc[-1]
    proxies = {m: next(p for p in trained.index if _method(p) == m) for m in (ORIGINAL, TRNET)}
    wall = {m: col(g, "wall_s").sum() for m, g in by.items()}
    saved = {m: col(g, "saved_bytes").mean() for m, g in by.items()}
    rss = {m: col(g, "peak_rss_bytes").max() for m, g in by.items()}
    backbone = json.loads(by[TRNET]["backbone_meta"].iloc[0]) if "backbone_meta" in by[TRNET] else {}
    bb_s = float(backbone.get("wall_s", np.nan))
    ref = {m: PAPER_RANK[("Table 1", name)][dataset] for m, name in ((ORIGINAL, "Original"), (TRNET, "Tr-Net-5-5"))}
    figures = {"n": n, "wall_ratio": wall[TRNET] / wall[ORIGINAL], "saved_ratio": saved[ORIGINAL] / saved[TRNET],
               "krocc_diff": float(pair["krocc_diff"]), "krocc_diff_lo": float(pair["krocc_diff_lo"]),
               "krocc_diff_hi": float(pair["krocc_diff_hi"]), "krocc_p": float(pair["krocc_p"]),
               **{f"{m}_{k}": float(trained.loc[proxies[m], k]) for m in proxies
                  for k in ("krocc", "krocc_lo", "krocc_hi", "srocc", "srocc_lo", "srocc_hi")}}

    def corr(m: str, k: str) -> str:
        r = trained.loc[proxies[m]]
        return _iv(r[k], r[f"{k}_lo"], r[f"{k}_hi"])

    rows = [
        ["KROCC, Original (12 epochs)", _fmt(ref[ORIGINAL][0]), corr(ORIGINAL, "krocc")],
        ["KROCC, Tr-Net-5-5 (18 epochs, 13 warmup)", _fmt(ref[TRNET][0]), corr(TRNET, "krocc")],
        ["KROCC gain, Tr-Net-5-5 − Original (paired)", _fmt(ref[TRNET][0] - ref[ORIGINAL][0]),
         f"{_iv(pair['krocc_diff'], pair['krocc_diff_lo'], pair['krocc_diff_hi'])}, p = {pair['krocc_p']:.3f}"],
        ["SROCC, Original", _fmt(ref[ORIGINAL][1]), corr(ORIGINAL, "srocc")],
        ["SROCC, Tr-Net-5-5", _fmt(ref[TRNET][1]), corr(TRNET, "srocc")],
        ["SROCC gain (paired)", _fmt(ref[TRNET][1] - ref[ORIGINAL][1]),
         f"{_iv(pair['srocc_diff'], pair['srocc_diff_lo'], pair['srocc_diff_hi'])}, p = {pair['srocc_p']:.3f}"],
        ["verdict (KROCC)", "Tr-Net-5-5 better", str(pair["verdict"])],
        ["training time, Tr-Net-5-5 / Original (sum over the architectures)", "< 1 (Sec. 4.1)",
         f"{figures['wall_ratio']:.3f} ({wall[TRNET]:.0f} s / {wall[ORIGINAL]:.0f} s)"],
        ["backbone pre-training (once), amortised per architecture", "–",
         f"{bb_s:.0f} s, {bb_s / n:.1f} s per architecture ({backbone.get('epochs', '?')} epochs on "
         f"{backbone.get('n_train', '?')} {backbone.get('dataset', '?')} train images, val {backbone.get('val_acc', float('nan')):.1f}%)"],
        [f"saved-for-backward bytes of one training step, Original / Tr-Net-5-5 (batch {config['train'].get('batch_size', 256)})",
         f"{PAPER_MEMORY['original_gb'] / PAPER_MEMORY['trnet_5_5_gb']:.2f} (Table 2, GPU memory)",
         f"{figures['saved_ratio']:.2f} ({saved[ORIGINAL] / 1e6:.0f} MB / {saved[TRNET] / 1e6:.0f} MB)"],
        ["peak RSS of one training run, Original / Tr-Net-5-5", "–",
         f"{rss[ORIGINAL] / 1e6:.0f} MB / {rss[TRNET] / 1e6:.0f} MB"],
    ]
    half = (pair["krocc_diff_hi"] - pair["krocc_diff_lo"]) / 2
    figures["diff_half_width"] = {N: half * np.sqrt(n / N) for N in SCALE_N}
    rows.append(["95% half-width of the KROCC gain at N architectures (this run's, scaled by sqrt(n / N))", "–",
                 ", ".join(f"N = {N}: ±{w:.3f}" for N, w in figures["diff_half_width"].items())])
    for p in trained.index:
        if not p.startswith(("train:", "recorded:")):  # e.g. NB201's own 12-epoch training of these architectures
            rows.append([f"reference: table proxy `{p}` on the same architectures", "–", corr_row(trained.loc[p])])
    tr = by[TRNET].iloc[0]
    head = [f"# Table 1 on this machine: Original vs Tr-Net-5-5 on {n} random NB201 architectures ({dataset})",
            f"Benchmark `{benchmark}`, batch `{rank['batch_id'].iloc[-1]}`, commit `{rank['commit'].iloc[-1]}`, "
            f"device `{tr['device']}`. Candidates: {int(tr['n_train'])} train / {int(tr['n_valid'])} valid images of "
            f"{tr['dataset']} ({tr['data_source']}); ground truth: NB201 200-epoch test accuracy (seed mean). "
            f"Intervals: {LEVEL:.0%} bootstrap over the architectures ({int(trained['ci_resamples'].iloc[0])} resamples, "
            "percentile); the gain is paired (both methods resampled on the same architectures), its p-value two-sided.",
            markdown_table(["", "paper Table 1 (1000 archs, GPU)", "this run"], rows)]
    return "\n\n".join(head) + "\n", figures


def corr_row(r: pd.Series) -> str:
    return f"KROCC {_iv(r['krocc'], r['krocc_lo'], r['krocc_hi'])}, SROCC {_iv(r['srocc'], r['srocc_lo'], r['srocc_hi'])}"


def table1_plots(results_dir: "str | Path", benchmark: str, out_prefix: str) -> list[Path]:
    """``<prefix>_scatter.png`` (validation accuracy vs ground truth, both methods) and
    ``<prefix>_difference.png`` (bootstrap distribution of Tr-Net minus Original KROCC)."""
    results_dir = Path(results_dir)
    res = read_results(results_dir, ("rank", "rank_pairs", "train"))
    rank, _, config = _batch_rows(res, benchmark)
    dataset = config["datasets"][0]
    t = trained_rows(res["train"], benchmark, config, dataset)
    truth = NB201Table.load().ground_truth(dataset)
    by = {m: t[t["method"] == m].assign(arch_index=lambda d: d["arch_index"].astype(int)).set_index("arch_index")
          for m in (ORIGINAL, TRNET)}
    archs = sorted(int(a) for a in set(by[ORIGINAL].index) & set(by[TRNET].index))
    if len(archs) < 2:
        raise HarnessError(f"table 1 plots: {benchmark!r} has fewer than 2 architectures trained by both methods")
    gt = truth[archs]
    fig = Figure(figsize=(10, 4.2))
    for k, (m, label) in enumerate(((ORIGINAL, "Original (12 epochs)"), (TRNET, "Tr-Net-5-5 (18 epochs)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        val = by[m].loc[archs, "val_acc"].to_numpy(dtype=float)
        r = rank[(rank["selection"] == f"all-{len(archs)}") & (rank["proxy"].map(_method) == m)]
        tau = f", KROCC {r['krocc'].iloc[-1]:.3f} [{r['krocc_lo'].iloc[-1]:.3f}, {r['krocc_hi'].iloc[-1]:.3f}]" \
            if len(r) else ""
        ax.scatter(gt, val, s=14, color=("tab:blue", "tab:orange")[k])
        ax.set_xlabel("NB201 200-epoch test accuracy (%)")
        ax.set_ylabel("validation accuracy after proxy training (%)")
        ax.set_title(f"{label}{tau}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{benchmark}: {len(archs)} random architectures, {dataset}", fontsize=10)
    fig.tight_layout()
    paths = [write_png(fig, results_dir / f"{out_prefix}_scatter.png")]
    d = paired_rank_difference(by[TRNET].loc[archs, "val_acc"].to_numpy(float), by[ORIGINAL].loc[archs, "val_acc"].to_numpy(float),
                               gt, seed=config["seed"], resamples=RESAMPLES)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(d.krocc_dist, bins=50, color="tab:gray")
    for x, style in ((d.krocc.low, "--"), (d.krocc.high, "--"), (d.krocc.estimate, "-")):
        ax.axvline(x, color="tab:red", linestyle=style)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("KROCC(Tr-Net-5-5) − KROCC(Original), bootstrap resamples of the architectures")
    ax.set_ylabel("resamples")
    ax.set_title(f"paired difference {d.krocc.text()} ({LEVEL:.0%}), p = {d.krocc_p:.3f}, n = {d.n}", fontsize=9)
    fig.tight_layout()
    paths.append(write_png(fig, results_dir / f"{out_prefix}_difference.png"))
    return paths


TABLE1_DIR = "table1"


def table1_benchmarks(results_dir: "str | Path") -> list[str]:
    """Rank benchmarks whose latest batch pairs a trained Tr-Net-5-5 with a trained Original on the
    architectures both trained (a ``rank_pairs`` row on selection ``all-<n>``)."""
    res = read_results(results_dir, ("rank_pairs",))
    pairs = latest_batches(res["rank_pairs"])
    if pairs is None:
        return []
    hit = pairs[(pairs["proxy"].map(_method) == TRNET) & (pairs["baseline"].map(_method) == ORIGINAL)
                & pairs["selection"].astype(str).str.startswith("all-")]
    return sorted(set(hit["benchmark"].dropna()))


def write_table1(results_dir: "str | Path", benchmark: str, ablation_fig: "dict | None" = None) -> list[Path]:
    """Write ``table1/<benchmark>.md`` and its two plots under ``results_dir``; returns their paths.
    ``ablation_fig`` (:func:`ablation`, computed once for all reports) is appended to a cell's."""
    out = Path(results_dir) / TABLE1_DIR
    text, _ = table1_report(results_dir, benchmark)
    plots = table1_plots(results_dir, benchmark, f"{TABLE1_DIR}/{benchmark}")
    text += "\n" + "\n".join(f"![{p.name}]({p.name})" for p in plots) + "\n"
    text += ablation_appendix(ablation_fig, benchmark)
    return [write_text(text, out / f"{benchmark}.md"), *plots]


def write_table1_reports(results_dir: "str | Path") -> list[Path]:
    """:func:`write_table1` for every benchmark of :func:`table1_benchmarks` (one that cannot be
    reported yet, e.g. stopped before it ranked what it trained, is named on stderr and skipped)."""
    paths, benchmarks = [], table1_benchmarks(results_dir)
    fig = ablation(results_dir) if set(benchmarks) & set(CELLS) else None
    for b in benchmarks:
        try:
            paths += write_table1(results_dir, b, fig)
        except HarnessError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    return paths
