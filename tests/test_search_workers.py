"""Many processes, one Optuna journal storage, one exact trial budget."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from harness import HarnessError
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.methods.samplers import make_sampler
from harness.proxies import TableProxy
from harness.search.loop import optimize_to_budget, worker_seed
from harness.search.processes import run_processes
from harness.spaces import get_space, suggest
from harness.store.results import ResultsStore

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Worker processes import their target by name; this module is importable as ``__name__`` because
# pytest puts tests/ on sys.path and a fork server hands sys.path to the children.
THIS = __name__
NB201 = get_space("nb201")


def count_conv_objective(trial) -> float:
    """Deterministic, table-free: the number of 3x3 convolutions in the cell."""
    return float(suggest(NB201, trial).count("nor_conv_3x3"))


def failing_objective(trial) -> float:
    suggest(NB201, trial)
    raise ValueError("objective exploded on purpose")


def failing_target(index: int) -> None:
    raise ValueError(f"worker {index} exploded on purpose")


@pytest.mark.slow
def test_four_workers_share_one_journal_and_stop_at_exactly_the_budget(tmp_path):
    raw = {"name": "rea-mw", "kind": "search", "datasets": ["cifar10"], "samplers": ["rea"], "budget": 40,
           "workers": 4}
    summary = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    assert list(summary["trials"]) == [40]
    rows = ResultsStore(tmp_path).read("runs")
    assert sorted(rows["trial"]) == list(range(40)), "every trial in the store, once: none over the budget"
    assert rows["worker_pid"].nunique() >= 2, "workers ran concurrently"
    proxy = TableProxy("nb201-12ep-val", NB201, "cifar10")
    for row in rows.itertuples():
        score = proxy(NB201.parse(row.arch_str))
        assert (row.proxy, row.ground_truth) == (score.value, score.ground_truth)


def test_optimize_to_budget_counts_every_trial_and_reraises_failures(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=make_sampler("rea", 0))
    lock = tmp_path / "study.lock"
    assert optimize_to_budget(study, count_conv_objective, 12, lock) == list(range(12))
    assert optimize_to_budget(study, count_conv_objective, 12, lock) == []

    with pytest.raises(ValueError, match="on purpose"):
        optimize_to_budget(study, failing_objective, 20, lock)
    assert study.trials[12].state == TrialState.FAIL
    # The failed trial uses no budget (the study ends with `budget` COMPLETE trials); an enqueued
    # (waiting) one is asked first and counts once.
    study.enqueue_trial(NB201.to_params(("none",) * 6))
    assert optimize_to_budget(study, count_conv_objective, 15, lock) == [13, 14, 15]
    assert len(study.trials) == 16 and sum(t.state == TrialState.COMPLETE for t in study.trials) == 15
    assert NB201.from_params(study.trials[13].params) == ("none",) * 6
    assert study.trials[13].value == 0.0


def test_worker_failure_is_reported_with_its_traceback():
    # Both workers raise; whichever passes the start barrier first may break it for the other, so
    # the report names at least one worker with its own traceback.
    with pytest.raises(RuntimeError, match=r"(?s)worker (\d):\nTraceback.*worker \1 exploded on purpose"):
        run_processes(2, f"{THIS}:failing_target", {})


def test_stateful_samplers_get_one_seed_per_worker_rea_shares_its_seed():
    rea, rnd = make_sampler("rea", 5), make_sampler("random", 5)
    assert {worker_seed(rea, 5, w) for w in range(4)} == {5}
    assert len({worker_seed(rnd, 5, w) for w in range(4)}) == 4
    assert worker_seed(rnd, None, 3) is None


@pytest.mark.parametrize("n, target, match", [
    (0, f"{THIS}:failing_target", "n_workers 0"),
    (2, "no_colon", "target 'no_colon': expected 'package.module:function'"),
    (2, "harness.nowhere:f", "target 'harness.nowhere:f': cannot be imported"),
    (2, f"{THIS}:THIS", "is not callable"),
])
def test_bad_arguments_fail_before_any_process_starts(n, target, match):
    with pytest.raises(HarnessError, match=match):
        run_processes(n, target, {})


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
