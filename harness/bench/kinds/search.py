"""Kind ``search``: Optuna query searches (paper Sec. 4.2, Fig. 4; NB201 paper Table 5).

For every dataset x proxy x sampler x seed one study of ``budget`` trials; one ``runs`` row per
trial and one ``summary`` row per study (the best-by-proxy candidate and its ground truth).
``workers > 1`` runs each study from that many processes sharing one journal file, every worker
writing its own trial rows.
"""
from __future__ import annotations

import time

import optuna
import pandas as pd

from harness.bench.context import proxy_context, run_meta
from harness.bench.definition import Definition
from harness.methods.query.samplers import make_sampler
from harness.methods.query.search import search_once, with_cumulative
from harness.methods.query.workers import run_workers
from harness.proxies import make_proxy, proxy_method
from harness.report.query import summarise_run
from harness.store.results import ResultsStore


def _with_workers(defn: Definition, ctx, proxy_name: str, sampler: str, seed: int, meta: dict,
                  store: ResultsStore) -> pd.DataFrame:
    journal = store.root / "journals" / (meta["run_id"].replace("/", "_") + ".jsonl")
    if proxy_method(proxy_name) not in (None, "original"):
        ctx.backbone_path()  # pre-train the backbone once, here, not in every worker
    run_workers(defn["workers"], journal, meta["run_id"], "harness.methods.query.search:worker_objective",
                defn["budget"], sampler_name=sampler, seed=seed, space=defn["space"],
                sampler_options=defn["sampler_options"].get(sampler, {}),
                objective_kwargs={"ctx": ctx, "proxy_name": proxy_name, "results": str(store.root), "meta": meta})
    rows = store.read("runs")
    return with_cumulative(rows[rows["run_id"] == meta["run_id"]].copy())


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = range(defn["seed_offset"], defn["seed_offset"] + defn["seeds"])
    summaries = []
    for dataset in defn["datasets"]:
        ctx = proxy_context(defn, dataset, store, batch_id, progress)
        for proxy_name in defn["proxies"]:
            proxy = make_proxy(proxy_name, ctx) if defn["workers"] == 1 else None
            for sampler in defn["samplers"]:
                options = defn["sampler_options"].get(sampler, {})
                t0, first = time.perf_counter(), len(summaries)
                for seed in seeds:
                    meta = run_meta(defn, batch_id, seed, run_id=f"{batch_id}/{dataset}/{proxy_name}/{sampler}/s{seed}",
                                    dataset=dataset, proxy_name=proxy_name, sampler=sampler)
                    if defn["workers"] > 1:
                        rows = _with_workers(defn, ctx, proxy_name, sampler, seed, meta, store)
                    else:
                        rows = search_once(ctx.space, proxy, make_sampler(sampler, seed, ctx.space, **options),
                                           defn["budget"])
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
    out = pd.DataFrame(summaries)
    store.append("summary", out)
    return out
