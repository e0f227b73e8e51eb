"""Kind ``search``: Optuna query searches (paper Sec. 4.2, Fig. 4; NB201 paper Table 5).

For every dataset x proxy x sampler x seed one study of ``budget`` trials; one ``runs`` row per
trial and one ``summary`` row per study (the best-by-proxy candidate and its ground truth).
With ``storage`` (a PostgreSQL / MySQL URL or a journal file) or ``workers > 1`` (then a journal file
under ``results/journals/``) the studies live in that storage and are run by workers that may sit
on many machines (:mod:`harness.bench.distributed`); without, each study runs in memory here.
"""
from __future__ import annotations

import time

import optuna
import pandas as pd

from harness import HarnessError
from harness.bench.context import proxy_context, run_meta
from harness.bench.definition import Definition
from harness.bench.distributed import create_studies, join_study, runs_of
from harness.methods.query.samplers import make_sampler
from harness.methods.query.search import search_once
from harness.methods.query.workers import run_processes
from harness.proxies import make_proxy, proxy_method
from harness.report.query import summarise_run
from harness.store.results import ResultsStore
from harness.store.storage import redact


def _distributed(defn: Definition, store: ResultsStore, batch_id: str, progress: bool, storage: str) -> pd.DataFrame:
    """Every study in ``storage``; this process runs ``workers`` local workers per study (others
    may join from any machine with ``harness worker``); finalisers write the summary rows."""
    names = create_studies(defn, storage, batch_id)
    print(f"{defn.name}: {len(names)} studies in {redact(str(storage))}; more workers join with: harness worker "
          f"--storage URL --study {batch_id}", flush=True)
    for run in runs_of(defn, batch_id):
        if proxy_method(run["proxy_name"]) not in (None, "original"):
            proxy_context(defn, run["dataset"], store, batch_id, progress).backbone_path()  # pre-train once, here
    t0 = time.perf_counter()
    if defn["workers"] == 1:
        for name in names:
            join_study(str(storage), name, str(store.root), progress=progress)
    else:  # every local worker walks the batch's studies in order
        run_processes(defn["workers"], "harness.bench.distributed:join_process",
                      {"storage_url": str(storage), "name": batch_id, "results": str(store.root)}, timeout_s=7 * 86400)
    summaries = store.read("summary")
    mine = pd.DataFrame(columns=["run_id"]) if summaries is None else summaries[summaries["run_id"].isin(names)]
    missing = [n for n in names if n not in set(mine["run_id"])]
    if missing:  # finalised on a machine whose results folder is not this one
        raise HarnessError(f"{defn.name}: studies finished but their summaries are in another results folder "
                           f"(first: {missing[0]})")
    print(f"{defn.name}: {len(names)} studies done in {time.perf_counter() - t0:.1f} s", flush=True)
    return mine.drop_duplicates("run_id").reset_index(drop=True)


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = defn.get("storage")
    if storage is None and defn["workers"] > 1:  # one machine: a journal file per batch
        storage = str(store.root / "journals" / f"{batch_id}.jsonl")
    if storage is not None:
        return _distributed(defn, store, batch_id, progress, storage)
    seeds = range(defn["seed_offset"], defn["seed_offset"] + defn["seeds"])
    summaries: list[dict] = []
    try:
        for dataset in defn["datasets"]:
            ctx = proxy_context(defn, dataset, store, batch_id, progress)
            for proxy_name in defn["proxies"]:
                proxy = make_proxy(proxy_name, ctx)
                for sampler in defn["samplers"]:
                    options = defn["sampler_options"].get(sampler, {})
                    t0, first = time.perf_counter(), len(summaries)
                    for seed in seeds:
                        meta = run_meta(defn, batch_id, seed, run_id=f"{batch_id}/{dataset}/{proxy_name}/{sampler}/s{seed}",
                                        dataset=dataset, proxy_name=proxy_name, sampler=sampler)
                        rows = search_once(ctx.space, proxy, make_sampler(sampler, seed, ctx.space, **options),
                                           defn["budget"], keep_interrupted=lambda done, meta=meta: store.append(
                                               "runs", done.assign(**meta, interrupted=True)))
                        rows = rows.assign(**meta)
                        store.append("runs", rows)
                        keep = ("run_id", "batch_id", "benchmark", "space", "proxy_name", "sampler", "dataset", "commit",
                                "config")
                        summaries.append({**{k: meta[k] for k in keep}, "seed": seed, "budget": defn["budget"],
                                          **summarise_run(rows), "device": rows["device"].iloc[0]})
                    s = pd.DataFrame(summaries[first:])
                    print(f"{defn.name}: {dataset:<14} {proxy_name:<19} {sampler:<6} best-by-proxy ground truth "
                          f"{s['best_ground_truth'].mean():.2f} ± {s['best_ground_truth'].std(ddof=0):.2f} "
                          f"over {len(s)} seeds ({time.perf_counter() - t0:.1f} s)", flush=True)
    except KeyboardInterrupt:  # keep the summaries of the runs that finished
        if summaries:
            store.append("summary", pd.DataFrame(summaries))
        raise
    out = pd.DataFrame(summaries)
    store.append("summary", out)
    return out
