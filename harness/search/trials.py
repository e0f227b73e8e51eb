"""One trial of a search: ask a sampler for a candidate, score it with a proxy, tell.

One trial = one query of the proxy (paper Sec. 4: REA with 100 queries). Each trial's row
holds the candidate, the proxy value, its ground truth and what the evaluation cost; rows are
written by the caller (single process) or by each worker itself (:func:`worker_objective`).
"""
from __future__ import annotations

from typing import Any, Callable

import optuna
import pandas as pd

from harness.proxies import Proxy, ProxyContext, make_proxy
from harness.search.faults import RETRY_OF
from harness.spaces import SearchSpace, suggest
from harness.store.results import ResultsStore


def evaluate_trial(trial: optuna.Trial, space: SearchSpace, proxy: Proxy,
                   extra: "dict[str, Any] | None" = None) -> tuple[float, dict]:
    """Suggest a candidate, score it, store what it cost (and ``extra``) on the trial as one user
    attribute (one storage write, not one per key); (value, row)."""
    arch = suggest(space, trial)
    score = proxy(arch)
    attrs = {**{key: getattr(score, key) for key in ROW_ATTRS}, **(extra or {})}
    trial.set_user_attr(SCORE, attrs)
    return score.value, {"trial": trial.number, "arch_str": space.format(arch), "proxy": score.value, **attrs}


#: What :func:`evaluate_trial` stores on the trial (user attribute ``SCORE``), so a row can be
#: rebuilt from the study alone.
ROW_ATTRS = ("ground_truth", "wall_s", "peak_bytes", "device", "cached")
SCORE = "harness:score"


def trial_row(space: SearchSpace, trial: optuna.trial.FrozenTrial, value: "float | None" = None) -> dict:
    """The row :func:`evaluate_trial` returned for ``trial``, rebuilt from the study (its params,
    value and user attributes); a re-evaluation of a trial whose worker died says which
    (``retry_of``)."""
    attrs = trial.user_attrs.get(SCORE, {})
    retry = {"retry_of": trial.system_attrs[RETRY_OF]} if RETRY_OF in trial.system_attrs else {}
    return {"trial": trial.number, "arch_str": space.format(space.from_params(trial.params)),
            "proxy": trial.value if value is None else value, **{k: attrs.get(k) for k in ROW_ATTRS},
            **{k: v for k, v in attrs.items() if k not in ROW_ATTRS}, **retry}


def with_cumulative(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("trial", ignore_index=True)
    rows["cum_wall_s"] = rows["wall_s"].cumsum()
    return rows


def search_once(space: SearchSpace, proxy: Proxy, sampler: optuna.samplers.BaseSampler, budget: int,
                keep_interrupted: "Callable[[pd.DataFrame], object] | None" = None) -> pd.DataFrame:
    """One in-process Optuna study of ``budget`` trials; one row per trial (in trial order).

    On Ctrl-C the rows of the trials already finished go to ``keep_interrupted`` before the
    interrupt propagates, so no finished evaluation is lost."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rows: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        value, row = evaluate_trial(trial, space, proxy)
        rows.append(row)
        return value

    try:
        study.optimize(objective, n_trials=budget, catch=())
    except KeyboardInterrupt:
        if rows and keep_interrupted is not None:
            keep_interrupted(with_cumulative(pd.DataFrame(rows)))
        raise
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
