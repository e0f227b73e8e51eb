"""Kind ``rank``: rank correlation of proxies vs the ground truth (paper Tables 1 and 3).

Table proxies are scored on every architecture of the space's table: random samples (mean and
std over draws) and the top-k by ground truth. Training proxies are scored on ``train.archs``
random architectures (the same ones for every proxy) and ranked over those; zero-cost proxies
on ``sample`` random architectures (:mod:`harness.bench.zero_cost`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.rank import rank_proxy
from harness.bench.context import proxy_context, run_meta
from harness.bench.definition import Definition
from harness.bench.zero_cost import rank_zero_cost
from harness.proxies import GroundTruth, TableProxy, make_proxy, proxy_kind
from harness.store.results import ResultsStore


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    rows = []
    for ds in defn["datasets"]:
        ctx = proxy_context(defn, ds, store, batch_id, progress)
        truth = GroundTruth(ctx.space, ds, defn.get("table")).vector()
        if truth is None:
            raise HarnessError(f"{defn.source}: space {ctx.space.name!r} has no tabular ground truth to rank against")
        trained = [p for p in defn["proxies"] if proxy_kind(p) in ("train", "recorded")]
        zero_cost = [p for p in defn["proxies"] if proxy_kind(p) == "zero_cost"]
        if zero_cost:
            rows += rank_zero_cost(defn, ctx, truth, zero_cost, store, run_meta(defn, batch_id, dataset=ds), progress)
        for name in defn["proxies"]:
            if proxy_kind(name) != "table":
                continue
            values = TableProxy(name, ctx.space, ds, defn.get("table")).values()
            if "sample" in defn.raw or "top_k" not in defn.raw:
                rows.append(rank_proxy(values, truth, dataset=ds, proxy_name=name, sample=defn.get("sample"),
                                       draws=defn["draws"], seed=defn["seed"]).row())
            if "top_k" in defn.raw:
                rows.append(rank_proxy(values, truth, dataset=ds, proxy_name=name, top=defn["top_k"],
                                       ties=defn["ties"], seed=defn["seed"]).row())
        if trained:
            rng = np.random.default_rng(defn["seed"])
            archs = rng.choice(len(truth), size=defn["train"]["archs"], replace=False)
            for name in trained:
                proxy = make_proxy(name, ctx)
                scores = [proxy(ctx.space.canonical(int(a))) for a in archs]
                values = np.full(len(truth), np.nan)
                values[archs] = [s.value for s in scores]
                r = rank_proxy(values, truth, dataset=ds, proxy_name=name, draws=1, seed=defn["seed"])
                rows.append({**r.row(), "wall_s": float(np.mean([s.wall_s for s in scores])),
                             "peak_bytes": float(np.mean([s.peak_bytes for s in scores]))})
    df = pd.DataFrame(rows).assign(truth="ground truth (NB201: test_acc@200 seed mean)",
                                   **{k: v for k, v in run_meta(defn, batch_id).items()})
    store.append("rank", df)
    return df
