"""One entry point into distributed search: ``harness bench`` (kind ``search``) and ``harness worker``
reach the budget-locked worker loop through :mod:`harness.search.batch`, each module once.

The call stack is read at the moment the loop starts: a module that hands the budget on and is
then entered again (a walk that leaves a module and comes back to it) shows up as a module that
appears twice, apart."""
import inspect

import optuna
import pytest

from harness import cli
from harness.bench.definitions import build_definition
from harness.search import studies
from harness.search.batch import journal_path
from harness.store.results import ResultsStore

SEARCH = {"name": "entry", "kind": "search", "datasets": ["cifar10"], "samplers": ["random"], "seeds": 1,
          "budget": 4}


def _harness_modules() -> list[str]:
    """The harness modules on the current call stack, outermost first, consecutive repeats merged."""
    names = [f.frame.f_globals.get("__name__", "") for f in reversed(inspect.stack())]
    walk: list[str] = []
    for name in names:
        if name.startswith("harness") and (not walk or walk[-1] != name):
            walk.append(name)
    return walk


@pytest.fixture
def loop_stacks(monkeypatch):
    """Every call of the worker loop records the harness modules on the stack, then runs the loop."""
    stacks: list[tuple[list[str], int]] = []
    loop = studies.optimize_to_budget

    def recording(study, objective, budget, *args, **kwargs):
        stacks.append((_harness_modules(), budget))
        return loop(study, objective, budget, *args, **kwargs)

    monkeypatch.setattr(studies, "optimize_to_budget", recording)
    return stacks


def _toml(tmp_path, **extra) -> str:
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in {**SEARCH, **extra}.items()]
    path = tmp_path / "entry.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_bench_reaches_the_worker_loop_through_the_runner_and_search_batch_once(tmp_path, loop_stacks, capsys):
    assert cli.main(["bench", _toml(tmp_path), "--results", str(tmp_path / "results"), "--quiet"]) == 0
    (walk, budget), = loop_stacks
    assert walk == ["harness.cli", "harness.bench.runner", "harness.search.batch", "harness.search.studies"]
    assert budget == SEARCH["budget"]
    runs = ResultsStore(tmp_path / "results").read("runs")
    assert len(runs) == SEARCH["budget"]


def test_bench_budget_override_is_the_loop_budget(tmp_path, loop_stacks):
    assert cli.main(["bench", _toml(tmp_path), "--budget", "3", "--results", str(tmp_path / "r"), "--quiet"]) == 0
    assert [budget for _, budget in loop_stacks] == [3]


def test_worker_reaches_the_worker_loop_through_search_batch_once(tmp_path, loop_stacks, capsys):
    store = ResultsStore(tmp_path / "results")
    batch = "entry-20260101T000000-abcdef"
    journal = journal_path(store, batch)
    studies.create_studies(build_definition(SEARCH, "test"), str(journal), batch)
    assert cli.main(["worker", "--storage", str(journal), "--study", batch, "--results", str(store.root),
                     "--quiet"]) == 0
    (walk, budget), = loop_stacks
    assert walk == ["harness.cli", "harness.search.batch", "harness.search.studies"]
    assert budget == SEARCH["budget"]
    study = optuna.load_study(study_name=f"{batch}/cifar10/nb201-12ep-val/random/s0",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(journal))))
    assert len(study.trials) == SEARCH["budget"]
    assert "ran 4 trials" in capsys.readouterr().out
