"""The leaderboard: ``results/leaderboard.md`` from the Parquet files the benchmark runner writes.

Reads (any may be missing) ``runs.parquet``, ``summary.parquet``, ``rank.parquet`` and
``train.parquet`` (columns: :mod:`harness.bench.runner`). Every benchmark is shown by its latest
batch only: batch ids are ``<name>-YYYYmmddTHHMMSS-xxxxxx`` and are ordered by that timestamp (by
position in the file when a timestamp cannot be read). Rank rows written by ``harness rank`` carry
no batch id; for those the last row of each dataset x proxy x selection counts.

Sections:

1. search -- per benchmark, method x sampler x dataset: the 200-epoch test accuracy of the
   best-by-proxy architecture, mean ± std over seeds (paper Fig. 4 bottom),
   the oracle (best ground truth among the evaluated), wall time per run, peak memory, device,
   with the NB201 paper's REA result quoted in issue 5 for reference;
2. rank correlation -- KROCC / SROCC next to the paper's Tables 1 and 3;
3. real-training cost -- per method wall time, images/s, saved-for-backward and CUDA-peak memory,
   trainable parameters, and the Original / Tr-Net ratios (paper Table 2, Fig. 4 top);
4. provenance -- commits, devices, versions, batch ids.

Standard deviations are population std (``ddof=0``), as in the runner's console summary and in
:mod:`harness.analysis.rank`. MB = 10^6 bytes.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.store.files import write_text
from harness.tabular.nb201 import DATASETS

LEADERBOARD = "leaderboard.md"
FILES = ("runs", "summary", "rank", "train")
#: Columns without which a file cannot be summarised at all.
REQUIRED = {
    "runs": ("run_id", "benchmark", "method", "sampler", "dataset", "trial", "proxy", "ground_truth"),
    "summary": ("benchmark", "method", "sampler", "dataset", "best_ground_truth"),
    "rank": ("dataset", "proxy", "selection", "krocc", "srocc"),
    "train": ("method", "dataset", "wall_s"),
}
SAMPLER_ORDER = ("rea", "random", "tpe")
RANK_KEY = ("dataset", "proxy", "selection")

#: Paper Table 1 (1000 random networks) and Table 3 (top-1000): (KROCC, SROCC).
PAPER_RANK = {
    ("Table 1", "Original"): {"cifar10": (0.6128, 0.7888), "cifar100": (0.6600, 0.8384),
                              "ImageNet16-120": (0.6656, 0.8394)},
    ("Table 1", "Tr-Net-5-5"): {"cifar10": (0.7883, 0.9381), "cifar100": (0.6864, 0.8698),
                                "ImageNet16-120": (0.7018, 0.8786)},
    ("Table 3", "Original"): {"cifar10": (0.4135, 0.5909), "cifar100": (0.3189, 0.4623),
                              "ImageNet16-120": (0.1628, 0.2391)},
    ("Table 3", "Tr-Net-5-5"): {"cifar10": (0.4476, 0.6351), "cifar100": (0.3652, 0.5173),
                                "ImageNet16-120": (0.2087, 0.3021)},
}
#: Which of the paper's columns a proxy corresponds to.
PAPER_METHOD = {"nb201-12ep-val": "Original", "trained:original": "Original", "trained:tr-net-5-5": "Tr-Net-5-5"}
#: NB201 paper (Dong & Yang 2020, Table 5) REA test accuracy, as quoted in issue 5.
NB201_REA = {"cifar10": "93.92 ± 0.30", "cifar100": "71.84 ± 0.99", "ImageNet16-120": "45.54 ± 1.03"}

_BATCH_TIME = re.compile(r"-(\d{8}T\d{6})-[0-9a-zA-Z]+$")


# --------------------------------------------------------------------------- reading


def read_results(results_dir: "str | Path") -> dict[str, "pd.DataFrame | None"]:
    """The four result files of ``results_dir`` (None for a missing or empty one)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HarnessError(f"results folder {str(results_dir)!r}: does not exist")
    out: dict[str, "pd.DataFrame | None"] = {}
    for name in FILES:
        path = results_dir / f"{name}.parquet"
        if not path.exists():
            out[name] = None
            continue
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise HarnessError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
        missing = [c for c in REQUIRED[name] if c not in df.columns]
        if missing:
            raise HarnessError(f"{path}: missing column(s) {', '.join(missing)}")
        out[name] = df if len(df) else None
    return out


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column as numbers (NaN where missing or null): peak_bytes is ``object`` when all None."""
    if name not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[name], errors="coerce").astype(float)


def batch_time(batch_id) -> "str | None":
    """The ``YYYYmmddTHHMMSS`` stamp inside a batch id, or None."""
    m = _BATCH_TIME.search(str(batch_id)) if isinstance(batch_id, str) else None
    return m.group(1) if m else None


def latest_batch_ids(df: "pd.DataFrame | None") -> dict[str, str]:
    """benchmark -> its latest batch id (timestamp order; file order when a stamp is unreadable)."""
    if df is None or "batch_id" not in df.columns:
        return {}
    out = {}
    with_id = df[df["batch_id"].notna()].reset_index(drop=True)
    for bench, group in with_id.groupby("benchmark", sort=False):
        last_pos = {b: i for i, b in zip(group.index, group["batch_id"])}  # last occurrence wins
        stamps = {b: batch_time(b) for b in last_pos}
        if all(stamps.values()):
            out[bench] = max(last_pos, key=lambda b: (stamps[b], last_pos[b]))
        else:
            out[bench] = max(last_pos, key=last_pos.get)
    return out


def _is_later(a: str, b: str) -> bool:
    """Batch ``a`` is newer than ``b`` by their stamps (unknown when a stamp is unreadable)."""
    ta, tb = batch_time(a), batch_time(b)
    return bool(ta and tb and ta > tb)


def latest_batches(df: "pd.DataFrame | None", key: "tuple[str, ...] | None" = None) -> "pd.DataFrame | None":
    """Only each benchmark's latest batch. A benchmark whose rows have no batch id keeps, with
    ``key``, the last row per key (e.g. ``harness rank`` rows), and all its rows without."""
    if df is None:
        return None
    ids = df["batch_id"] if "batch_id" in df.columns else pd.Series(None, index=df.index, dtype=object)
    has_id = ids.notna()
    latest = latest_batch_ids(df)
    keep = has_id & ids.isin(set(latest.values()))
    loose = df[~has_id & ~df["benchmark"].isin(set(latest))]
    if key is not None and len(loose):
        loose = loose.drop_duplicates(subset=["benchmark", *key], keep="last")
    return pd.concat([df[keep], loose]) if len(loose) else df[keep]


def summaries_from_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One summary row per run_id by the runner's rule: best by proxy, ties -> earliest trial."""
    runs = runs.assign(proxy=_col(runs, "proxy"), ground_truth=_col(runs, "ground_truth"),
                       wall_s=_col(runs, "wall_s"), peak_bytes=_col(runs, "peak_bytes"))
    runs = runs.sort_values(["run_id", "trial"], kind="stable")
    best = runs.loc[runs.groupby("run_id", sort=False)["proxy"].idxmax()].set_index("run_id")
    g = runs.groupby("run_id", sort=False)
    ident = [c for c in ("batch_id", "benchmark", "method", "evaluator", "sampler", "dataset", "seed",
                         "device", "commit") if c in runs.columns]
    out = g[ident].first()
    out["best_ground_truth"] = best["ground_truth"]
    out["oracle_ground_truth"] = g["ground_truth"].max()
    out["trials"] = g.size()
    out["budget"] = g.size()
    out["wall_s"] = g["wall_s"].sum()
    out["peak_bytes"] = g["peak_bytes"].mean()
    return out.reset_index()


def search_results(res: dict) -> tuple["pd.DataFrame | None", "pd.DataFrame | None", list[str]]:
    """(summary rows, runs rows, notes) of each search benchmark's latest batch.

    Batches come from ``summary.parquet`` (complete runs); a benchmark with rows only in
    ``runs.parquet`` (an interrupted batch, or a missing summary file) is summarised from its runs.
    A newer interrupted batch of a benchmark that has a complete one is noted, not shown.
    """
    summary, runs = latest_batches(res.get("summary")), res.get("runs")
    notes = []
    chosen = latest_batch_ids(summary) if summary is not None else {}
    if runs is not None:
        newer = latest_batch_ids(runs)
        notes += [f"`{b}`: newer batch {newer[b]} in runs.parquet has no summary rows (interrupted?); "
                  f"showing the latest complete batch" for b in chosen
                  if b in newer and newer[b] != chosen[b] and _is_later(newer[b], chosen[b])]
        orphans = runs[~runs["benchmark"].isin(set(chosen))]
        extra = latest_batch_ids(orphans)
        if extra:
            derived = summaries_from_runs(orphans[orphans["batch_id"].isin(set(extra.values()))])
            summary = derived if summary is None else pd.concat([summary, derived], ignore_index=True)
            notes += [f"`{b}`: batch {extra[b]} has no summary rows (interrupted?); summarised from runs.parquet"
                      for b in extra]
            chosen = {**chosen, **extra}
        runs = runs[runs["batch_id"].isin(set(chosen.values()))] if chosen else None
        runs = runs if runs is not None and len(runs) else None
    return summary, runs, notes


# --------------------------------------------------------------------------- formatting


_NUMERIC = re.compile(r"^[-–+]?[\d.,]+")


def _md_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-markdown table; columns whose cells are all numbers (or "–") align right."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|")

    def numeric(i: int) -> bool:
        return bool(rows) and all(_NUMERIC.match(cell(r[i])) or cell(r[i]) == "–" for r in rows)

    lines = ["| " + " | ".join(map(cell, headers)) + " |",
             "|" + "|".join("---:" if numeric(i) else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _pm(mean: float, std: float, digits: int = 2) -> str:
    return "–" if not np.isfinite(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:,.{digits}f}"


def _mb(x: float) -> str:
    return _num(x / 1e6, 1) if x is not None and np.isfinite(x) else "–"


def _seconds(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    if x < 1:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.1f} s" if x < 600 else f"{x / 60:.1f} min"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if np.isfinite(a) and np.isfinite(b) and b != 0 else "–"


def _order(values, preferred) -> list:
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), str(v)))


def _sort(df: pd.DataFrame, by: dict[str, tuple]) -> pd.DataFrame:
    """Sort by columns in a preferred value order (datasets as in the paper, REA first, ...)."""
    keys = {c: df[c].map({v: i for i, v in enumerate(_order(df[c], pref))}) for c, pref in by.items()}
    return df.assign(**{f"_k_{c}": k for c, k in keys.items()}).sort_values(
        [f"_k_{c}" for c in by], kind="stable").drop(columns=[f"_k_{c}" for c in by])


def _bench_label(name) -> str:
    """``harness rank`` stores the table's file path as benchmark; show its file name."""
    name = str(name)
    return f"harness rank ({Path(name).name})" if "/" in name or name.endswith(".parquet") else name


def _unique(series: pd.Series) -> str:
    vals = [str(v) for v in pd.unique(series.dropna())]
    return ", ".join(vals) if vals else "–"


# --------------------------------------------------------------------------- sections


def search_section(summary: "pd.DataFrame | None", notes: list[str], older: dict[str, int]) -> str:
    out = ["## 1. Search: best-found architecture (200-epoch test accuracy, %)"]
    if summary is None:
        return "\n\n".join(out + ["_No search results (summary.parquet / runs.parquet missing or empty)._"])
    out.append("Best-found = the 200-epoch NB201 test accuracy of the architecture the search ranks best "
               "by its proxy; oracle = the best 200-epoch accuracy among everything it evaluated. "
               "Mean ± std over seeds.")
    summary = summary.assign(best_ground_truth=_col(summary, "best_ground_truth"),
                             oracle_ground_truth=_col(summary, "oracle_ground_truth"),
                             wall_s=_col(summary, "wall_s"), peak_bytes=_col(summary, "peak_bytes"))
    for c in ("evaluator", "device", "budget"):
        if c not in summary.columns:
            summary[c] = np.nan
    for bench in _order(summary["benchmark"], ()):
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
        agg = _sort(agg, {"dataset": DATASETS, "method": ("original",), "sampler": SAMPLER_ORDER})
        for r in agg.itertuples(index=False):
            rows.append([r.dataset, r.method, r.sampler, r.seeds, _pm(r.best, r.best_std), _num(r.oracle),
                         _seconds(r.wall), _mb(r.peak), r.device])
        out += [head, _md_table(["dataset", "method", "sampler", "seeds", "best-found", "oracle",
                                 "wall / run", "peak MB", "device"], rows)]
    out.append("Reference, NB201 paper (Dong & Yang 2020) REA: "
               + ", ".join(f"{d} {v}" for d, v in NB201_REA.items()) + ". "
               "Wall time per run sums the evaluations (Optuna overhead excluded); peak memory is the "
               "mean per evaluation (saved-for-backward bytes on CPU, CUDA peak on GPU; none for table look-ups).")
    out += [f"_Note: {n}_" for n in notes]
    return "\n\n".join(out)


def _paper_rank(proxy: str, selection: str, dataset: str) -> str:
    method = PAPER_METHOD.get(proxy)
    table = {"random-1000": "Table 1", "all-1000": "Table 1", "top-1000": "Table 3"}.get(selection)
    vals = PAPER_RANK.get((table, method), {}).get(dataset) if method and table else None
    return f"{vals[0]:.4f} / {vals[1]:.4f} (T{table[-1]} {method})" if vals else "–"


def rank_section(rank: "pd.DataFrame | None") -> str:
    out = ["## 2. Rank correlation vs the 200-epoch test accuracy"]
    if rank is None:
        return "\n\n".join(out + ["_No rank results (rank.parquet missing or empty)._"])
    out.append("KROCC = Kendall's tau-b, SROCC = Spearman's rho; ± std over random draws. Paper column: "
               "Table 1 = 1000 random networks, Table 3 = top-1000 by ground truth; "
               "`nb201-12ep-val` is the paper's Original proxy.")
    rank = rank.assign(krocc=_col(rank, "krocc"), srocc=_col(rank, "srocc"), krocc_std=_col(rank, "krocc_std"),
                       srocc_std=_col(rank, "srocc_std"), draws=_col(rank, "draws").fillna(1), n=_col(rank, "n"))
    rank = rank.assign(bench=rank["benchmark"].map(_bench_label))
    rank = _sort(rank, {"bench": (), "dataset": DATASETS, "proxy": tuple(PAPER_METHOD), "selection": ()})
    rows = []
    for r in rank.itertuples(index=False):
        several = r.draws > 1
        kr = _pm(r.krocc, r.krocc_std, 4) if several else _num(r.krocc, 4)
        sr = _pm(r.srocc, r.srocc_std, 4) if several else _num(r.srocc, 4)
        rows.append([r.bench, r.dataset, r.proxy, r.selection, _num(r.n, 0), int(r.draws), kr, sr,
                     _paper_rank(r.proxy, r.selection, r.dataset)])
    out.append(_md_table(["benchmark", "dataset", "proxy", "selection", "n", "draws", "KROCC", "SROCC",
                          "paper KROCC / SROCC"], rows))
    return "\n\n".join(out)


def training_cost(train: pd.DataFrame) -> pd.DataFrame:
    """Mean cost per (dataset, training-set size, device, method) over recorded training runs."""
    t = train.assign(**{c: _col(train, c) for c in ("wall_s", "images_per_s", "saved_bytes", "peak_cuda_bytes",
                                                    "trainable_params", "params", "epochs", "n_train")})
    if "device" not in t.columns:
        t["device"] = "unknown"
    t["n_train"] = t["n_train"].fillna(-1)  # unknown size: one group, shown as "–"
    keys = ["dataset", "n_train", "device", "method"]
    agg = t.groupby(keys, sort=False, dropna=False).agg(
        runs=("wall_s", "size"), epochs=("epochs", lambda v: ", ".join(str(int(e)) for e in sorted(v.dropna().unique()))),
        wall_s=("wall_s", "mean"), images_per_s=("images_per_s", "mean"), saved_bytes=("saved_bytes", "mean"),
        peak_cuda_bytes=("peak_cuda_bytes", "mean"), trainable_params=("trainable_params", "mean")).reset_index()
    return _sort(agg, {"dataset": (), "n_train": (), "device": (), "method": ("original",)})


_COST = (("wall_s", "wall / run"), ("images_per_s", "images/s"), ("saved_bytes", "saved-for-backward MB"),
         ("peak_cuda_bytes", "peak CUDA MB"), ("trainable_params", "trainable params"))


def training_section(train: "pd.DataFrame | None") -> str:
    out = ["## 3. Real-training cost per candidate"]
    if train is None:
        return "\n\n".join(out + ["_No real training runs (train.parquet missing or empty)._"])
    cost = training_cost(train)
    out.append(f"All {len(train)} recorded training runs, averaged per method within one setting "
               "(dataset, training images, device). Saved-for-backward = bytes autograd keeps for one "
               "training step (device-independent); peak CUDA = torch.cuda.max_memory_allocated.")
    fmt = {"wall_s": _seconds, "images_per_s": lambda x: _num(x, 0), "saved_bytes": _mb,
           "peak_cuda_bytes": _mb, "trainable_params": lambda x: _num(x, 0)}
    rows = [[r["dataset"], _num(r["n_train"], 0) if r["n_train"] >= 0 else "–", r["device"], r["method"],
             r["runs"], r["epochs"] or "–", *(fmt[c](r[c]) for c, _ in _COST)] for _, r in cost.iterrows()]
    out.append(_md_table(["dataset", "train images", "device", "method", "runs", "epochs",
                          *(label for _, label in _COST)], rows))
    ratios = []
    for (ds, n, dev), g in cost.groupby(["dataset", "n_train", "device"], sort=False, dropna=False):
        orig = g[g["method"] == "original"]
        if orig.empty:
            continue
        o = orig.iloc[0]
        for _, r in g[g["method"] != "original"].iterrows():
            ratios.append([ds, dev, f"original / {r['method']}", *(_ratio(o[c], r[c]) for c, _ in _COST)])
    if ratios:
        out.append("Original / Tr-Net ratios (> 1 on memory, time and parameters = Tr-Net is cheaper; "
                   "< 1 on images/s = Tr-Net is faster). Paper Table 2: about 2.1× less GPU memory.")
        out.append(_md_table(["dataset", "device", "ratio", *(label for _, label in _COST)], ratios))
    return "\n\n".join(out)


def provenance_section(frames: dict[str, "pd.DataFrame | None"], batches: list[str]) -> str:
    shown = [df for df in frames.values() if df is not None]
    out = ["## 4. Provenance"]
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


# --------------------------------------------------------------------------- entry points


def build_leaderboard(results_dir: "str | Path") -> str:
    """The leaderboard markdown for ``results_dir`` (see the module docstring)."""
    results_dir = Path(results_dir)
    res = read_results(results_dir)
    summary, runs, notes = search_results(res)
    rank = latest_batches(res["rank"], key=RANK_KEY)
    older = {}
    if res["summary"] is not None and "batch_id" in res["summary"].columns:
        older = (res["summary"].groupby("benchmark")["batch_id"].nunique() - 1).to_dict()
    batches = sorted({b for df in (summary, rank) if df is not None and "batch_id" in df.columns
                      for b in df["batch_id"].dropna().unique()})
    plots = [p for p in ("rea_anytime.png", "memory.png") if (results_dir / p).exists()]
    parts = ["# Leaderboard",
             f"Built from `{results_dir}` by `harness.report.leaderboard`; each benchmark shows its latest "
             "batch only. Accuracies in %; std = population std (ddof 0); MB = 10^6 bytes.",
             search_section(summary, notes, older), rank_section(rank), training_section(res["train"])]
    if plots:
        parts.append("## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in plots))
    frames = {"summary": summary, "runs": runs, "rank": rank, "train": res["train"]}
    parts.append(provenance_section(frames, batches))
    return "\n\n".join(parts) + "\n"


def write_leaderboard(results_dir: "str | Path") -> Path:
    """Write ``<results_dir>/leaderboard.md`` atomically; returns its path."""
    return write_text(build_leaderboard(results_dir), Path(results_dir) / LEADERBOARD)


def refresh(results_dir: "str | Path") -> list[Path]:
    """Plots first (so the leaderboard links the ones that exist), then the leaderboard."""
    from harness.report.plots import write_plots

    plots = write_plots(results_dir)
    return [write_leaderboard(results_dir), *plots]
