"""Reading the results tables: every table of a results folder, its latest batches, numeric columns.

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


def benchmark_names(df: pd.DataFrame) -> pd.Series:
    if "benchmark" in df.columns:
        return df["benchmark"].astype(object).where(df["benchmark"].notna(), "–")
    return pd.Series("–", index=df.index, dtype=object)


def latest_batch_ids(df: "pd.DataFrame | None") -> dict[str, str]:
    """benchmark -> its latest batch id (stamp order; read order when a stamp is unreadable)."""
    if df is None or "batch_id" not in df.columns:
        return {}
    out = {}
    with_id = df.assign(benchmark=benchmark_names(df))[df["batch_id"].notna()].reset_index(drop=True)
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
    loose = df[~has_id & ~benchmark_names(df).isin(set(latest))]
    if key is not None and len(loose):
        loose = loose.drop_duplicates(subset=[c for c in ("benchmark", *key) if c in loose.columns], keep="last")
    out = pd.concat([df[keep], loose]) if len(loose) else df[keep]
    return out if len(out) else None


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
