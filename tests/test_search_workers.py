"""Many processes, one Optuna journal storage, one exact trial budget."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from harness import HarnessError
from harness.methods.samplers import make_sampler
from harness.proxies import ProxyContext, TableProxy
from harness.search.loop import optimize_to_budget, worker_seed
from harness.search.processes import resolve_objective, run_workers
from harness.search.storage import optuna_storage
from harness.search.trials import SCORE
from harness.spaces import get_space, suggest
from harness.store.results import ResultsStore

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Spawned workers import objectives by name; this module is importable as ``__name__`` because
# pytest puts tests/ on sys.path and spawn hands sys.path to the children.
THIS = __name__
NB201 = get_space("nb201")
WORKER_OBJECTIVE = "harness.search.trials:worker_objective"


def worker_kwargs(root, run_id="rea-mw"):
    """What the search benchmark hands :func:`worker_objective`: the table proxy, rows to ``root``."""
    return {"ctx": ProxyContext(NB201, "cifar10", store=ResultsStore(root)), "proxy_name": "nb201-12ep-val",
            "results": str(root), "meta": {"run_id": run_id, "benchmark": "test-workers", "dataset": "cifar10"}}


def count_conv_objective(trial) -> float:
    """Deterministic, table-free: the number of 3x3 convolutions in the cell."""
    return float(suggest(NB201, trial).count("nor_conv_3x3"))


def failing_objective(trial) -> float:
    suggest(NB201, trial)
    raise ValueError("objective exploded on purpose")


@pytest.mark.slow
def test_four_workers_share_one_journal_and_stop_at_exactly_the_budget(tmp_path):
    store = ResultsStore(tmp_path / "results")
    journal = tmp_path / "journal.log"
    out = run_workers(4, journal, "rea-mw", WORKER_OBJECTIVE, budget=40, sampler_name="rea", seed=0,
                      objective_kwargs=worker_kwargs(store.root))

    study = optuna.load_study(study_name="rea-mw", storage=optuna_storage(journal))
    trials = study.get_trials()
    assert len(trials) == 40
    assert sorted(t.number for t in trials) == list(range(40))
    assert all(t.state == TrialState.COMPLETE for t in trials)

    ran = [n for numbers in out.trials_by_worker.values() for n in numbers]
    assert sorted(ran) == list(range(40)), "every trial run by exactly one worker"
    assert len(out.trials_by_worker) == 4
    assert sum(1 for numbers in out.trials_by_worker.values() if numbers) >= 2, "workers ran concurrently"

    rows = store.read("runs")
    assert sorted(rows["trial"]) == list(range(40)), "every trial in the store, once"
    assert set(rows["run_id"]) == {"rea-mw"}
    proxy = TableProxy("nb201-12ep-val", NB201, "cifar10")
    by_number = {t.number: t for t in trials}
    for row in rows.itertuples():
        arch = NB201.from_params(by_number[row.trial].params)
        assert NB201.format(arch) == row.arch_str
        assert by_number[row.trial].value == row.proxy == proxy(arch).value
        assert row.ground_truth == proxy(arch).ground_truth
        assert by_number[row.trial].user_attrs[SCORE]["ground_truth"] == row.ground_truth

    # The same storage carries on to a larger budget with fewer workers.
    more = run_workers(2, journal, "rea-mw", WORKER_OBJECTIVE, budget=46, seed=0,
                       objective_kwargs=worker_kwargs(store.root))
    assert sorted(n for ns in more.trials_by_worker.values() for n in ns) == list(range(40, 46))
    assert sorted(store.read("runs")["trial"]) == list(range(46))


def test_optimize_to_budget_counts_every_trial_and_reraises_failures(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=make_sampler("rea", 0))
    lock = tmp_path / "study.lock"
    objective = resolve_objective(f"{THIS}:count_conv_objective")
    assert optimize_to_budget(study, objective, 12, lock) == list(range(12))
    assert optimize_to_budget(study, objective, 12, lock) == []

    with pytest.raises(ValueError, match="on purpose"):
        optimize_to_budget(study, failing_objective, 20, lock)
    assert study.trials[12].state == TrialState.FAIL
    # The failed trial uses no budget (the study ends with `budget` COMPLETE trials); an enqueued
    # (waiting) one is asked first and counts once.
    study.enqueue_trial(NB201.to_params(("none",) * 6))
    assert optimize_to_budget(study, objective, 15, lock) == [13, 14, 15]
    assert len(study.trials) == 16 and sum(t.state == TrialState.COMPLETE for t in study.trials) == 15
    assert NB201.from_params(study.trials[13].params) == ("none",) * 6
    assert study.trials[13].value == 0.0


def test_resolve_objective_binds_keyword_arguments(tmp_path):
    objective = resolve_objective(WORKER_OBJECTIVE, worker_kwargs(tmp_path, run_id="one"))
    study = optuna.create_study(direction="maximize", sampler=make_sampler("random", 0))
    study.optimize(objective, n_trials=3)
    rows = ResultsStore(tmp_path).read("runs")
    assert list(rows["trial"]) == [0, 1, 2] and set(rows["run_id"]) == {"one"}
    assert list(rows["proxy"]) == [t.value for t in study.trials]


def test_worker_failure_is_reported_with_its_traceback(tmp_path):
    with pytest.raises(RuntimeError, match="(?s)worker 0.*objective exploded on purpose"):
        run_workers(1, tmp_path / "j.log", "boom", f"{THIS}:failing_objective", budget=3, seed=0)
    study = optuna.load_study(study_name="boom", storage=optuna_storage(tmp_path / "j.log"))
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
    ({"sampler_options": {"popsize": 3}}, "sampler 'rea': bad options"),
    ({"space": "no-such-space"}, "search space 'no-such-space': unknown"),
    ({"objective_ref": "no_colon"}, "expected 'package.module:function'"),
    ({"objective_ref": "harness.nowhere:f"}, "cannot be imported"),
    ({"objective_ref": f"{THIS}:THIS"}, "is not callable"),
    ({"direction": "up"}, "direction 'up'"),
    ({"lock_path": "LOCK"}, "clashes with the journal file"),
])
def test_bad_arguments_fail_before_anything_starts(tmp_path, kwargs, match):
    args = {"n_workers": 2, "storage": tmp_path / "j.log", "study_name": "s",
            "objective_ref": f"{THIS}:failing_objective", "budget": 5}
    if kwargs.get("lock_path") == "LOCK":
        kwargs = {"lock_path": tmp_path / "j.log.lock"}
    with pytest.raises(HarnessError, match=match):
        run_workers(**{**args, **kwargs})
    assert not (tmp_path / "j.log").exists()


def test_a_worker_for_a_study_that_does_not_exist_creates_no_journal(tmp_path, capsys):
    """A mistyped journal path or study name is one line, exit 2, and creates nothing: not the
    journal (nor its folder), not a lock file next to an existing one."""
    from harness.bench.definitions import build_definition
    from harness.cli import main
    from harness.search.studies import create_studies

    typo = tmp_path / "typo" / "search.jsonl"
    assert main(["worker", "--storage", str(typo), "--study", "b", "--results", str(tmp_path / "res")]) == 2
    assert list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no such file" in err and str(typo) in err, err
    journal = tmp_path / "search.jsonl"
    create_studies(build_definition({"name": "w", "kind": "search", "datasets": ["cifar10"], "samplers": ["rea"],
                                     "budget": 2}, "test"), str(journal), "b")
    before = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert main(["worker", "--storage", str(journal), "--study", "b-typo", "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'b-typo': no study or batch of that name" in err, err
    assert {p.name: p.stat().st_size for p in tmp_path.iterdir()} == before
