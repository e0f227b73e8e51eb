"""The query layer over the results tables: latest batches, best-by-proxy, run summaries.

THE one place for "best by proxy": a search run's result is the architecture with the highest
proxy value among those it evaluated, ties going to the earliest trial (the architecture the search
would have returned first); its 200-epoch NB201 test accuracy is what the paper's Fig. 4 reports.
:func:`running_best` implements the rule once; :func:`best_by_proxy`, :func:`summarise_run`,
:func:`summaries_from_runs` and :func:`anytime_curves` all use it.

Batch ids are ``<name>-YYYYmmddTHHMMSS-xxxxxx``; every benchmark is shown by its latest batch,
ordered by that stamp (by read order when a stamp cannot be read).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.store.results import ResultsStore

#: The tables the reports read.
REPORT_TABLES = ("runs", "summary", "rank", "train", "memory", "throughput")
SAMPLER_ORDER = ("rea", "random", "tpe")
RANK_KEY = ("dataset", "proxy", "selection")
_BATCH_TIME = re.compile(r"-(\d{8}T\d{6})-[0-9a-zA-Z]+$")


# --------------------------------------------------------------------------- reading


def read_results(results_dir: "str | Path", tables=REPORT_TABLES) -> dict[str, "pd.DataFrame | None"]:
    """``tables`` of the results folder through :class:`ResultsStore` (None for one without rows)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HarnessError(f"results folder {str(results_dir)!r}: does not exist")
    store = ResultsStore(results_dir)
    return {t: _with_method(store.read(t)) for t in tables}


def _with_method(df: "pd.DataFrame | None") -> "pd.DataFrame | None":
    """Rows that name their proxy (``proxy_name``) rather than a ``method`` are shown under it."""
    if df is None or "proxy_name" not in df.columns:
        return df
    method = df["method"].astype(object) if "method" in df.columns else pd.Series(None, index=df.index, dtype=object)
    return df.assign(method=method.where(method.notna(), df["proxy_name"].astype(object)))


def col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column as float numbers (NaN where missing or null; all-null columns read as ``object``)."""
    if name not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[name], errors="coerce").astype(float)


# --------------------------------------------------------------------------- batches


def batch_time(batch_id) -> "str | None":
    """The ``YYYYmmddTHHMMSS`` stamp inside a batch id, or None."""
    m = _BATCH_TIME.search(batch_id) if isinstance(batch_id, str) else None
    return m.group(1) if m else None


def is_later(a: str, b: str) -> bool:
    """Batch ``a`` is newer than ``b`` by their stamps (False when a stamp is unreadable)."""
    ta, tb = batch_time(a), batch_time(b)
    return bool(ta and tb and ta > tb)


def _benchmarks(df: pd.DataFrame) -> pd.Series:
    if "benchmark" in df.columns:
        return df["benchmark"].astype(object).where(df["benchmark"].notna(), "–")
    return pd.Series("–", index=df.index, dtype=object)


def latest_batch_ids(df: "pd.DataFrame | None") -> dict[str, str]:
    """benchmark -> its latest batch id (stamp order; read order when a stamp is unreadable)."""
    if df is None or "batch_id" not in df.columns:
        return {}
    out = {}
    with_id = df.assign(benchmark=_benchmarks(df))[df["batch_id"].notna()].reset_index(drop=True)
    for bench, group in with_id.groupby("benchmark", sort=False):
        last_pos = {b: i for i, b in zip(group.index, group["batch_id"])}  # last occurrence wins
        stamps = {b: batch_time(b) for b in last_pos}
        if all(stamps.values()):
            out[bench] = max(last_pos, key=lambda b: (stamps[b], last_pos[b]))
        else:
            out[bench] = max(last_pos, key=last_pos.get)
    return out


def latest_batches(df: "pd.DataFrame | None", key: "tuple[str, ...] | None" = None) -> "pd.DataFrame | None":
    """Only each benchmark's latest batch. Rows without a batch id (written before every row carried
    one) of a benchmark without batches are kept: with ``key``, the last row per key."""
    if df is None:
        return None
    ids = df["batch_id"] if "batch_id" in df.columns else pd.Series(None, index=df.index, dtype=object)
    has_id = ids.notna()
    latest = latest_batch_ids(df)
    keep = has_id & ids.isin(set(latest.values()))
    loose = df[~has_id & ~_benchmarks(df).isin(set(latest))]
    if key is not None and len(loose):
        loose = loose.drop_duplicates(subset=[c for c in ("benchmark", *key) if c in loose.columns], keep="last")
    out = pd.concat([df[keep], loose]) if len(loose) else df[keep]
    return out if len(out) else None


# --------------------------------------------------------------------------- best by proxy


def running_best(rows: pd.DataFrame, by: "str | None" = None) -> pd.DataFrame:
    """``rows`` in (``by``, trial) order with ``query`` (1-based position within its group) and
    ``best_pos``: the position (in the returned frame) of the best-by-proxy row among the group's
    rows so far -- the highest proxy, ties -> the earliest trial; a missing proxy never wins
    over a present one."""
    order = [by, "trial"] if by else ["trial"]
    r = rows.sort_values(order, kind="stable").reset_index(drop=True)
    proxy = col(r, "proxy")
    groups = r[by] if by else pd.Series(0, index=r.index)
    best_before = proxy.fillna(-np.inf).groupby(groups).cummax().groupby(groups).shift()
    improves = best_before.isna() | (proxy > best_before)
    pos = pd.Series(np.arange(len(r)), index=r.index, dtype=float)
    r["best_pos"] = pos.where(improves).groupby(groups).ffill().astype(int)
    r["query"] = r.groupby(groups, sort=False).cumcount() + 1
    return r


def best_by_proxy(rows: pd.DataFrame) -> pd.Series:
    """The row with the highest ``proxy`` (ties -> the earliest ``trial``) of one run's rows."""
    if rows is None or len(rows) == 0:
        raise HarnessError("best by proxy: no rows")
    missing = [c for c in ("trial", "proxy") if c not in rows.columns]
    if missing:
        raise HarnessError(f"best by proxy: missing column(s) {', '.join(missing)}")
    r = running_best(rows)
    return rows.sort_values("trial", kind="stable").iloc[int(r["best_pos"].iloc[-1])]


def summarise_run(rows: pd.DataFrame) -> dict:
    """One search run's summary: the best-by-proxy architecture and what it really reaches."""
    best = best_by_proxy(rows)
    return {"best_arch": best["arch_str"], "best_proxy": best["proxy"], "best_ground_truth": best["ground_truth"],
            "oracle_ground_truth": col(rows, "ground_truth").max(), "trials": len(rows),
            "wall_s": col(rows, "wall_s").sum(), "peak_bytes": col(rows, "peak_bytes").mean()}


def summaries_from_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One summary row per ``run_id`` of the runs table (for batches without summary rows)."""
    r = running_best(runs.assign(proxy=col(runs, "proxy"), ground_truth=col(runs, "ground_truth"),
                                 wall_s=col(runs, "wall_s"), peak_bytes=col(runs, "peak_bytes")), by="run_id")
    g = r.groupby("run_id", sort=False)
    best = r.iloc[g["best_pos"].last().to_numpy()].set_index("run_id")
    ident = [c for c in ("batch_id", "benchmark", "method", "evaluator", "sampler", "dataset", "seed",
                         "device", "commit") if c in r.columns]
    out = g[ident].first()
    if "arch_str" in best.columns:
        out["best_arch"] = best["arch_str"]
    out["best_proxy"] = best["proxy"]
    out["best_ground_truth"] = best["ground_truth"]
    out["oracle_ground_truth"] = g["ground_truth"].max()
    out["trials"] = g.size()
    out["budget"] = g.size()
    out["wall_s"] = g["wall_s"].sum()
    out["peak_bytes"] = g["peak_bytes"].mean()
    return out.reset_index()


def anytime_curves(runs: pd.DataFrame, keys=("dataset", "benchmark", "method", "sampler")) -> pd.DataFrame:
    """Per run and query q (1-based, trial order): ``best_truth``, the ground truth of the
    best-by-proxy architecture among the first q evaluations."""
    r = running_best(runs.assign(proxy=col(runs, "proxy"), ground_truth=col(runs, "ground_truth")), by="run_id")
    r["best_truth"] = r["ground_truth"].to_numpy()[r["best_pos"].to_numpy()]
    return r[["run_id", *[k for k in keys if k in r.columns], "query", "best_truth"]]


# --------------------------------------------------------------------------- search results


def search_results(res: dict) -> tuple["pd.DataFrame | None", "pd.DataFrame | None", list[str]]:
    """(summary rows, runs rows, notes) of each search benchmark's latest batch.

    Batches come from the summary table (complete runs); a benchmark with rows only in the runs
    table (an interrupted batch) is summarised from its runs. A newer interrupted batch of a
    benchmark that has a complete one is noted, not shown.
    """
    summary, runs = latest_batches(res.get("summary")), res.get("runs")
    notes = []
    chosen = latest_batch_ids(summary) if summary is not None else {}
    if runs is not None:
        newer = latest_batch_ids(runs)
        notes += [f"`{b}`: newer batch {newer[b]} in the runs table has no summary rows (interrupted?); "
                  f"showing the latest complete batch" for b in chosen
                  if b in newer and newer[b] != chosen[b] and is_later(newer[b], chosen[b])]
        orphans = runs[~_benchmarks(runs).isin(set(chosen))]
        extra = latest_batch_ids(orphans)
        if extra:
            derived = summaries_from_runs(orphans[orphans["batch_id"].isin(set(extra.values()))])
            summary = derived if summary is None else pd.concat([summary, derived], ignore_index=True)
            notes += [f"`{b}`: batch {extra[b]} has no summary rows (interrupted?); summarised from the runs table"
                      for b in extra]
            chosen = {**chosen, **extra}
        runs = runs[runs["batch_id"].isin(set(chosen.values()))] if chosen and "batch_id" in runs else None
        runs = runs if runs is not None and len(runs) else None
    return summary, runs, notes


# --------------------------------------------------------------------------- ordering


def order_values(values, preferred=()) -> list:
    """Distinct ``values``: those in ``preferred`` first, in its order, then the rest by name."""
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), str(v)))


def sort_preferred(df: pd.DataFrame, by: dict[str, tuple]) -> pd.DataFrame:
    """Sort by columns in a preferred value order (datasets as in the paper, REA first, ...)."""
    keys = {c: df[c].map({v: i for i, v in enumerate(order_values(df[c], pref))}) for c, pref in by.items()}
    return df.assign(**{f"_k_{c}": k for c, k in keys.items()}).sort_values(
        [f"_k_{c}" for c in by], kind="stable").drop(columns=[f"_k_{c}" for c in by])
