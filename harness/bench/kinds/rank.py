"""Kind ``rank``: rank correlation of proxies vs the ground truth (paper Tables 1 and 3).

Table proxies are scored on every architecture of the space's table: random samples (mean and
std over draws) and the top-k by ground truth. Training proxies are trained on the selections
in ``train_selections`` and ranked over each: ``random`` = ``train.archs`` random architectures
(the same ones for every proxy; Table 1), ``top_k`` = the ``top_k`` best by ground truth with the
table path's tie rule ``ties`` (Table 3's Tr-Net column); an architecture in both is trained
once. Zero-cost proxies are scored on ``sample`` random architectures
(:mod:`harness.bench.zero_cost`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.rank import rank_proxy, top_k
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
            selections = trained_selections(defn, truth)
            # Each architecture once, in train_selections order (random alone: the same order as ever).
            archs = list(dict.fromkeys(int(a) for sel in selections.values() for a in sel))
            for name in trained:
                proxy = make_proxy(name, ctx)
                # K at once on a GPU, one at a time on a CPU (TrainProxy.score_many)
                scores = dict(zip(archs, proxy.score_many([ctx.space.canonical(a) for a in archs])))
                for selection, sel in selections.items():
                    values = np.full(len(truth), np.nan)
                    values[sel] = [scores[int(a)].value for a in sel]
                    top = {"top": defn["top_k"], "ties": defn["ties"]} if selection == "top_k" else {"draws": 1}
                    r = rank_proxy(values, truth, dataset=ds, proxy_name=name, seed=defn["seed"], **top)
                    rows.append({**r.row(), "wall_s": float(np.mean([scores[int(a)].wall_s for a in sel])),
                                 "peak_bytes": float(np.mean([scores[int(a)].peak_bytes for a in sel]))})
    df = pd.DataFrame(rows).assign(truth="ground truth (NB201: test_acc@200 seed mean)",
                                   **{k: v for k, v in run_meta(defn, batch_id).items()})
    store.append("rank", df)
    return df


def trained_selections(defn: Definition, truth: np.ndarray) -> dict[str, np.ndarray]:
    """``train_selections`` -> the benchmark indices each one trains, in a fixed order."""
    out = {}
    for selection in defn["train_selections"]:
        if selection == "random":
            out[selection] = np.random.default_rng(defn["seed"]).choice(len(truth), size=defn["train"]["archs"],
                                                                         replace=False)
        else:  # top_k: the same set the table path ranks (rank_proxy(top=...) selects it again)
            out[selection] = top_k(truth, defn["top_k"], defn["ties"])
    return out
