"""Coordination overhead of one search study shared by N worker processes: PostgreSQL vs journal file.

Each configuration runs the one study of a ``search`` definition (REA, ``--budget`` trials, the
tabular Original proxy ``nb201-12ep-val``: an evaluation costs ~1 ms, so what is measured is the
coordination: the budget lock, the ask, the trial's attributes, the claim, the tell, the rows the
finaliser writes) with 1, 4 and 8 worker processes on this machine -- the batch's own layers
(:func:`harness.search.studies.create_studies`, :func:`harness.search.processes.run_processes`,
:func:`harness.search.studies.join_study`), timed per trial -- and appends one row per
configuration to the ``coordination`` table:

* ``trials_per_s``: budget / (last trial completed - first trial started), from the study itself;
* ``ask_s_median`` / ``ask_s_p95``: reap + count + ask under the study lock, per trial;
* ``tell_s_median`` / ``tell_s_p95``: claim (under the lock) + tell, per trial.

Usage: ``python scripts/coordination.py --postgres postgresql://postgres@127.0.0.1/postgres
[--budget 100] [--workers 1 4 8] [--results results]``; the PostgreSQL URL names a database on
which the script may create and drop ``harness_coord_<hex>`` databases (the first path component
is replaced).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import TrialState

from harness.bench.definitions import build_definition
from harness.runinfo import run_record
from harness.search.processes import run_processes
from harness.search.storage import optuna_storage
from harness.search.studies import create_studies, join_study
from harness.store.results import ResultsStore

#: This script as a module its worker processes import (its folder is on their sys.path).
THIS = Path(__file__).stem


def _admin(url: str, sql: str) -> None:
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(sql))
    engine.dispose()


def timed_worker(index: int, *, storage: str, study: str, results: str) -> list:
    """One worker process of the study, as a batch runs it: (ask_s, tell_s) per trial it ran."""
    timings: list = []
    join_study(storage, study, results, index=index, timings=timings)
    return timings


def measure(storage: str, workers: int, budget: int, rows_root: Path) -> dict:
    defn = build_definition({"name": "coordination", "kind": "search", "datasets": ["cifar10"], "samplers": ["rea"],
                             "budget": budget, "storage": storage, "workers": workers}, "scripts/coordination.py")
    [name] = create_studies(defn, storage, f"coord-{uuid.uuid4().hex[:6]}")
    outs = run_processes(workers, f"{THIS}:timed_worker", {"storage": storage, "study": name,
                                                            "results": str(rows_root)}, torch_free=True)
    trials = optuna.load_study(study_name=name, storage=optuna_storage(storage)).get_trials(
        states=(TrialState.COMPLETE,))
    assert len(trials) == budget, f"{len(trials)} COMPLETE trials, expected {budget}"
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    timings = np.array([x for ts in outs for x in ts])
    return {"workers": workers, "trials": budget, "trials_per_s": budget / span, "span_s": span,
            "ask_s_median": float(np.median(timings[:, 0])), "ask_s_p95": float(np.quantile(timings[:, 0], 0.95)),
            "tell_s_median": float(np.median(timings[:, 1])), "tell_s_p95": float(np.quantile(timings[:, 1], 0.95))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--postgres", required=True, help="a PostgreSQL URL whose server may host a scratch database")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--results", default="results")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base, _, _ = args.postgres.rpartition("/")
    store, record = ResultsStore(args.results), run_record()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            db = f"harness_coord_{uuid.uuid4().hex[:8]}"
            _admin(args.postgres, f"CREATE DATABASE {db}")
            try:
                for kind, storage in (("postgresql", f"{base}/{db}"), ("journal", os.path.join(tmp, f"{db}.jsonl"))):
                    row = {"storage": kind, **measure(storage, workers, args.budget, Path(tmp) / "rows"),
                           "cpus": os.cpu_count(), **record}
                    rows.append(row)
                    print(f"{kind:<10} {workers} workers: {row['trials_per_s']:6.1f} trials/s  ask median "
                          f"{row['ask_s_median'] * 1e3:6.1f} ms (p95 {row['ask_s_p95'] * 1e3:6.1f})  tell median "
                          f"{row['tell_s_median'] * 1e3:6.1f} ms (p95 {row['tell_s_p95'] * 1e3:6.1f})", flush=True)
            finally:
                _admin(args.postgres, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(f"appended to {store.append('coordination', rows)}")


if __name__ == "__main__":
    main()
