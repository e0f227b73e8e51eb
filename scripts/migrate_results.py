"""Bring a results folder to the current results store: old single files to parts, every part to its declared schema.

1. Old single files. Each old file becomes ONE part of its table's dataset (:mod:`harness.store.results`), with the same
rows, then the old file (and its ``.lock`` file) is removed:

    runs.parquet -> runs/    summary.parquet -> summary/    rank.parquet -> rank/
    train.parquet -> train/  memory-nb201.parquet -> memory/  cka/cka.parquet -> cka/

Rank rows without a ``batch_id`` (written by the old ``harness rank`` command) get
``batch_id = "rank-cli-<yyyymmddTHHMMSS>-migrated"`` (the old file's modification time, UTC) and
``benchmark = "rank-cli"`` where it is missing; memory rows get ``benchmark = "memory-nb201"`` and
``batch_id = "memory-nb201-<stamp>-migrated"`` where missing, so the leaderboard can pick the
latest batch; old memory columns are renamed to the memory table's (``arch`` -> ``arch_str``,
``kind`` -> ``selection``, ``original_saved_bytes`` -> ``original/saved_bytes``,
``trnet_5_5_saved_bytes`` -> ``tr-net-5-5/saved_bytes``, likewise params and trainable_params). The part is named ``part-migrated-<stamp>-<8 hex of the old file's sha256>.parquet``:
running the script again (even after an interruption between writing the part and removing the old
file) never duplicates rows, and with no old file left it does nothing.

2. Declared schemas. Every part whose schema is not exactly its table's declared one
(:data:`harness.store.results.TABLES`: parts written before the schemas were declared, or before a
column was added to one) is rewritten with it -- same rows, same order, a column the part lacks as
typed nulls -- so that any Parquet reader opens the table folder as it is. Nothing is replaced
unless, for every table, every value of every part and of the whole table (as the store reads it)
is equal before and after (NaN and null count as equal, an int64 1 equals a double 1.0), a part's
new columns are all null, and the part names and modification times (the store's read order) stay.
Each part is replaced atomically (temp file, rename); afterwards every table must read with a plain
``pyarrow.dataset`` of its parts (what ``pandas.read_parquet(folder)`` uses) and give the same rows
and values. Running it again rewrites nothing. Run it while nothing writes to the folder: a keyed
part replaced meanwhile (a search's ``runs`` part) would be overwritten with its older rows.

    .venv/bin/python scripts/migrate_results.py results [--dry-run]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness import HarnessError, one_line
from harness.store.files import write_atomic
from harness.store.results import PART_GLOB, TABLES, ResultsStore, as_declared

#: old file (relative to the results folder) -> table
OLD_FILES = {"runs.parquet": "runs", "summary.parquet": "summary", "rank.parquet": "rank",
             "train.parquet": "train", "memory-nb201.parquet": "memory", "cka/cka.parquet": "cka"}
#: table -> the benchmark name given to rows without a batch id
FILL_BATCH = {"rank": "rank-cli", "memory": "memory-nb201"}


def _stamp(path: Path) -> str:
    return f"{datetime.fromtimestamp(path.stat().st_mtime, timezone.utc):%Y%m%dT%H%M%S}"


def _sha8(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:8]


def _fill_batch(df: pd.DataFrame, table: str, stamp: str) -> tuple[pd.DataFrame, int]:
    """Give rows without a batch id the migration's batch id (and benchmark where missing)."""
    bench = FILL_BATCH.get(table)
    if bench is None:
        return df, 0
    ids = df["batch_id"] if "batch_id" in df.columns else pd.Series(None, index=df.index, dtype=object)
    lacking = ids.isna()
    if not lacking.any():
        return df, 0
    df = df.copy()
    df["batch_id"] = ids.astype(object).where(~lacking, f"{bench}-{stamp}-migrated")
    benches = df["benchmark"].astype(object) if "benchmark" in df.columns else pd.Series(None, index=df.index,
                                                                                         dtype=object)
    df["benchmark"] = benches.where(~(lacking & benches.isna()), bench)
    return df, int(lacking.sum())


_OLD_MEMORY = re.compile(r"^(original|trnet_(\d+)_(\d+))_(.+)$")


def _memory_columns(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Old memory rows (``arch``, ``kind``, ``original_saved_bytes``, ``trnet_5_5_saved_bytes``, ...) in
    the memory table's columns (``arch_str``, ``selection``, ``original/saved_bytes``,
    ``tr-net-5-5/saved_bytes``, ...)."""
    if table != "memory":
        return df
    names = {"arch": "arch_str", "kind": "selection"}
    trnets = set()
    for c in df.columns:
        m = _OLD_MEMORY.match(c)
        if m:
            method = "original" if m.group(1) == "original" else f"tr-net-{m.group(2)}-{m.group(3)}"
            trnets |= {method} - {"original"}
            names[c] = f"{method}/{m.group(4)}"
    df = df.rename(columns={k: v for k, v in names.items() if k in df.columns and v not in df.columns})
    if "tr_method" not in df.columns and len(trnets) == 1:
        df["tr_method"] = trnets.pop()
    return df


def migrate(results: "str | Path", dry_run: bool = False, log=print) -> list[Path]:
    """Migrate every old file of ``results``; returns the parts written (or that would be)."""
    results = Path(results)
    if not results.is_dir():
        raise HarnessError(f"results folder {str(results)!r}: does not exist")
    store = ResultsStore(results)
    done = []
    for old, table in OLD_FILES.items():
        src = results / old
        if not src.is_file():
            continue
        try:
            df = pd.read_parquet(src)
        except Exception as e:
            raise HarnessError(f"{src}: not a readable Parquet file ({type(e).__name__}: {e})") from None
        stamp = _stamp(src)
        df, filled = _fill_batch(_memory_columns(df, table), table, stamp)
        missing = [c for c in TABLES[table].required if c not in df.columns]
        if missing:
            raise HarnessError(f"{src}: missing column(s) {', '.join(missing)} required by table {table!r}")
        sha8 = _sha8(src)
        earlier = sorted(store.path(table).glob(f"part-migrated-*-{sha8}.parquet"))  # an interrupted run's part
        dest = earlier[0] if earlier else store.path(table) / f"part-migrated-{stamp}-{sha8}.parquet"
        what = f"{src} ({len(df)} rows) -> {dest}" + (f"; {filled} row(s) given a batch id" if filled else "")
        if dry_run:
            log(f"would migrate {what}; then remove {src}")
            done.append(dest)
            continue
        if len(df) and not dest.exists():
            write_atomic(dest, lambda tmp: df.to_parquet(tmp, index=False))
            if pq.read_metadata(dest).num_rows != len(df):
                raise HarnessError(f"{dest}: row count differs from {src} after writing; old file kept")
        src.unlink()
        Path(str(src) + ".lock").unlink(missing_ok=True)
        log(f"migrated {what}; removed {src}" if len(df) else f"removed empty {src}")
        done.append(dest)
    if not done:
        log(f"{results}: nothing to migrate")
    else:
        store.check_readable()
    return done


def _cells(column: pd.Series) -> list:
    """A column's values as plain Python values, NaN / None / NA as None: what equality compares."""
    return [None if pd.api.types.is_scalar(v) and pd.isna(v) else v.item() if isinstance(v, np.generic) else v
            for v in column.astype(object)]


def same_values(before: pd.DataFrame, after: pd.DataFrame, where: str) -> None:
    """Raise unless ``after`` has the rows of ``before`` in the same order, every column of
    ``before`` with equal values, and only null values in its other columns."""
    if len(after) != len(before):
        raise HarnessError(f"{where}: {len(after)} rows after, {len(before)} before")
    for name in after.columns:
        values = _cells(after[name])
        if name not in before.columns:
            if any(v is not None for v in values):
                raise HarnessError(f"{where}: column {name!r} is new but not null")
            continue
        for row, (old, new) in enumerate(zip(_cells(before[name]), values)):
            if old != new:
                raise HarnessError(f"{where}: column {name!r} row {row}: {old!r} before, {new!r} after")
    lost = [c for c in before.columns if c not in after.columns]
    if lost:
        raise HarnessError(f"{where}: column(s) {', '.join(lost)} lost")


def _declared(table: str, part: Path) -> tuple[pa.Table, pa.Table]:
    """(the part as stored, the part in the declared schema)."""
    try:
        old = pq.read_table(part)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise HarnessError(f"{part}: not a readable Parquet part of table {table!r} ({one_line(e)})") from None
    try:
        return old, as_declared(table, {n: old.column(n) for n in old.column_names}, old.num_rows)
    except HarnessError as e:
        raise HarnessError(f"{part}: {e}") from None


def conform(results: "str | Path", dry_run: bool = False, log=print) -> dict[str, tuple[int, int, int]]:
    """Rewrite every part of ``results`` that is not in its table's declared schema (see the module
    docstring); table -> (parts, rows, parts rewritten or that would be)."""
    store = ResultsStore(results)
    plan, checked, out = [], {}, {}
    for table, spec in TABLES.items():  # every check first: nothing is replaced if one fails
        parts = store.parts(table)
        if not parts:
            continue
        frames, rewrite = [], 0
        for part in parts:
            old, new = _declared(table, part)
            same_values(old.to_pandas(), new.to_pandas(), str(part))
            frames.append(new)
            if not pq.read_schema(part).equals(spec.schema, check_metadata=True):
                plan.append((part, new))
                rewrite += 1
        union = store.read(table)  # as the store reads the parts now
        same_values(union, pa.concat_tables(frames).to_pandas(), f"results table {table!r}")
        checked[table] = (union, {p.name: t.to_pandas() for p, t in zip(parts, frames)})
        out[table] = (len(parts), len(union), rewrite)
    for part, new in plan:
        if dry_run:
            log(f"would rewrite {part} ({new.num_rows} rows) with its table's declared schema")
            continue
        stat = part.stat()

        def write(tmp: Path, new=new, stat=stat) -> None:
            pq.write_table(new, tmp)
            os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the read order: stamp, then mtime
        write_atomic(part, write)
    if not dry_run:  # the files on disk hold what was checked, read as the store and as plain readers do
        for table, (union, declared) in checked.items():
            same_values(union, store.read(table), f"results table {table!r} after rewriting")
            names = sorted(declared)  # a folder's parts in the order pyarrow.dataset lists them
            plain = ds.dataset([str(store.path(table) / n) for n in names], format="parquet").to_table().to_pandas()
            same_values(pd.concat([declared[n] for n in names], ignore_index=True), plain,
                        f"pyarrow.dataset of {store.path(table)} after rewriting")
    for table, (parts, rows, rewrite) in out.items():
        log(f"{table}: {parts} parts, {rows} rows, every value equal before and after; "
            f"{rewrite} part(s) {'would be ' if dry_run else ''}rewritten")
        # pyarrow skips names starting with '.' or '_'; any other file breaks reading the folder.
        strays = sorted(p.name for p in store.path(table).iterdir() if p.is_file() and p.name[0] not in "._"
                        and not p.match(PART_GLOB))
        if strays:
            log(f"note: {store.path(table)} also holds {', '.join(strays)}: plain Parquet readers of the folder "
                "fail on them until they are moved out")
    return out


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default="results", help="the results folder (default: results)")
    ap.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    args = ap.parse_args(argv)
    try:
        migrate(args.results, dry_run=args.dry_run)
        conform(args.results, dry_run=args.dry_run)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
