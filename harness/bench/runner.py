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
from harness.bench.kinds import KINDS
from harness.definition.schema import Definition
from harness.sections.context import check_inputs
from harness.store.results import ResultsStore


def new_batch_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def check_benchmark(defn: Definition, results: "str | Path" = "results", new_batch: bool = False,
                    batch: "str | None" = None) -> None:
    """What a run of the validated ``defn`` needs beyond its file, checked before any work and creating
    nothing: the arguments, the results folder (writable, every part readable), the images and the
    backbone checkpoint it reads, and a search's storage and batch. ``harness bench`` checks every file so before running any."""
    kind = KINDS.get(defn.kind)
    if kind is None:
        raise HarnessError(f"{defn.source}: kind {defn.kind!r} has no runner")
    if batch is not None and (kind.resume is None or defn.get("storage") is None):
        raise HarnessError(f"{defn.source}: a batch id resumes search studies in a storage: the definition must be "
                           "a search with --storage or a 'storage' key")
    if batch is not None and new_batch:
        raise HarnessError("--batch resumes a batch, --new-batch starts one: give at most one of them")
    store = ResultsStore(results)
    store.check_writable()  # an unwritable results folder or a corrupt part stops us before any work
    store.check_readable()
    check_inputs(defn)
    if kind.check is not None:
        kind.check(defn, batch)


def run_benchmark(defn: Definition, results: "str | Path" = "results", progress: bool = True,
                  new_batch: bool = False, batch: "str | None" = None) -> pd.DataFrame:
    """Run one validated definition; its rows go to the store under ``results``. An unfinished
    batch of the same definition is resumed unless ``new_batch``; ``batch`` resumes that batch of
    studies in the definition's ``storage`` (a search's studies on a shared server)."""
    check_benchmark(defn, results, new_batch, batch)
    store = ResultsStore(results)
    kind = KINDS[defn.kind]
    if batch is None and not new_batch and kind.resume is not None:
        batch = kind.resume(defn, store)
    return kind.run(defn, store, batch or new_batch_id(defn.name), progress)
