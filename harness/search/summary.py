"""What a search run found: THE one place for "best by proxy".

A search run's result is the architecture with the highest proxy value among those it evaluated,
ties going to the earliest trial (the architecture the search would have returned first); its
200-epoch NB201 test accuracy is what the paper's Fig. 4 reports. :func:`running_best` implements
the rule once; :func:`best_by_proxy`, :func:`summarise_run`, :func:`summaries_from_runs` and
:func:`anytime_curves` all use it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.store.tables import benchmark_names, col, is_later, latest_batch_ids, latest_batches

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
        orphans = runs[~benchmark_names(runs).isin(set(chosen))]
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
