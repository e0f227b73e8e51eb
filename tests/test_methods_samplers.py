"""One suite every sampler must pass, on every space (as Optuna's own tests do for its samplers).

Parametrized over ``SAMPLERS`` x (NB201, the toy space): a new sampler or a new space is covered
by adding it to ``SAMPLERS`` or registering it.
"""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from harness import HarnessError
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.methods.samplers import SAMPLERS, make_sampler
from harness.proxies import TableProxy
from harness.spaces import SearchSpace, get_space, suggest
from harness.store.results import ResultsStore

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACES = ("nb201", "toy")


@pytest.fixture(params=SPACES)
def space(request, toy_space) -> SearchSpace:
    return get_space(request.param)


@pytest.fixture(params=sorted(SAMPLERS))
def sampler_name(request) -> str:
    return request.param


def conv_count(trial, space: SearchSpace) -> float:
    """A deterministic, table-free objective: how many convolutions the candidate has."""
    return float(sum(op in ("nor_conv_3x3", "conv3x3") for op in suggest(space, trial)))


def param_sequence(sampler_name, seed, space, n_trials=30):
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_name, seed, space))
    study.optimize(lambda t: conv_count(t, space), n_trials=n_trials)
    return [t.params for t in study.trials]


def test_same_seed_same_sequence_other_seed_another(sampler_name, space):
    first = param_sequence(sampler_name, 3, space)
    assert param_sequence(sampler_name, 3, space) == first
    assert param_sequence(sampler_name, 4, space) != first
    assert len({tuple(p.values()) for p in first}) > 1, "a sampler that repeats one candidate"


def test_trials_stay_inside_the_spaces_distributions(sampler_name, space):
    dists = space.distributions()
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_name, 0, space))
    study.optimize(lambda t: conv_count(t, space), n_trials=30)
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert set(t.params) == set(dists)
        assert all(t.distributions[name] == dists[name] for name in dists)
        assert all(t.params[name] in dists[name].choices for name in dists)
        arch = space.from_params(t.params)
        assert t.value == sum(op in ("nor_conv_3x3", "conv3x3") for op in arch)


def test_unknown_option_is_an_error(sampler_name, space):
    with pytest.raises(HarnessError, match=f"sampler '{sampler_name}': bad options"):
        make_sampler(sampler_name, 0, space, bogus=1)


@pytest.mark.slow
def test_four_workers_one_journal_exact_budget(sampler_name, tmp_path):
    """Four worker processes of one search share each sampler. On NB201's table proxy: a space
    registered at run time (like "toy" here) is not in the registry of a worker started from a fork
    server, and only a table-proxy search forks its workers from the test process itself."""
    budget = 16
    raw = {"name": "mw", "kind": "search", "datasets": ["cifar10"], "samplers": [sampler_name], "budget": budget,
           "workers": 4, "sampler_options": {"rea": {"population_size": 4}} if sampler_name == "rea" else {}}
    run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    rows = ResultsStore(tmp_path).read("runs")
    assert sorted(rows["trial"]) == list(range(budget))
    assert rows["worker_pid"].nunique() >= 2, "the workers shared the study"
    nb201 = get_space("nb201")
    proxy = TableProxy("nb201-12ep-val", nb201, "cifar10")
    assert all(row.proxy == proxy(nb201.parse(row.arch_str)).value for row in rows.itertuples())
