"""Search studies in a shared Optuna storage: created by ``harness bench``, joined by ``harness worker``
(both through :mod:`harness.search.batch`).

One study per (batch, dataset, proxy, sampler, seed), named by the run id
``<batch_id>/<dataset>/<proxy>/<sampler>/s<seed>``. The study carries everything a worker needs as
user attributes: ``harness:config`` (the definition, defaults filled in, less the machine-local keys
``storage`` and ``workers``) and ``harness:run`` (batch, dataset, proxy, sampler, seed, budget,
position in the batch). A worker therefore needs only the storage URL and a study or batch name.

The study is the record of every finished trial: each trial stores its score, cost and worker
(host, pid) on itself, so a crash loses no finished evaluation. The worker that first finds the
budget met (under the study lock) finalises the study once: it writes the run's ``runs`` rows (one
per COMPLETE trial, carrying ``study``, ``trial`` and ``worker_host``) and its one ``summary`` row,
each as one Parquet part keyed by the study, so a finaliser that dies half-way and runs again
replaces them instead of duplicating rows (and a Parquet part per trial, ~5 ms, is not written).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time

import optuna
import pandas as pd
from optuna.trial import TrialState

from harness import HarnessError
from harness.definition.schema import Definition, build_definition
from harness.methods.samplers import make_sampler
from harness.proxies import make_proxy
from harness.search.faults import FAULTS, Faults
from harness.search.loop import optimize_to_budget, worker_seed
from harness.search.spec import SPEC
from harness.search.storage import StudyLock, load_study, optuna_storage
from harness.search.summary import summarise_run
from harness.search.trials import evaluate_trial, trial_row, with_cumulative
from harness.sections.context import proxy_context, run_meta
from harness.store.results import ResultsStore

CONFIG, RUN = "harness:config", "harness:run"
#: Definition keys that may differ between the machines of one study.
LOCAL_KEYS = ("storage", "workers")
SUMMARY_KEYS = ("run_id", "batch_id", "benchmark", "space", "proxy_name", "sampler", "dataset", "commit", "config")


_STORAGES: dict[str, optuna.storages.BaseStorage] = {}


def _storage(url: str) -> optuna.storages.BaseStorage:
    """One storage (one connection pool) per URL and process, however many studies it walks."""
    if url not in _STORAGES:
        _STORAGES[url] = optuna_storage(url)
    return _STORAGES[url]


def _forget_storages() -> None:
    """In a forked child: the parent's storages are not ours (a journal storage's worker id would
    be shared with the parent and the siblings; a database pool's connections are the parent's)."""
    for storage in _STORAGES.values():
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose(close=False)
    _STORAGES.clear()


os.register_at_fork(after_in_child=_forget_storages)


def study_config(defn: Definition) -> dict:
    return {k: v for k, v in defn.as_config().items() if k not in LOCAL_KEYS}


def runs_of(defn: Definition, batch_id: str) -> list[dict]:
    """The studies of one search definition, in the order they run."""
    seeds = range(defn["seed_offset"], defn["seed_offset"] + defn["seeds"])
    out = []
    for dataset in defn["datasets"]:
        for proxy_name in defn["proxies"]:
            for sampler in defn["samplers"]:
                for seed in seeds:
                    out.append({"run_id": f"{batch_id}/{dataset}/{proxy_name}/{sampler}/s{seed}", "batch_id": batch_id,
                                "dataset": dataset, "proxy_name": proxy_name, "sampler": sampler, "seed": seed,
                                "budget": defn["budget"], "index": len(out)})
    return out


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            found = _first_difference(a[k], b[k], f"{prefix}{k}.")
            if found:
                return found
        elif a.get(k) != b.get(k):
            return f"key {prefix}{k!s}: stored {a.get(k)!r}, given {b.get(k)!r}"
    return ""


def create_studies(defn: Definition, storage_url: str, batch_id: str) -> list[str]:
    """Create (or, resuming a batch, check) every study of ``defn``; their names in run order.
    A study that exists with another definition is a :class:`HarnessError` naming the first key."""
    storage = optuna_storage(storage_url)
    config = study_config(defn)
    names = []
    for run in runs_of(defn, batch_id):
        name = run["run_id"]
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
            study.set_user_attr(CONFIG, config)
            study.set_user_attr(RUN, run)
        else:
            stored = study.user_attrs.get(CONFIG)
            if stored != json.loads(json.dumps(config)):
                diff = _first_difference(stored or {}, json.loads(json.dumps(config)))
                raise HarnessError(f"study {name!r}: {defn.source} disagrees with the definition stored "
                                   f"with the study ({diff})")
        names.append(name)
    return names


def study_names(storage_url: str, name: str) -> list[str]:
    """``name`` is one study, or a batch id: then its studies, in run order."""
    storage = _storage(storage_url)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if any(s.study_name == name for s in summaries):
        return [name]
    batch = [s for s in summaries if s.study_name.startswith(name.rstrip("/") + "/")]
    if not batch:
        raise HarnessError(f"study {name!r}: no study or batch of that name in the storage")
    return [s.study_name for s in sorted(batch, key=lambda s: s.user_attrs.get(RUN, {}).get("index", 0))]


def summary_row(meta: dict, run: dict, rows: pd.DataFrame) -> dict:
    return {**{k: meta[k] for k in SUMMARY_KEYS}, "seed": run["seed"], "budget": run["budget"],
            **summarise_run(rows), "device": rows["device"].iloc[0]}


def part_key(study_name: str) -> str:
    """The key of a study's Parquet parts: readable, unique (a hash of the exact name)."""
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9.-]+', '_', study_name)[:150]}-{digest}"


def study_meta(defn: Definition, run: dict, study_name: str) -> dict:
    """What every ``runs`` row of a study carries besides the trial's own columns."""
    return {**run_meta(defn, run["batch_id"], run["seed"], run_id=study_name, dataset=run["dataset"],
                       proxy_name=run["proxy_name"], sampler=run["sampler"]), "study": study_name}


def write_rows(study: optuna.Study, space, meta: dict, store: ResultsStore, **marks) -> "pd.DataFrame | None":
    """The ``runs`` rows of the study's COMPLETE trials, in trial order, as the study's one part
    (replacing an earlier one); None when no trial is complete."""
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    if not done:
        return None
    rows = with_cumulative(pd.DataFrame([{**trial_row(space, t), **meta, **marks} for t in done]))
    store.append("runs", rows, key=part_key(meta["study"]))
    return rows


def join_study(storage_url: str, study_name: str, results: str, *, progress: bool = False,
               faults: Faults = FAULTS, index: "int | None" = None, timings: "list | None" = None) -> list[int]:
    """Work on one study until it holds its budget of COMPLETE trials; the numbers this worker ran.
    ``index``: this machine's worker number (0 reproduces a single-process run); None for a worker
    that joined from anywhere (its sampler seed is drawn from its host and process)."""
    storage = _storage(storage_url)
    loaded = load_study(storage, study_name)
    attrs = loaded.user_attrs
    if CONFIG not in attrs or RUN not in attrs:
        raise HarnessError(f"study {study_name!r}: not a harness search study (no {CONFIG!r} / {RUN!r} attributes)")
    run = attrs[RUN]
    defn = build_definition(attrs[CONFIG], f"study {study_name!r}", {SPEC.name: SPEC})
    store = ResultsStore(results)
    ctx = proxy_context(defn, run["dataset"], store, run["batch_id"], progress)
    options = defn["sampler_options"].get(run["sampler"], {})
    sampler = make_sampler(run["sampler"], run["seed"], ctx.space, **options)
    worker = index if index is not None else 1 + hash((socket.gethostname(), os.getpid())) % (2**31 - 1)
    seed = worker_seed(sampler, run["seed"], worker, start=len(loaded.get_trials(deepcopy=False)))
    if seed != run["seed"]:
        sampler = make_sampler(run["sampler"], seed, ctx.space, **options)
    study = load_study(storage, study_name, sampler=sampler)
    proxy = make_proxy(run["proxy_name"], ctx)
    meta = study_meta(defn, run, study_name)
    me = {"worker_host": socket.gethostname(), "worker_pid": os.getpid()}
    delay = float(defn.get("delay_s", 0.0))

    def objective(trial: optuna.Trial) -> float:
        value = evaluate_trial(trial, ctx.space, proxy, extra=me)
        if delay:
            time.sleep(delay)  # an emulated evaluation cost (coordination tests and benchmarks)
        return value

    def finalise(study: optuna.Study) -> None:
        rows = write_rows(study, ctx.space, meta, store)
        store.append("summary", [summary_row(meta, run, rows)], key=part_key(study_name))

    return optimize_to_budget(study, objective, run["budget"], StudyLock(storage_url, study_name),
                              finalise=finalise, faults=faults, timings=timings)


def join_studies(storage_url: str, name: str, results: str = "results", *, progress: bool = False,
                 faults: Faults = FAULTS, index: "int | None" = None) -> dict[str, list[int]]:
    """Work on a study, or on every study of a batch in run order: study -> trial numbers run."""
    return {s: join_study(storage_url, s, results, progress=progress, faults=faults, index=index)
            for s in study_names(storage_url, name)}


def join_process(index: int, **kwargs) -> dict[str, list[int]]:
    """Entry point of a local worker process started by :func:`harness.search.batch.run_batch`."""
    return join_studies(index=index, **kwargs)
