"""Many processes, one Optuna journal storage, one exact trial budget (issue 5, multi-worker acceptance)."""
from __future__ import annotations

import os

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from harness import HarnessError
from harness.store.files import append_parquet
from harness.methods.query.samplers import make_sampler
from harness.spaces.nb201.params import ops_from_params, suggest_nb201
from harness.methods.query.workers import (open_journal, optimize_to_budget, resolve_objective, run_workers,
                                    worker_seed)
from harness.spaces.nb201 import encoding as nb201
from harness.tabular.nb201 import NB201Table

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Spawned workers import objectives by name; this module is importable as ``__name__`` because
# pytest puts tests/ on sys.path and spawn hands sys.path to the children.
THIS = __name__


def tabular_objective(trial, results_path: str, dataset: str = "cifar10") -> float:
    """12-epoch validation accuracy from the NB201 table; one Parquet row per evaluation."""
    table = NB201Table.load()
    ops = suggest_nb201(trial)
    proxy = table.query(ops, dataset, "val_acc", 12)
    append_parquet([{"trial_number": trial.number, "arch_str": nb201.to_str(ops), "proxy": proxy,
                     "ground_truth": table.query(ops, dataset, "test_acc", 200), "pid": os.getpid()}],
                   results_path)
    return proxy


def failing_objective(trial) -> float:
    suggest_nb201(trial)
    raise ValueError("objective exploded on purpose")


def test_four_workers_share_one_journal_and_stop_at_exactly_the_budget(tmp_path):
    results = tmp_path / "evals.parquet"
    out = run_workers(4, tmp_path / "journal.log", "rea-mw", f"{THIS}:tabular_objective", budget=40,
                      sampler_name="rea", seed=0, objective_kwargs={"results_path": str(results)})

    study = optuna.load_study(study_name="rea-mw", storage=open_journal(tmp_path / "journal.log"))
    trials = study.get_trials()
    assert len(trials) == 40
    assert sorted(t.number for t in trials) == list(range(40))
    assert all(t.state == TrialState.COMPLETE for t in trials)

    ran = [n for numbers in out.trials_by_worker.values() for n in numbers]
    assert sorted(ran) == list(range(40)), "every trial run by exactly one worker"
    assert len(out.trials_by_worker) == 4
    assert sum(1 for numbers in out.trials_by_worker.values() if numbers) >= 2, "workers ran concurrently"

    rows = pd.read_parquet(results)
    assert sorted(rows["trial_number"]) == list(range(40)), "every trial in Parquet, once"
    by_number = {t.number: t for t in trials}
    for row in rows.itertuples():
        assert nb201.to_str(ops_from_params(by_number[row.trial_number].params)) == row.arch_str
        assert by_number[row.trial_number].value == row.proxy
    assert rows["pid"].nunique() >= 2

    # The same storage carries on to a larger budget with fewer workers.
    more = run_workers(2, tmp_path / "journal.log", "rea-mw", f"{THIS}:tabular_objective", budget=46,
                       seed=0, objective_kwargs={"results_path": str(results)})
    assert sorted(n for ns in more.trials_by_worker.values() for n in ns) == list(range(40, 46))
    assert len(pd.read_parquet(results)) == 46


def test_optimize_to_budget_counts_every_trial_and_reraises_failures(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=make_sampler("rea", 0))
    lock = tmp_path / "study.lock"
    objective = resolve_objective(f"{THIS}:tabular_objective", {"results_path": str(tmp_path / "r.parquet")})
    assert optimize_to_budget(study, objective, 12, lock) == list(range(12))
    assert optimize_to_budget(study, objective, 12, lock) == []

    with pytest.raises(ValueError, match="on purpose"):
        optimize_to_budget(study, failing_objective, 20, lock)
    assert study.trials[12].state == TrialState.FAIL
    # The failed trial used up one unit of budget; an enqueued (waiting) one does not count.
    study.enqueue_trial({f"edge_{k}": "none" for k in range(6)})
    assert optimize_to_budget(study, objective, 15, lock) == [13, 14]
    assert len(study.trials) == 15
    assert ops_from_params(study.trials[13].params) == ("none",) * 6


def test_worker_failure_is_reported_with_its_traceback(tmp_path):
    with pytest.raises(RuntimeError, match="(?s)worker 0.*objective exploded on purpose"):
        run_workers(1, tmp_path / "j.log", "boom", f"{THIS}:failing_objective", budget=3, seed=0)
    study = optuna.load_study(study_name="boom", storage=open_journal(tmp_path / "j.log"))
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_stateful_samplers_get_one_seed_per_worker_rea_shares_its_seed():
    rea, rnd = make_sampler("rea", 5), make_sampler("random", 5)
    assert {worker_seed(rea, 5, w) for w in range(4)} == {5}
    assert len({worker_seed(rnd, 5, w) for w in range(4)}) == 4
    assert worker_seed(rnd, None, 3) is None


@pytest.mark.parametrize("kwargs, match", [
    ({"n_workers": 0}, "n_workers 0"),
    ({"budget": 0}, "budget 0"),
    ({"budget": 2.0}, "budget 2.0"),
    ({"sampler_name": "bohb"}, "sampler 'bohb': unknown"),
    ({"objective_ref": "no_colon"}, "expected 'package.module:function'"),
    ({"objective_ref": "harness.nowhere:f"}, "cannot be imported"),
    ({"objective_ref": f"{THIS}:THIS"}, "is not callable"),
    ({"direction": "up"}, "direction 'up'"),
    ({"lock_path": "LOCK"}, "clashes with the journal file"),
])
def test_bad_arguments_fail_before_anything_starts(tmp_path, kwargs, match):
    args = dict(n_workers=2, storage_path=tmp_path / "j.log", study_name="s",
                objective_ref=f"{THIS}:failing_objective", budget=5)
    if kwargs.get("lock_path") == "LOCK":
        kwargs = {"lock_path": tmp_path / "j.log.lock"}
    with pytest.raises(HarnessError, match=match):
        run_workers(**{**args, **kwargs})
    assert not (tmp_path / "j.log").exists()
