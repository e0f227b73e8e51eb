"""Run one Optuna study to an exact trial budget from many processes sharing one storage.

Optuna's own ``n_trials`` counts per process, so N workers would overshoot a shared budget.
Here every worker takes an exclusive ``fcntl`` lock, counts the study's trials and asks for a
new one only while fewer than ``budget`` exist; the evaluation runs outside the lock. Workers
open one :class:`optuna.storages.JournalStorage` file (Optuna's multi-process file storage).
The samplers keep their state in that storage (REA) or get one seed per worker (random, TPE).
"""
from __future__ import annotations

import fcntl
import functools
import importlib
import multiprocessing as mp
import queue as queue_module
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna
from optuna.trial import Trial, TrialState

from harness import HarnessError
from harness.methods.query.samplers import is_stateless, make_sampler
from harness.spaces import SearchSpace
from harness.store.storage import optuna_storage

Objective = Callable[[Trial], float]


def optimize_to_budget(study: optuna.Study, objective: Objective, budget: int,
                       lock_path: "str | Path") -> list[int]:
    """Ask, evaluate and tell until the study holds ``budget`` trials in total.

    Every trial counts (running, complete, failed, pruned) except ones enqueued and still
    waiting, since ``study.ask()`` picks those up first. Safe to call from many processes at
    once with the same ``lock_path``. A failing objective marks its trial FAIL and re-raises.
    Returns the numbers of the trials this call ran.
    """
    _check_positive_int("budget", budget)
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    ran: list[int] = []
    with open(lock_path, "a") as lock:
        while True:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                taken = study.get_trials(deepcopy=False, states=_COUNTED_STATES)
                if len(taken) >= budget:
                    return ran
                trial = study.ask()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            try:
                value = float(objective(trial))
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            study.tell(trial, value)
            ran.append(trial.number)


_COUNTED_STATES = tuple(s for s in TrialState if s != TrialState.WAITING)


def resolve_objective(objective_ref: str, kwargs: "Mapping[str, Any] | None" = None) -> Objective:
    """``"package.module:function"`` -> ``function`` (with ``kwargs`` bound), called as
    ``function(trial, **kwargs) -> float``."""
    module_name, sep, attr = objective_ref.partition(":")
    if not sep or not module_name or not attr:
        raise HarnessError(f"objective {objective_ref!r}: expected 'package.module:function'")
    try:
        fn = importlib.import_module(module_name)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except (ImportError, AttributeError) as e:
        raise HarnessError(f"objective {objective_ref!r}: cannot be imported ({e})") from None
    if not callable(fn):
        raise HarnessError(f"objective {objective_ref!r}: is not callable")
    return functools.partial(fn, **kwargs) if kwargs else fn


def worker_seed(sampler: optuna.samplers.BaseSampler, seed: "int | None", worker: int) -> "int | None":
    """The seed worker ``worker`` gives its sampler: the run's seed for a stateless sampler
    (REA draws per trial number), a derived one otherwise so workers do not repeat each other."""
    if seed is None or is_stateless(sampler):
        return seed
    return int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


@dataclass
class WorkersResult:
    study: optuna.Study
    #: worker index -> numbers of the trials it ran.
    trials_by_worker: dict[int, list[int]] = field(default_factory=dict)


def run_workers(n_workers: int, storage_path: "str | Path", study_name: str, objective_ref: str,
                budget: int, *, sampler_name: str = "rea", seed: "int | None" = None,
                space: "SearchSpace | str" = "nb201",
                sampler_options: "Mapping[str, Any] | None" = None, direction: str = "maximize",
                objective_kwargs: "Mapping[str, Any] | None" = None,
                lock_path: "str | Path | None" = None, timeout_s: float = 600.0) -> WorkersResult:
    """Spawn ``n_workers`` processes that run one study (created if missing) to ``budget`` trials.

    Each process opens the journal file itself, builds its sampler with
    :func:`harness.methods.query.samplers.make_sampler` and waits at a barrier so all start together.
    The budget lock defaults to ``<storage_path>.budget.lock``. A worker's exception is
    re-raised here (``RuntimeError`` with its traceback).
    """
    _check_positive_int("n_workers", n_workers)
    _check_positive_int("budget", budget)
    if direction not in ("maximize", "minimize"):
        raise HarnessError(f"direction {direction!r}: expected 'maximize' or 'minimize'")
    options = dict(sampler_options or {})
    sampler = make_sampler(sampler_name, seed, space, **options)  # validates name and options here
    resolve_objective(objective_ref, objective_kwargs)       # fail before spawning anything
    storage_path = Path(storage_path)
    # Not "<journal>.lock": Optuna's own journal lock uses that name.
    lock_path = Path(lock_path) if lock_path is not None else storage_path.with_name(storage_path.name + ".budget.lock")
    if lock_path in (storage_path, storage_path.with_name(storage_path.name + ".lock")):
        raise HarnessError(f"lock_path {str(lock_path)!r}: clashes with the journal file or Optuna's own lock")
    study = optuna.create_study(study_name=study_name, storage=optuna_storage(storage_path),
                                sampler=sampler, direction=direction, load_if_exists=True)


    ctx = mp.get_context("spawn")  # fork would copy Optuna/torch state and threads
    barrier = ctx.Barrier(n_workers)
    results = ctx.Queue()
    job = dict(storage_path=str(storage_path), study_name=study_name, objective_ref=objective_ref,
               objective_kwargs=dict(objective_kwargs or {}), budget=budget, sampler_name=sampler_name,
               seed=seed, space=space, sampler_options=options, lock_path=str(lock_path),
               verbosity=optuna.logging.get_verbosity())
    procs = [ctx.Process(target=_worker_main, args=(i, job, barrier, results), name=f"harness-worker-{i}")
             for i in range(n_workers)]
    for p in procs:
        p.start()
    out = WorkersResult(study=study)
    errors: list[str] = []
    try:
        for _ in range(n_workers):
            index, error, numbers = _next_result(results, procs, timeout_s)
            if error:
                errors.append(f"worker {index}:\n{error}")
            out.trials_by_worker[index] = numbers
    finally:
        for p in procs:
            p.join(timeout=timeout_s)
            if p.is_alive():
                p.terminate()
                p.join()
    if errors:
        raise RuntimeError("search worker(s) failed:\n" + "\n".join(errors))
    return out


def _next_result(results, procs, timeout_s: float) -> tuple[int, "str | None", list[int]]:
    """Wait for a worker's report; notice workers that died without one."""
    waited = 0.0
    while True:
        try:
            return results.get(timeout=1.0)
        except queue_module.Empty:
            waited += 1.0
            if all(not p.is_alive() for p in procs) and results.empty():
                codes = [p.exitcode for p in procs]
                raise RuntimeError(f"search workers exited without reporting (exit codes {codes})") from None
            if waited >= timeout_s:
                raise RuntimeError(f"search workers did not finish within {timeout_s:.0f} s") from None


def _worker_main(index: int, job: dict, barrier, results) -> None:
    try:
        optuna.logging.set_verbosity(job["verbosity"])
        storage = optuna_storage(job["storage_path"])
        sampler = make_sampler(job["sampler_name"], job["seed"], job["space"], **job["sampler_options"])
        seed = worker_seed(sampler, job["seed"], index)
        if seed != job["seed"]:
            sampler = make_sampler(job["sampler_name"], seed, job["space"], **job["sampler_options"])
        study = optuna.load_study(study_name=job["study_name"], storage=storage, sampler=sampler)
        objective = resolve_objective(job["objective_ref"], job["objective_kwargs"])
        barrier.wait(timeout=120)
        numbers = optimize_to_budget(study, objective, job["budget"], job["lock_path"])
        results.put((index, None, numbers))
    except BaseException:
        barrier.abort()  # release the others instead of leaving them at the barrier
        results.put((index, traceback.format_exc(), []))


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise HarnessError(f"{name} {value!r}: must be an integer >= 1")
