"""The leaderboard's detail pages: ``results/leaderboard/<definition>.md``, one per benchmark.

Reads, through :func:`harness.store.tables.read_results`, the tables runs, summary, rank, train,
memory, throughput, rank_pairs and oneshot (any may be empty), and gives each benchmark (the
``benchmark`` column: the definition's name) a page of its rows. Every benchmark is shown by its
latest batch only (:func:`harness.store.tables.latest_batches`); rank rows without a batch id
(written before every row carried one) keep the last row per dataset x proxy x selection.

Sections, each where the benchmark has rows:

- search -- method x sampler x dataset: the 200-epoch test accuracy of the best-by-proxy
  architecture, mean ± std over seeds (paper Fig. 4 bottom), the oracle (best ground truth among
  the evaluated), wall time per run, peak memory, device, with the NB201 paper's REA result
  (Dong & Yang 2020, Table 5) for reference;
- rank correlation -- KROCC / SROCC next to the paper's Tables 1 and 3, and paired comparisons;
- real-training cost -- per method wall time, images/s, saved-for-backward and CUDA-peak memory,
  trainable parameters, and the Original / Tr-Net ratios (paper Table 2, Fig. 4 top);
- memory (saved-for-backward bytes, Original vs Tr-Net, paper Table 2) and training throughput;
- the proxies and one-shot sections (:mod:`harness.report.proxies`, :mod:`harness.report.oneshot`);
- the plots that show the benchmark, and provenance -- commits, devices, versions, batch ids.

Reference values come from ``reference.toml`` (:mod:`harness.report.reference`). Standard
deviations are population std (``ddof=0``), as in the runner's console summary and in
:mod:`harness.analysis.rank`. MB = 10^6 bytes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.report.oneshot import oneshot_section
from harness.report.proxies import PLOT as PROXY_PLOT
from harness.report.proxies import proxies_section
from harness.report.reference import NB201_REA, PAPER_MEMORY, PAPER_METHOD, paper_rank
from harness.search.summary import search_results
from harness.spaces import dataset_order
from harness.stats import Interval, mean_difference, mean_interval, verdict
from harness.store.markdown import ci, markdown_table, mb, num, pm, ratio, seconds
from harness.store.tables import (
    RANK_KEY,
    REPORT_TABLES,
    SAMPLER_ORDER,
    col,
    latest_batches,
    order_values,
    read_results,
    sort_preferred,
)


def _bench_label(name) -> str:
    """Rank rows of the old ``harness rank`` command store the table's file path as benchmark."""
    name = str(name)
    return f"harness rank ({Path(name).name})" if "/" in name or name.endswith(".parquet") else name


def _unique(series: pd.Series) -> str:
    vals = [str(v) for v in pd.unique(series.dropna())]
    return ", ".join(vals) if vals else "–"


# --------------------------------------------------------------------------- sections


def search_section(summary: "pd.DataFrame | None", notes: list[str], older: dict[str, int]) -> str:
    out = ["## Search: best-found architecture (200-epoch test accuracy, %)"]
    if summary is None:
        return "\n\n".join(out + ["_No search results (tables summary and runs are empty)._"])
    out.append("Best-found = the 200-epoch NB201 test accuracy of the architecture the search ranks best "
               "by its proxy; oracle = the best 200-epoch accuracy among everything it evaluated. "
               "Mean ± std over seeds; 95% CI = bootstrap over seeds (none under 5 seeds). 'vs random search': "
               "mean difference to random search of the same method and budget, its 95% bootstrap interval and "
               "permutation-test p-value, and the verdict (better only when the interval excludes 0).")
    summary = summary.assign(best_ground_truth=col(summary, "best_ground_truth"),
                             oracle_ground_truth=col(summary, "oracle_ground_truth"),
                             wall_s=col(summary, "wall_s"), peak_bytes=col(summary, "peak_bytes"))
    for c in ("evaluator", "device", "budget"):
        if c not in summary.columns:
            summary[c] = np.nan
    for bench in order_values(summary["benchmark"], ()):
        s = summary[summary["benchmark"] == bench]
        head = f"### {bench}\n\nbatch `{_unique(s['batch_id']) if 'batch_id' in s else '–'}` · " \
               f"{_unique(s['budget'])} queries per run · evaluator {_unique(s['evaluator'])}"
        if older.get(bench):
            head += f" · {older[bench]} older batch(es) not shown"
        rows = []
        groups = s.groupby(["dataset", "method", "sampler"], sort=False)
        agg = groups.agg(seeds=("best_ground_truth", "size"),
                         best=("best_ground_truth", "mean"), best_std=("best_ground_truth", lambda v: v.std(ddof=0)),
                         oracle=("oracle_ground_truth", "mean"), wall=("wall_s", "mean"),
                         peak=("peak_bytes", "mean"), device=("device", _unique)).reset_index()
        agg = sort_preferred(agg, {"dataset": dataset_order(), "method": ("original",), "sampler": SAMPLER_ORDER})
        for r in agg.itertuples(index=False):
            best = s.loc[(s["dataset"] == r.dataset) & (s["method"] == r.method) & (s["sampler"] == r.sampler),
                         "best_ground_truth"]
            rows.append([r.dataset, r.method, r.sampler, r.seeds, pm(r.best, r.best_std),
                         _interval_text(mean_interval(best)), _against_random(s, r), num(r.oracle),
                         seconds(r.wall), mb(r.peak), r.device])
        out += [head, markdown_table(["dataset", "method", "sampler", "seeds", "best-found (mean ± std)",
                                      "mean [95% CI]", "vs random search (same method, budget)", "oracle",
                                      "wall / run", "peak MB", "device"], rows)]
    out.append("Reference, NB201 paper (Dong & Yang 2020) REA: "
               + ", ".join(f"{d} {v}" for d, v in NB201_REA.items()) + ". "
               "Wall time per run sums the evaluations (Optuna overhead excluded); peak memory is the "
               "mean per evaluation (saved-for-backward bytes on CPU, CUDA peak on GPU; none for table look-ups).")
    out += [f"_Note: {n}_" for n in notes]
    return "\n\n".join(out)


def _interval_text(iv: Interval) -> str:
    return ci(iv.estimate, iv.low, iv.high)


def _against_random(s: pd.DataFrame, r) -> str:
    """The sampler's best-found accuracy minus random search's (same benchmark, dataset, method)."""
    if r.sampler == "random":
        return "–"
    same = (s["dataset"] == r.dataset) & (s["method"] == r.method)
    mine, random = (s.loc[same & (s["sampler"] == name), "best_ground_truth"] for name in (r.sampler, "random"))
    if random.empty:
        return "– (no random search)"
    d = mean_difference(mine, random)
    if not np.isfinite(d.diff.low):
        return f"{d.diff.estimate:+.2f}, no interval (n = {d.n_a} vs {d.n_b} seeds; needs >= 5 each)"
    return f"{d.diff.estimate:+.2f} [{d.diff.low:+.2f}, {d.diff.high:+.2f}], p = {d.p:.3f}: " \
           + verdict(r.sampler, "random", d.diff, f"{d.n_a} vs {d.n_b} seeds")


def _paper_rank(proxy: str, selection: str, dataset: str) -> str:
    ref = paper_rank(proxy, selection, dataset)
    if ref is None:
        return "–"
    table, method, (kr, sr) = ref
    return f"{kr:.4f} / {sr:.4f} (T{table[-1]} {method})"


def rank_section(rank: "pd.DataFrame | None") -> str:
    out = ["## Rank correlation vs the 200-epoch test accuracy"]
    if rank is None:
        return "\n\n".join(out + ["_No rank results (table rank is empty)._"])
    out.append("KROCC = Kendall's tau-b, SROCC = Spearman's rho of one selection of n architectures (a fixed "
               "one, or the first random draw, as the paper reports), with its 95% bootstrap interval over those "
               "architectures in brackets (draw 0 of a random selection is drawn with numpy seed [seed, 0]); "
               "'mean ± std over draws' summarises all random draws. Paper column: "
               "Table 1 = 1000 random networks, Table 3 = top-1000 by ground truth; "
               "`nb201-12ep-val` is the paper's Original proxy.")
    rank = rank.assign(krocc=col(rank, "krocc"), srocc=col(rank, "srocc"), krocc_std=col(rank, "krocc_std"),
                       srocc_std=col(rank, "srocc_std"), draws=col(rank, "draws").fillna(1), n=col(rank, "n"),
                       krocc_single=col(rank, "krocc_single"), srocc_single=col(rank, "srocc_single"),
                       single_draw_seed=_text(rank, "single_draw_seed"),
                       **{c: col(rank, c) for c in ("krocc_lo", "krocc_hi", "srocc_lo", "srocc_hi")})
    rank = rank.assign(bench=rank["benchmark"].map(_bench_label))
    rank = sort_preferred(rank, {"bench": (), "dataset": dataset_order(), "proxy": tuple(PAPER_METHOD), "selection": ()})
    rows = []
    for r in rank.itertuples(index=False):
        several = r.draws > 1
        kr = r.krocc_single if r.krocc_single == r.krocc_single else r.krocc
        sr = r.srocc_single if r.srocc_single == r.srocc_single else r.srocc
        spread = f"{pm(r.krocc, r.krocc_std, 4)} / {pm(r.srocc, r.srocc_std, 4)}" if several else "–"
        rows.append([r.bench, r.dataset, r.proxy, r.selection, num(r.n, 0), ci(kr, r.krocc_lo, r.krocc_hi, 4),
                     ci(sr, r.srocc_lo, r.srocc_hi, 4), int(r.draws), spread,
                     _paper_rank(r.proxy, r.selection, r.dataset)])
    out.append(markdown_table(["benchmark", "dataset", "proxy", "selection", "n", "KROCC [95% CI]",
                               "SROCC [95% CI]", "draws", "mean ± std over draws (KROCC / SROCC)",
                               "paper KROCC / SROCC"], rows))
    if (~np.isfinite(rank["krocc_lo"])).any():
        out.append("_(no CI): a row written before rank rows carried intervals; rerun its benchmark._")
    return "\n\n".join(out)


def pairs_section(pairs: "pd.DataFrame | None") -> str:
    """Paired comparisons (``rank_pairs``): each proxy minus its run's baseline on the same architectures."""
    if pairs is None:
        return ""
    p = latest_batches(_with_benchmark(pairs))
    if p is None:
        return ""
    p = p.assign(bench=p["benchmark"].map(_bench_label))
    p = sort_preferred(p, {"bench": (), "dataset": dataset_order(), "selection": (), "proxy": tuple(PAPER_METHOD)})
    rows = [[r.bench, r.dataset, r.selection, r.proxy, r.baseline, num(r.n, 0),
             ci(r.krocc_diff, r.krocc_diff_lo, r.krocc_diff_hi, 3) + f", p = {num(r.krocc_p, 3)}",
             ci(r.srocc_diff, r.srocc_diff_lo, r.srocc_diff_hi, 3) + f", p = {num(r.srocc_p, 3)}", r.verdict]
            for r in p.itertuples(index=False)]
    return "\n\n".join([
        "## Paired rank comparisons: proxy minus baseline on the same architectures",
        "Difference of KROCC / SROCC with the ground truth, with its 95% paired bootstrap interval (architectures "
        "resampled jointly for both proxies) and two-sided bootstrap p-value. A proxy is called better only when "
        "the interval of the KROCC difference excludes 0.",
        markdown_table(["benchmark", "dataset", "selection", "proxy", "baseline", "n", "Δ KROCC [95% CI]",
                        "Δ SROCC [95% CI]", "verdict"], rows)])


def training_cost(train: pd.DataFrame) -> pd.DataFrame:
    """Mean cost per (dataset, training-set size, device, method) over recorded training runs."""
    t = train.assign(**{c: col(train, c) for c in ("wall_s", "images_per_s", "saved_bytes", "peak_cuda_bytes",
                                                    "trainable_params", "params", "epochs", "n_train")})
    if "device" not in t.columns:
        t["device"] = "unknown"
    t["n_train"] = t["n_train"].fillna(-1)  # unknown size: one group, shown as "–"
    keys = ["dataset", "n_train", "device", "method"]
    agg = t.groupby(keys, sort=False, dropna=False).agg(
        runs=("wall_s", "size"), epochs=("epochs", lambda v: ", ".join(str(int(e)) for e in sorted(v.dropna().unique()))),
        wall_s=("wall_s", "mean"), images_per_s=("images_per_s", "mean"), saved_bytes=("saved_bytes", "mean"),
        peak_cuda_bytes=("peak_cuda_bytes", "mean"), trainable_params=("trainable_params", "mean")).reset_index()
    return sort_preferred(agg, {"dataset": (), "n_train": (), "device": (), "method": ("original",)})


_COST = (("wall_s", "wall / run"), ("images_per_s", "images/s"), ("saved_bytes", "saved-for-backward MB"),
         ("peak_cuda_bytes", "peak CUDA MB"), ("trainable_params", "trainable params"))


def training_section(train: "pd.DataFrame | None") -> str:
    out = ["## Real-training cost per candidate"]
    if train is None:
        return "\n\n".join(out + ["_No real training runs (table train is empty)._"])
    cost = training_cost(train)
    out.append(f"All {len(train)} recorded training runs, averaged per method within one setting "
               "(dataset, training images, device). Saved-for-backward = bytes autograd keeps for one "
               "training step (device-independent); peak CUDA = torch.cuda.max_memory_allocated.")
    fmt = {"wall_s": seconds, "images_per_s": lambda x: num(x, 0), "saved_bytes": mb,
           "peak_cuda_bytes": mb, "trainable_params": lambda x: num(x, 0)}
    rows = [[r["dataset"], num(r["n_train"], 0) if r["n_train"] >= 0 else "–", r["device"], r["method"],
             r["runs"], r["epochs"] or "–", *(fmt[c](r[c]) for c, _ in _COST)] for _, r in cost.iterrows()]
    out.append(markdown_table(["dataset", "train images", "device", "method", "runs", "epochs",
                          *(label for _, label in _COST)], rows))
    ratios = []
    for (ds, n, dev), g in cost.groupby(["dataset", "n_train", "device"], sort=False, dropna=False):
        orig = g[g["method"] == "original"]
        if orig.empty:
            continue
        o = orig.iloc[0]
        for _, r in g[g["method"] != "original"].iterrows():
            ratios.append([ds, dev, f"original / {r['method']}", *(ratio(o[c], r[c]) for c, _ in _COST)])
    if ratios:
        out.append("Original / Tr-Net ratios (> 1 on memory, time and parameters = Tr-Net is cheaper; "
                   "< 1 on images/s = Tr-Net is faster). Paper Table 2: about 2.1× less GPU memory.")
        out.append(markdown_table(["dataset", "device", "ratio", *(label for _, label in _COST)], ratios))
    return "\n\n".join(out)


def provenance_section(frames: dict[str, "pd.DataFrame | None"], batches: list[str]) -> str:
    shown = [df for df in frames.values() if df is not None]
    out = ["## Provenance"]
    if not shown:
        return "\n\n".join(out + ["_No results._"])

    def values(col: str) -> str:
        return _unique(pd.concat([df[col] for df in shown if col in df.columns], ignore_index=True)) \
            if any(col in df.columns for df in shown) else "–"

    version_cols = sorted({c for df in shown for c in df.columns if c.startswith("version_")})
    versions = " · ".join(f"{c.removeprefix('version_')} {values(c)}" for c in version_cols) or "–"
    out.append("\n".join([f"- commit: {values('commit')}", f"- device: {values('device')}",
                          f"- versions: {versions}",
                          f"- batches: {', '.join(f'`{b}`' for b in batches) if batches else '–'}"]))
    return "\n\n".join(out)


_SAVED = re.compile(r"^(.+)/saved_bytes$")


def _with_benchmark(df: pd.DataFrame) -> pd.DataFrame:
    bench = df["benchmark"].astype(object) if "benchmark" in df.columns else pd.Series(None, index=df.index, dtype=object)
    return df.assign(benchmark=bench.where(bench.notna(), "–"))


def _text(df: pd.DataFrame, name: str) -> pd.Series:
    """A grouping column as text ("–" where missing or null)."""
    if name not in df.columns:
        return pd.Series("–", index=df.index, dtype=object)
    return df[name].astype(object).where(df[name].notna(), "–").astype(str)


def memory_section(memory: "pd.DataFrame | None") -> str:
    """Original vs Tr-Net saved-for-backward bytes per architecture selection, latest batch per benchmark."""
    if memory is None:
        return ""
    m = latest_batches(_with_benchmark(memory))
    m = m.assign(selection=_text(m, "selection"))
    others = [c for c in m.columns if _SAVED.match(c) and c != "original/saved_bytes"]
    rows = []
    for (bench, sel), g in m.groupby(["benchmark", "selection"], sort=False):
        orig = col(g, "original/saved_bytes").mean()
        for c in others:
            other = col(g, c).mean()
            if np.isfinite(other):
                rows.append([bench, sel, len(g), _unique(g["batch_size"]) if "batch_size" in g else "–",
                             _SAVED.match(c).group(1), mb(orig), mb(other), ratio(orig, other)])
    out = ["## Memory: saved for backward, Original vs Tr-Net",
           "Bytes autograd keeps for backward in one training-mode forward + loss, mean over the architectures "
           "of each selection; ratio = ratio of the means (> 1 = Tr-Net keeps less). Paper Table 2 (GPU memory "
           f"while training): Original {PAPER_MEMORY['original_gb']} GB, Tr-Net-5-5 {PAPER_MEMORY['trnet_5_5_gb']} GB "
           f"({ratio(PAPER_MEMORY['original_gb'], PAPER_MEMORY['trnet_5_5_gb'])})."]
    out.append(markdown_table(["benchmark", "architectures", "n", "batch", "Tr-Net", "Original MB", "Tr-Net MB",
                               "ratio"], rows) if rows else "_No Tr-Net columns (`<method>/saved_bytes`)._")
    return "\n\n".join(out)


def throughput_section(throughput: "pd.DataFrame | None") -> str:
    """Mean images/s per (benchmark, device, selection, mode, method), latest batch per benchmark."""
    if throughput is None:
        return ""
    t = latest_batches(_with_benchmark(throughput))
    keys = ["benchmark", "device", "selection", "mode", "method"]
    t = t.assign(images_per_s=col(t, "images_per_s"), **{k: _text(t, k) for k in keys[1:]})
    agg = t.groupby(keys, sort=False).agg(n=("images_per_s", "size"), ips=("images_per_s", "mean")).reset_index()
    agg = sort_preferred(agg, {"benchmark": (), "device": (), "selection": (), "mode": (), "method": ("original",)})
    base = agg[agg["method"] == "original"].set_index(keys[:-1])["ips"].to_dict()
    rows = [[r.benchmark, r.device, r.selection, r.mode, r.method, r.n, num(r.ips, 1),
             ratio(r.ips, base.get((r.benchmark, r.device, r.selection, r.mode), np.nan))]
            for r in agg.itertuples(index=False)]
    return "\n\n".join(["## Training throughput",
                        "Images per second of one training step, mean over the measured architectures; speed-up = "
                        "images/s over Original's in the same setting.",
                        markdown_table(["benchmark", "device", "architectures", "mode", "method", "n", "images/s",
                                        "speed-up"], rows)])


# --------------------------------------------------------------------------- entry points

#: Sections over further tables, each in its own module under harness/report/: (table, render)
#: where ``render(rows or None) -> markdown`` ("" = nothing to show). Shown after the memory and
#: throughput sections, in this order; a page lies one folder below the plots.
EXTRA_SECTIONS: tuple[tuple[str, Callable[["pd.DataFrame | None"], str]], ...] = (
    ("rank", lambda rows: proxies_section(rows, plot=f"../{PROXY_PLOT}")), ("oneshot", oneshot_section))
#: The tables the detail pages show.
PAGE_TABLES = REPORT_TABLES + ("rank_pairs",) + tuple(table for table, _ in EXTRA_SECTIONS)
#: Plots of the results folder, by the table whose rows they show.
PLOTS = {"runs": ("rea_anytime.png", "memory.png"), "train": ("memory.png",),
         "oneshot": ("oneshot_memory.png", "oneshot_eigenvalues.png")}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def page_name(benchmark: str) -> str:
    """The file name of a benchmark's page: its definition's name (unsafe characters replaced)."""
    return ("unlabelled" if benchmark == "–" else _UNSAFE.sub("_", benchmark).strip("_")) + ".md"


def _labels(df: "pd.DataFrame | None") -> pd.Series:
    return _with_benchmark(df)["benchmark"].map(_bench_label)


def detail_pages(res: dict, results_dir: "str | Path") -> dict[str, str]:
    """Page file name -> markdown, one page per benchmark of ``res`` (tables as read by
    :func:`harness.store.tables.read_results`); rows without a benchmark share one page."""
    groups = {t: dict(tuple(df.groupby(_labels(df).to_numpy(), sort=False))) for t, df in res.items() if df is not None}
    names = sorted({name for g in groups.values() for name in g})
    return {page_name(name): _page(name, {t: groups.get(t, {}).get(name) for t in res}, Path(results_dir))
            for name in names}


def _page(name: str, res: dict, results_dir: Path) -> str:
    summary, runs, notes = search_results(res)
    rank = latest_batches(res.get("rank"), key=RANK_KEY)
    older = {}
    if res.get("summary") is not None and "batch_id" in res["summary"].columns:
        older = (res["summary"].groupby("benchmark")["batch_id"].nunique() - 1).to_dict()
    parts = [f"# {name if name != '–' else 'Rows without a benchmark'}", "Back to the [leaderboard summary](../leaderboard.md). The latest batch of this benchmark; "
             "accuracies in %; std = population std (ddof 0); MB = 10^6 bytes."]
    if summary is not None:
        parts.append(search_section(summary, notes, older))
    if rank is not None:
        parts.append(rank_section(rank))
    parts += [s for s in (pairs_section(res.get("rank_pairs")),) if s]
    if res.get("train") is not None:
        parts.append(training_section(res["train"]))
    parts += [s for s in (memory_section(res.get("memory")), throughput_section(res.get("throughput")),
                          *(render(res.get(table)) for table, render in EXTRA_SECTIONS)) if s]
    curves = runs is not None and col(runs, "ground_truth").notna().any()  # rea_anytime.png draws only those
    shown = {"runs": runs if curves else None, "train": res.get("train"), "oneshot": res.get("oneshot")}
    plots = list(dict.fromkeys(p for table, names in PLOTS.items() if shown[table] is not None for p in names
                               if (results_dir / p).exists()))
    if plots:
        parts.append("## Plots\n\n" + "\n".join(f"![{p}](../{p})" for p in plots))
    frames = {"summary": summary, "runs": runs, "rank": rank,
              **{t: res.get(t) for t in ("train", "memory", "throughput", "oneshot")}}
    batches = sorted({b for df in frames.values() if df is not None and "batch_id" in df.columns
                      for b in df["batch_id"].dropna().unique()})
    parts.append(provenance_section(frames, batches))
    return "\n\n".join(parts) + "\n"


def build_pages(results_dir: "str | Path") -> dict[str, str]:
    """The detail pages of ``results_dir`` (see the module docstring)."""
    return detail_pages(read_results(results_dir, PAGE_TABLES), results_dir)
