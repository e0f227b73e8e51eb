"""The ``cka`` table read back: one batch of rows as per-network (cells x blocks) matrices and their mean.

Rows written before the ``estimator`` column existed came from the unbiased minibatch estimator
(the only one then); rows without ``cell_shape`` / ``block_shape`` cannot say which pairs splice.
Analyses (the transfer-depth rule, ``--transfer auto``) and the report's heatmaps both read
through here.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.store.tables import batch_time

#: What rows without an ``estimator`` column were computed with.
LEGACY_ESTIMATOR = "unbiased_minibatch"


def as_matrix(matrix, name: str) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise HarnessError(f"{name}: a CKA matrix must be 2-D and non-empty, got shape {m.shape}")
    return m


def mean_matrix(matrices: Sequence) -> np.ndarray:
    """Element-wise mean over networks, ignoring NaN (a layer without variance in one network)."""
    stack = [as_matrix(m, f"matrix {k}") for k, m in enumerate(matrices)]
    if not stack:
        raise HarnessError("heatmap: no matrices to average")
    shapes = {m.shape for m in stack}
    if len(shapes) != 1:
        raise HarnessError(f"heatmap: cannot average CKA matrices of different shapes {sorted(shapes)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN squares stay NaN
        return np.nanmean(np.stack(stack), axis=0)


@dataclass(frozen=True)
class CkaTable:
    """One batch of CKA rows: a (cells x blocks) matrix per network, in row order, and their mean
    (over the NB201 networks; over all networks when there are only supernets)."""

    rows: pd.DataFrame
    names: list[str]
    kinds: list[str]
    matrices: list[np.ndarray]
    mean: np.ndarray
    estimator: str

    def first(self, column: str, default=None):
        """A per-run column's value (the same on every row of the batch)."""
        if column not in self.rows.columns or self.rows[column].isna().all():
            return default
        return self.rows[column].dropna().iloc[0]

    def shapes(self) -> "tuple[list, list] | None":
        """(cell shapes, block shapes) in order, or None for rows that do not record them."""
        if not {"cell_shape", "block_shape"} <= set(self.rows.columns) or self.rows["cell_shape"].isna().any():
            return None
        first = self.rows[self.rows["network"] == self.names[0]]
        cells = first.groupby("cell")["cell_shape"].first().sort_index().map(json.loads).tolist()
        blocks = first.groupby("block")["block_shape"].first().sort_index().map(json.loads).tolist()
        return cells, blocks


def cka_table(df: pd.DataFrame, source: str) -> CkaTable:
    """Rows of one CKA run -> :class:`CkaTable`; ``source`` names them in errors."""
    missing = {"network", "kind", "cell", "block", "cka"} - set(df.columns)
    if missing or df.empty:
        raise HarnessError(f"CKA table {source}: not a harness CKA table (missing columns {sorted(missing)} or no rows)")
    estimators = df["estimator"].dropna().unique().tolist() if "estimator" in df.columns else []
    if len(estimators) > 1:
        raise HarnessError(f"CKA table {source}: one batch mixes estimators {estimators}")
    names, matrices, kinds = [], [], []
    for name, part in df.groupby("network", sort=False):
        table = part.pivot(index="cell", columns="block", values="cka").sort_index().sort_index(axis=1)
        names.append(str(name))
        matrices.append(table.to_numpy(dtype=np.float64))
        kinds.append(str(part["kind"].iloc[0]))
    archs_only = [m for m, k in zip(matrices, kinds) if k == "nb201"]
    return CkaTable(rows=df, names=names, kinds=kinds, matrices=matrices, mean=mean_matrix(archs_only or matrices),
                    estimator=estimators[0] if estimators else LEGACY_ESTIMATOR)


def read_cka(path: "str | Path") -> CkaTable:
    """One Parquet file, or a folder of parts (a store's ``cka`` table) -> its latest batch (by the
    batch id's time stamp, then file order); rows without a batch id only when none has one."""
    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise HarnessError(f"CKA table {path}: no such file (or no part-*.parquet in the folder)")
    try:
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    except Exception as exc:  # pyarrow raises several kinds for a non-Parquet file
        raise HarnessError(f"CKA table {path}: not a readable Parquet file ({type(exc).__name__})") from None
    if "batch_id" in df.columns and df["batch_id"].notna().any():
        ids = df["batch_id"].dropna()
        last_row = {b: i for i, b in zip(ids.index, ids)}
        latest = max(last_row, key=lambda b: (batch_time(b) or "", last_row[b]))
        df = df[df["batch_id"] == latest].reset_index(drop=True)
    return cka_table(df, str(path))
