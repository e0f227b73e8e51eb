"""The results store: every table is a Parquet dataset, one folder of immutable part files.

``results/<table>/part-<UTC yyyymmddTHHMMSS>-<host>-<pid>-<8 hex>.parquet``: each
:meth:`ResultsStore.append` writes ONE new part (temp file in the same folder, then
``os.replace``) and never reads or rewrites another part, so any number of processes -- on one
machine or several sharing a folder -- append without a lock and without losing rows. Readers take
only ``part-*.parquet`` files (never the ``.part-*.tmp`` temp files of a write in flight).

Every table declares its schema once, below (column names and Arrow types), and every part is written
with exactly that schema, a column the rows leave out as typed nulls: a reader that takes one part's
schema for the whole folder -- ``pandas.read_parquet(folder)``, ``pyarrow.dataset``, DuckDB --
then reads every part, with nothing to unify. A column not declared is refused. Parts written before
the schemas were declared may differ in columns and types; :meth:`ResultsStore.read` returns the
union of their columns (a column missing from a part reads as null), and
``scripts/migrate_results.py`` rewrites them to the declared schema.

Parts are read in the order of the UTC stamp in their name, then their modification time, then
their name -- the order they were written in; the leaderboard orders batches by the stamp inside their
batch id and uses this order only as a fallback.
"""
from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness import HarnessError, one_line
from harness.store.files import write_atomic

PART_GLOB = "part-*.parquet"
_STAMP = re.compile(r"(\d{8}T\d{6})")


#: Arrow type of each declared column type.
_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
_VERSIONS = "version_harness version_torch version_numpy version_pandas version_optuna version_python"
_RUN = "batch_id benchmark kind space config"  # harness.sections.context.run_meta, besides provenance
#: The per-method memory columns ('<method>/<figure>', harness.measure.memory.step_figures) for the
#: methods of the shipped memory definitions; another Tr-Net's columns are declared here first.
MEMORY_METHODS = ("original", "tr-net-5-5", "tr-supernet-2-3")
MEMORY_FIGURES = ("saved_bytes", "params", "trainable_params", "cuda_peak_bytes")


def _schema(*groups: str) -> pa.Schema:
    """Declared columns, ``name`` (a string column) or ``name:int`` / ``name:float`` / ``name:bool``."""
    fields = []
    for token in " ".join(groups).split():
        name, _, kind = token.partition(":")
        fields.append(pa.field(name, _TYPES[kind or "str"]))
    return pa.schema(fields)


@dataclass(frozen=True)
class TableSpec:
    name: str
    folder: str
    required: tuple[str, ...]
    description: str
    schema: pa.Schema  # every column a part may hold, with its Arrow type; every part is written with exactly this


_SPECS = (
    TableSpec("runs", "runs",
              ("run_id", "benchmark", "dataset", "trial", "proxy", "ground_truth"),
              "one row per search evaluation: run/batch ids, method or proxy_name, sampler, trial, arch_str, "
              "proxy value, 200-epoch ground truth, wall_s, cum_wall_s, peak_bytes, device, commit, version_*",
              _schema("trial:int arch_str proxy:float ground_truth:float wall_s:float peak_bytes:int device cached:bool",
                      "cum_wall_s:float run_id batch_id benchmark method evaluator sampler dataset commit", _VERSIONS,
                      "seed:int kind space config proxy_name study worker_host worker_pid:int retry_of:int",
                      "interrupted:bool")),
    TableSpec("summary", "summary", ("benchmark", "dataset", "best_ground_truth"),
              "one row per search run: the best-by-proxy architecture and what it reaches "
              "(harness.search.summary.summarise_run)",
              _schema("run_id batch_id benchmark method evaluator sampler dataset commit seed:int budget:int best_arch",
                      "best_proxy:float best_ground_truth:float oracle_ground_truth:float trials:int wall_s:float",
                      "peak_bytes:float device space proxy_name config")),
    TableSpec("rank", "rank", ("dataset", "proxy", "selection", "krocc", "srocc"),
              "one row per dataset x proxy x selection: KROCC / SROCC vs the 200-epoch test accuracy "
              "(paper Tables 1 and 3); batch_id, benchmark, n, draws, *_std",
              _schema("dataset proxy selection n:int draws:int krocc:float krocc_std:float srocc:float srocc_std:float",
                      "seed:int wall_s:float batch_id benchmark truth commit device", _VERSIONS,
                      "total_s:float joint_s:float timed:int nonfinite:int kind space config krocc_single:float",
                      "srocc_single:float single_draw_seed krocc_lo:float krocc_hi:float srocc_lo:float",
                      "srocc_hi:float ci_level:float ci_resamples:int recomputed_from peak_bytes:float",
                      "mean_offset:float")),
    TableSpec("train", "train", ("method", "dataset", "wall_s"),
              "one row per real training run: method, dataset, n_train, epochs, val/test acc, wall_s, "
              "images_per_s, saved_bytes, peak_cuda_bytes, params, trainable_params, device",
              _schema("space arch_str arch_index:int method dataset data_source n_train:int n_valid:int n_test:int",
                      "val_acc:float test_acc:float train_loss:float epochs:int warmup_epochs:int steps:int",
                      "wall_s:float images_per_s:float saved_bytes:int peak_cuda_bytes:int peak_rss_bytes:int",
                      "params:int trainable_params:int config history commit device", _VERSIONS,
                      "seed:int backbone backbone_sha256 backbone_meta prefix_bn batch_id benchmark study_run",
                      "concurrent:int compiled:bool transfer transfer_i:int transfer_j:int transfer_threshold:float",
                      "transfer_estimator transfer_cka:float transfer_min_cka:float transfer_path transfer_source",
                      "transfer_cka_archs")),
    TableSpec("memory", "memory", ("arch_str", "original/saved_bytes"),
              "one row per architecture: bytes autograd saves for backward in one training step as "
              "'<method>/saved_bytes' (original and each Tr-Net, e.g. 'tr-net-5-5/saved_bytes', likewise "
              "'<method>/params'); optional selection, batch_size, benchmark, batch_id, device (paper Table 2)",
              _schema("selection arch_str arch_index:int batch_size:int",
                      *(f"{m}/{f}:int" for m in MEMORY_METHODS for f in MEMORY_FIGURES),
                      "saved_ratio:float commit device", _VERSIONS, "seed:int tr_method", _RUN)),
    TableSpec("throughput", "throughput", ("method", "images_per_s"),
              "one row per architecture x method of a timed training step: method, images_per_s; optional "
              "selection, mode, arch_str, batch_size, median_step_s, device, benchmark, batch_id",
              _schema("selection arch_str method mode batch_size:int median_step_s:float images_per_s:float steps:int",
                      "threads:int device load_1min_start:float load_1min_end:float", _RUN, "commit", _VERSIONS,
                      "seed:int default_mode")),
    TableSpec("speed", "speed", ("measure", "mode"),
              "one row per measurement of harness.bench.kinds.throughput_speed: measure 'eval_cache' (per architecture: Tr-Net "
              "evaluation on the valid split, plain_s vs cached_s medians, speedup, fill_s, identical accuracies) "
              "or 'concurrent' (per K: images_per_s of K candidates training at once on one device)",
              _schema("measure selection arch_str method mode split n_images:int rounds:int plain_s:float",
                      "cached_s:float speedup:float fill_s:float identical:bool concurrent:int candidates:int",
                      "batch_size:int steps:int wall_s:float images_per_s:float device", _RUN, "commit", _VERSIONS,
                      "seed:int")),
    TableSpec("zero_cost", "zero_cost", ("proxy", "arch_str", "value"),
              "one row per architecture x zero-cost proxy of a rank run: proxy (zc:<measure>), arch_str, "
              "arch_index, dataset, value, ground_truth, wall_s (alone; NaN where not timed), joint_s, device",
              _schema("proxy arch_str arch_index:int dataset value:float ground_truth:float wall_s:float joint_s:float",
                      "device batch_size:int", _RUN, "commit", _VERSIONS)),
    TableSpec("rank_pairs", "rank_pairs", ("dataset", "selection", "proxy", "baseline", "krocc_diff"),
              "one row per proxy ranked on the same architectures as its rank run's baseline (compare_to): "
              "krocc_diff / srocc_diff = proxy minus baseline, their 95% paired-bootstrap bounds (_lo, _hi), "
              "two-sided bootstrap p-values krocc_p / srocc_p, n, ci_level, ci_resamples, seed, verdict",
              _schema("dataset selection proxy baseline n:int krocc_p:float srocc_p:float krocc_diff:float",
                      "krocc_diff_lo:float krocc_diff_hi:float srocc_diff:float srocc_diff_lo:float",
                      "srocc_diff_hi:float ci_level:float ci_resamples:int seed:int verdict batch_id recomputed_from",
                      "benchmark commit", _VERSIONS, "kind space config")),
    TableSpec("coordination", "coordination", ("storage", "workers", "trials", "trials_per_s"),
              "one row per storage x worker count of scripts/coordination.py: trials per second of one study on "
              "the tabular proxy, ask_s / tell_s latency quantiles (median, p95) of the budget-locked ask and the "
              "claim + row + tell",
              _schema("storage workers:int trials:int trials_per_s:float span_s:float ask_s_median:float",
                      "ask_s_p95:float tell_s_median:float tell_s_p95:float cpus:int commit device", _VERSIONS)),
    TableSpec("cka", "cka", ("network", "cell", "block", "cka"),
              "one row per (network, NAS cell, backbone block): linear CKA similarity (paper Figs. 1-2)",
              _schema("network kind arch cell:int block:int cka:float source train_seed:int val_acc:float",
                      "test_acc:float backbone backbone_name backbone_meta dataset data_source eval_split n_eval:int",
                      "epochs:int config commit device", _VERSIONS, "seed:int cell_shape block_shape estimator space",
                      "batch_id benchmark")),
    TableSpec("oneshot", "oneshot", ("run_id", "dataset", "supernet", "arch_str", "test_acc", "search_s"),
              "one row per one-shot search run (paper Table 4, Figs. 5-6): method (DARTS+PT, DARTS), supernet, "
              "found arch_str, its "
              "200-epoch test_acc, search_s = train_s + select_s, epoch_s, saved_bytes, cuda_peak_bytes, "
              "hessian (JSON [phase, epoch, eig, eig_power]), projections, seed, config",
              _schema("method arch_str test_acc:float supernet warmup_epochs:int cutout:int order epochs:int",
                      "tune_epochs:int batch_size:int n_train:int data_source search_s:float train_s:float",
                      "select_s:float measure_s:float hessian_s:float epoch_s:float saved_bytes:int",
                      "cuda_peak_bytes:int params:int trainable_params:int final_eig:float hessian projections",
                      "supernet_valid_acc:float search_config device", _RUN, "run_id dataset commit", _VERSIONS,
                      "seed:int")),
    TableSpec("oneshot_epochs", "oneshot_epochs", ("run_id", "supernet", "phase", "epoch"),
              "one row per one-shot search epoch: phase (search | tune), lr, train_loss, epoch_s, eig / eig_power "
              "(dominant Hessian eigenvalue w.r.t. alpha, NaN when not computed; paper Fig. 9)",
              _schema("phase epoch:int lr:float train_loss:float epoch_s:float eig:float eig_power:float run_id",
                      "dataset supernet seed:int warmup_epochs:int cutout:int batch_id benchmark")),
)
#: Every results table, by name.
TABLES: dict[str, TableSpec] = {s.name: s for s in _SPECS}


def _kind(t: pa.DataType) -> str:
    """A type as the declarations name it (``str``, ``int``, ``float``, ``bool``)."""
    return next((k for k, v in _TYPES.items() if v == t), "str" if pa.types.is_large_string(t) else str(t))


def _convertible(stored: pa.DataType, declared: pa.DataType) -> bool:
    """Whether values of ``stored`` type become ``declared`` ones without changing: all-null, the same
    type, integer <-> float (the cast itself refuses a fraction or an integer a double cannot hold
    exactly), string <-> large string (pandas writes either)."""
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean,
             lambda t: pa.types.is_string(t) or pa.types.is_large_string(t))
    numeric = (pa.types.is_integer, pa.types.is_floating)
    return (pa.types.is_null(stored) or any(k(stored) and k(declared) for k in kinds)
            or any(k(stored) for k in numeric) and any(k(declared) for k in numeric))


def check_declared(table: str, columns) -> None:
    """Raise one line naming the first of ``columns`` that ``table`` does not declare."""
    for name in columns:
        if TABLES[table].schema.get_field_index(name) < 0:
            raise HarnessError(f"results table {table!r}: column {name!r} is not declared (add it with its type to "
                               f"the table's schema in harness/store/results.py)")


def as_declared(table: str, columns: "dict[str, pa.Array | pa.ChunkedArray]", rows: int) -> pa.Table:
    """``columns`` (name -> values) as a table of exactly ``table``'s declared schema: declared order,
    declared types, a declared column not given as typed nulls. A column not declared, or values
    that are not of the column's type, raise one line naming the table and the column."""
    spec = TABLES[table]
    check_declared(table, columns)
    arrays = []
    for field in spec.schema:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(rows, field.type))
            continue
        if not _convertible(values.type, field.type):
            raise HarnessError(f"results table {table!r}: column {field.name!r} holds {_kind(values.type)} values, "
                               f"declared {_kind(field.type)}")
        try:
            arrays.append(values.cast(field.type))
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise HarnessError(f"results table {table!r}: column {field.name!r} cannot be stored as {field.type} "
                               f"({one_line(e)})") from None
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def rows_as_declared(table: str, df: pd.DataFrame) -> pa.Table:
    """Rows of a DataFrame as :func:`as_declared`; NaN is a null, as pandas reads it back."""
    columns = {}
    for name in df.columns:
        try:
            columns[name] = pa.array(df[name], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise HarnessError(f"results table {table!r}: column {name!r} cannot be stored as Parquet "
                               f"({one_line(e)})") from None
    return as_declared(table, columns, len(df))


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname() or "host")[:40] or "host"


def part_name(prefix: str = "") -> str:
    """A new, unique part file name: ``part-[<prefix>-]<UTC stamp>-<host>-<pid>-<8 hex>.parquet``."""
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    head = f"part-{prefix}-" if prefix else "part-"
    return f"{head}{stamp}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"


def _part_order(path: Path) -> tuple[str, int, str]:
    m = _STAMP.search(path.name)
    return (m.group(1) if m else "", path.stat().st_mtime_ns, path.name)


class ResultsStore:
    """The results tables under ``root`` (see the module docstring)."""

    def __init__(self, root: "str | Path" = "results"):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    # ------------------------------------------------------------------ layout

    def _spec(self, table: str) -> TableSpec:
        spec = TABLES.get(table)
        if spec is None:
            raise HarnessError(f"results table {table!r}: unknown; expected one of {', '.join(TABLES)}")
        return spec

    def path(self, table: str) -> Path:
        """The dataset folder of ``table``."""
        return self.root / self._spec(table).folder

    def parts(self, table: str) -> list[Path]:
        """The part files of ``table`` in write order (temp files excluded)."""
        folder = self.path(table)
        if not folder.is_dir():
            return []
        return sorted((p for p in folder.glob(PART_GLOB) if p.is_file()), key=_part_order)

    # ------------------------------------------------------------------ writing

    def append(self, table: str, rows: "pd.DataFrame | list[dict]", key: "str | None" = None) -> Path:
        """Write ``rows`` as one new part of ``table``; returns the part's path. With ``key`` the part
        is ``part-<key>.parquet`` and replaces an earlier part of that key (atomically), so a writer
        that may run twice -- a re-run after a crash -- never duplicates rows; one writer per key at
        a time."""
        spec = self._spec(table)
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if len(df) == 0:
            raise HarnessError(f"results table {table!r}: nothing to append (no rows)")
        missing = [c for c in spec.required if c not in df.columns]
        if missing:
            raise HarnessError(f"results table {table!r}: rows lack required column(s) {', '.join(missing)}")
        arrow = rows_as_declared(table, df)
        folder = self.path(table)
        folder.mkdir(parents=True, exist_ok=True)
        if key is not None:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", key):
                raise HarnessError(f"results table {table!r}: part key {key!r} must be letters, digits, '.', '_', '-'")
            # One writer per key at a time (the caller's promise): temp files of the key are a
            # crashed writer's leftovers.
            for stale in folder.glob(f".part-{key}.parquet.*.tmp"):
                stale.unlink(missing_ok=True)
            return write_atomic(folder / f"part-{key}.parquet", lambda tmp: pq.write_table(arrow, tmp))
        path = folder / part_name()
        while path.exists():  # 32 random bits per name: practically never
            path = folder / part_name()
        return write_atomic(path, lambda tmp: pq.write_table(arrow, tmp))

    # ------------------------------------------------------------------ reading

    def _schema(self, table: str, part: Path) -> pa.Schema:
        try:
            schema = pq.read_schema(part)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise HarnessError(f"{part}: not a readable Parquet part of table {table!r} ({one_line(e)})") from None
        missing = [c for c in self._spec(table).required if c not in schema.names]
        if missing:
            raise HarnessError(f"{part}: table {table!r} part lacks required column(s) {', '.join(missing)}")
        return schema

    def read(self, table: str, columns: "list[str] | None" = None) -> "pd.DataFrame | None":
        """All rows of ``table`` (union of the parts' columns, or just ``columns``); None without rows."""
        parts = self.parts(table)
        if not parts:
            return None
        tables = []
        for part in parts:
            names = self._schema(table, part).names
            cols = None if columns is None else [c for c in columns if c in names]
            try:
                t = pq.read_table(part, columns=cols)
            except Exception as e:
                raise HarnessError(f"{part}: not a readable Parquet part of table {table!r} ({one_line(e)})") from None
            tables.append(t.replace_schema_metadata(None))
        try:
            merged = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowException, TypeError) as e:
            raise HarnessError(f"results table {table!r} ({self.path(table)}): parts have incompatible "
                               f"column types ({one_line(e)})") from None
        if merged.num_rows == 0:
            return None
        df = merged.to_pandas()
        if columns is not None:
            df = df.reindex(columns=list(columns))  # requested but absent everywhere -> all null
        return df

    def check_writable(self) -> None:
        """Fail now, in one line, if parts could not be written under ``root`` (a read-only folder,
        a file where a folder should be) -- before any work whose results would then be lost.
        Creates nothing: a bad request must leave no folder behind."""
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise HarnessError(f"results folder {str(self.root)!r}: cannot write there ({str(existing)!r} is a file)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise HarnessError(f"results folder {str(self.root)!r}: cannot write there ({str(existing)!r} is read-only)")
        for table in TABLES:
            if self.path(table).exists() and not self.path(table).is_dir():
                raise HarnessError(f"results table {table!r}: {str(self.path(table))!r} is a file, expected a folder")

    def check_readable(self) -> None:
        """Read every part's schema (and check the columns unify); raise on the first bad part."""
        for table in TABLES:
            schemas = [self._schema(table, part).remove_metadata() for part in self.parts(table)]
            if schemas:
                try:
                    pa.unify_schemas(schemas, promote_options="permissive")
                except (pa.ArrowException, TypeError) as e:
                    raise HarnessError(f"results table {table!r} ({self.path(table)}): parts have incompatible "
                                       f"column types ({one_line(e)})") from None
