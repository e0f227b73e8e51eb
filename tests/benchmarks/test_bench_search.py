"""Search overhead: one REA sampler call on a 100-trial study, and REA 10 seeds x 100 queries on
the tabular benchmark with Optuna's overhead included."""
import optuna
import pytest
from optuna.trial import TrialState

from harness.methods.samplers import make_sampler
from harness.proxies import TableProxy
from harness.spaces import get_space, suggest

SPACE = get_space("nb201")

SEEDS, BUDGET = 10, 100


@pytest.fixture(scope="module")
def evaluator():
    return TableProxy("nb201-12ep-val", SPACE, "cifar10")


@pytest.fixture(autouse=True)
def quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


def test_bench_rea_sampler_call(benchmark, evaluator):
    sampler = make_sampler("rea", 0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: evaluator(suggest(SPACE, t)).value, n_trials=BUDGET)
    study.ask()  # trial 100, RUNNING: the one the timed call proposes a cell for
    trial = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))[0]
    assert trial.number == BUDGET

    params = benchmark.pedantic(sampler.sample_relative, args=(study, trial, SPACE.distributions()), rounds=50,
                                warmup_rounds=5, iterations=1)
    child = SPACE.from_params(params)
    benchmark.extra_info.update(study_trials=BUDGET, proposed=SPACE.format(child))
    # REA after P=10 complete trials: a one-edge mutation of a population member.
    population = [SPACE.from_params(t.params) for t in sampler.population(study)]
    assert any(sum(a != b for a, b in zip(child, parent)) == 1 for parent in population)


def rea_in_memory(evaluator, seed: int) -> list:
    """One REA search in a plain in-memory Optuna study: the sampler and Optuna's overhead, no
    storage (a ``search`` definition adds its journal: docs/search.md)."""
    scores = []

    def objective(trial) -> float:
        scores.append(evaluator(suggest(SPACE, trial)))
        return scores[-1].value

    optuna.create_study(direction="maximize", sampler=make_sampler("rea", seed)).optimize(objective, n_trials=BUDGET)
    return scores


def test_bench_rea_10_seeds_100_queries(benchmark, evaluator):
    def searches():
        return [rea_in_memory(evaluator, s) for s in range(SEEDS)]

    runs = benchmark.pedantic(searches, rounds=3, warmup_rounds=0, iterations=1)
    assert [len(r) for r in runs] == [BUDGET] * SEEDS
    best = [max(r, key=lambda score: score.value).ground_truth for r in runs]
    benchmark.extra_info.update(seeds=SEEDS, queries=BUDGET, mean_best_test_acc=sum(best) / SEEDS)
