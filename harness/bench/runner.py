"""Run benchmark definitions: the one path by which every experiment's rows reach the store.

Each run gets a ``batch_id`` (``<name>-<UTC stamp>-<6 hex>``); every row it writes carries it, the
benchmark name, the full definition (``config``, defaults filled in), commit, versions and seed.
The leaderboard shows each benchmark's latest batch. A kind that can resume (``search``) continues
the unfinished batch of the same definition instead, unless ``new_batch``.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness import HarnessError
from harness.bench.definition import Definition
from harness.bench.kinds import KIND_RESUMERS, KIND_RUNNERS
from harness.store.results import ResultsStore


def new_batch_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_benchmark(defn: Definition, results: "str | Path" = "results", progress: bool = True,
                  new_batch: bool = False) -> pd.DataFrame:
    """Run one validated definition; its rows go to the store under ``results``. An unfinished
    batch of the same definition is resumed unless ``new_batch``."""
    store = ResultsStore(results)
    store.check_writable()  # an unwritable results folder or a corrupt part stops us before any work
    store.check_readable()
    if defn.kind not in KIND_RUNNERS:
        raise HarnessError(f"{defn.source}: kind {defn.kind!r} has no runner")
    resume = None if new_batch or defn.kind not in KIND_RESUMERS else KIND_RESUMERS[defn.kind](defn, store)
    return KIND_RUNNERS[defn.kind](defn, store, resume or new_batch_id(defn.name), progress)
