"""One trial of a search: suggest a candidate, score it with a proxy, keep the row on the trial.

One trial = one query of the proxy (paper Sec. 4: REA with 100 queries). Each trial's row
holds the candidate, the proxy value, its ground truth and what the evaluation cost; it is stored
on the trial itself, and the worker that finalises the study writes every row
(:mod:`harness.search.studies`).
"""
from __future__ import annotations

from typing import Any

import optuna
import pandas as pd

from harness.proxies import Proxy
from harness.search.faults import RETRY_OF
from harness.spaces import SearchSpace, suggest


def evaluate_trial(trial: optuna.Trial, space: SearchSpace, proxy: Proxy,
                   extra: "dict[str, Any] | None" = None) -> float:
    """Suggest a candidate, score it, store what it cost (and ``extra``) on the trial as one user
    attribute (one storage write, not one per key); the proxy value. The trial's row is rebuilt
    from the study (:func:`trial_row`)."""
    score = proxy(suggest(space, trial))
    trial.set_user_attr(SCORE, {**{key: getattr(score, key) for key in ROW_ATTRS}, **(extra or {})})
    return score.value


#: What :func:`evaluate_trial` stores on the trial (user attribute ``SCORE``), so a row can be
#: rebuilt from the study alone.
ROW_ATTRS = ("ground_truth", "wall_s", "peak_bytes", "device", "cached")
SCORE = "harness:score"


def trial_row(space: SearchSpace, trial: optuna.trial.FrozenTrial, value: "float | None" = None) -> dict:
    """The row of ``trial``, rebuilt from the study (its params, value and the user attributes
    :func:`evaluate_trial` stored); a re-evaluation of a trial whose worker died says which
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
