"""Optuna-driven query search: ask a sampler for a candidate, score it with a proxy, tell.

One trial = one query of the proxy (paper Sec. 4: REA with 100 queries). Each trial's row
holds the candidate, the proxy value, its ground truth and what the evaluation cost; rows are
written by the caller (single process) or by each worker itself (:func:`worker_objective`).
"""
from __future__ import annotations

from typing import Any

import optuna
import pandas as pd

from harness.proxies import Proxy, ProxyContext, make_proxy
from harness.spaces import SearchSpace, suggest
from harness.store.results import ResultsStore


def evaluate_trial(trial: optuna.Trial, space: SearchSpace, proxy: Proxy) -> tuple[float, dict]:
    """Suggest a candidate, score it, store what it cost as user attributes; (value, row)."""
    arch = suggest(space, trial)
    score = proxy(arch)
    for key in ("ground_truth", "wall_s", "peak_bytes", "device"):
        trial.set_user_attr(key, getattr(score, key))
    return score.value, {"trial": trial.number, "arch_str": space.format(arch), "proxy": score.value,
                         "ground_truth": score.ground_truth, "wall_s": score.wall_s,
                         "peak_bytes": score.peak_bytes, "device": score.device, "cached": score.cached}


def with_cumulative(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("trial", ignore_index=True)
    rows["cum_wall_s"] = rows["wall_s"].cumsum()
    return rows


def search_once(space: SearchSpace, proxy: Proxy, sampler: optuna.samplers.BaseSampler, budget: int) -> pd.DataFrame:
    """One in-process Optuna study of ``budget`` trials; one row per trial (in trial order)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rows: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        value, row = evaluate_trial(trial, space, proxy)
        rows.append(row)
        return value

    study.optimize(objective, n_trials=budget)
    return with_cumulative(pd.DataFrame(rows))


_WORKER_PROXIES: dict = {}


def worker_objective(trial: optuna.Trial, *, ctx: ProxyContext, proxy_name: str, results: str,
                     meta: dict[str, Any]) -> float:
    """Objective of one worker process: score the trial, then append its row to the store itself,
    so a worker that dies loses at most the trial it was running."""
    key = (id(ctx), proxy_name)
    if key not in _WORKER_PROXIES:  # one proxy per process: tables and data load once
        _WORKER_PROXIES[key] = (ctx, make_proxy(proxy_name, ctx))  # ctx kept alive: its id stays unique
    value, row = evaluate_trial(trial, ctx.space, _WORKER_PROXIES[key][1])
    ResultsStore(results).append("runs", [{**row, **meta}])
    return value
