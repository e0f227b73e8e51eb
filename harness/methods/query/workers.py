"""Run one Optuna study to an exact budget of COMPLETE trials from many workers, on many machines.

Optuna's ``n_trials`` counts per process, so N workers would overshoot a shared budget. Here a
worker asks for a trial only while holding the study's :class:`~harness.store.storage.StudyLock`
(a PostgreSQL advisory lock, a MySQL named lock, or an ``fcntl`` lock for journal files), and only
while ``COMPLETE + RUNNING + WAITING < budget``; the evaluation runs outside the lock. FAIL trials
do not count, so the study ends with exactly ``budget`` COMPLETE trials.

Faults (a dead worker's trial is reaped and its candidate re-evaluated once; a lost database is
retried with backoff): :mod:`harness.methods.query.faults`. A worker that loses its database for
``reconnect_s`` raises a one-line :class:`HarnessError`; what it had told is in the database, and a
study resumes by starting workers again.

Local worker processes (:func:`run_processes`) are forked, from this process when that is safe or
else from a fork server that imported the harness once (:func:`start_method`), instead of each
spawned process importing torch, Optuna and the harness again (~6 s of CPU each here: most of the
wall time of a short search on a fast proxy); they exit when the process that started them dies.
"""
from __future__ import annotations

import functools
import importlib
import multiprocessing as mp
import os
import queue as queue_module
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from harness import HarnessError
from harness.methods.query.faults import (
    BEAT,
    CLAIMED,
    FAULTS,
    OWNER,
    REAPED,
    RETRY_DEPTH,
    RETRY_OF,
    Faults,
    Heartbeat,
    owner,
    reap_stale,
    retrying,
)
from harness.methods.query.samplers import is_stateless, make_sampler
from harness.spaces import SearchSpace
from harness.store.storage import LockLost, StudyLock, journal_lock_paths, load_study, optuna_storage

Objective = Callable[[Trial], float]
FINALISED = "harness:finalised"
#: First wait while other workers run a study's last trials (doubling up to ``Faults.poll_s``):
#: table-proxy trials end in milliseconds, so a fixed 1 s wait idled every worker at the end of
#: every study.
POLL_FIRST_S = 0.01


def budget_state(study: optuna.Study) -> dict[TrialState, int]:
    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    return counts


_WAIT = object()


def _next_trial(study: optuna.Study, budget: int, lock: StudyLock, faults: Faults,
                finalise: "Callable[[optuna.Study], None] | None") -> "Trial | None | object":
    """Under the lock: reap, then a new trial, ``_WAIT`` (others run the last ones) or None (done)."""
    trial = None
    try:
        with lock:
            reap_stale(study, faults)
            n = budget_state(study)
            if n[TrialState.COMPLETE] >= budget:
                if finalise is not None and FINALISED not in study.user_attrs:
                    finalise(study)
                    study.set_user_attr(FINALISED, time.time())
                return None
            if n[TrialState.WAITING] == 0 and n[TrialState.COMPLETE] + n[TrialState.RUNNING] >= budget:
                return _WAIT
            trial = study.ask()
            # Who runs it: a re-run on this machine reaps it at once if that process is gone.
            study._storage.set_trial_system_attr(trial._trial_id, OWNER, owner())
            return trial
    except LockLost:
        if trial is None:
            raise
        # Another worker may have asked while our session was gone: re-count under a new lock.
        with lock:
            n = budget_state(study)
            if RETRY_OF not in study._storage.get_trial(trial._trial_id).system_attrs and \
                    n[TrialState.COMPLETE] + n[TrialState.RUNNING] + n[TrialState.WAITING] > budget:
                study._storage.set_trial_system_attr(trial._trial_id, REAPED, "over budget")
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                return _WAIT
        return trial


def _claim(study: optuna.Study, trial: Trial, value: float, lock: StudyLock) -> bool:
    """Record the value on the trial while it is still ours (under the lock, so no reaper races)."""
    with lock:
        if study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            return False  # reaped: its candidate is re-evaluated by whoever asks next
        trial.set_user_attr(CLAIMED, value)
        return True


def optimize_to_budget(study: optuna.Study, objective: Objective, budget: int, lock: "StudyLock | str | Path",
                       *, finalise: "Callable[[optuna.Study], None] | None" = None, faults: Faults = FAULTS,
                       timings: "list[tuple[float, float]] | None" = None) -> list[int]:
    """Ask, evaluate and tell until the study holds ``budget`` COMPLETE trials; safe from any
    number of processes and machines sharing the study and its lock.

    The value is claimed on the trial (under the lock) before the tell, so a worker that dies in
    between costs no re-evaluation; ``finalise(study)`` runs once per study, by the first worker
    that finds the budget met. A failing objective marks its trial FAIL (not counted) and
    re-raises. ``timings`` collects (ask_s, tell_s) per trial. Returns the numbers of the trials
    this call completed.
    """
    _check_positive_int("budget", budget)
    if not isinstance(lock, StudyLock):
        lock = StudyLock(None, study.study_name, lock_path=lock)
    ran: list[int] = []
    wait_s = POLL_FIRST_S
    with Heartbeat(study, faults.heartbeat_s) as heartbeat:
        while True:
            t0 = time.perf_counter()
            trial = retrying(lambda: _next_trial(study, budget, lock, faults, finalise), faults, "asking for a trial")
            if trial is None:
                return ran
            if trial is _WAIT:  # the last trials are someone else's: look again soon, then less often
                time.sleep(wait_s)
                wait_s = min(2 * wait_s, faults.poll_s)
                continue
            wait_s = POLL_FIRST_S
            ask_s = time.perf_counter() - t0
            heartbeat.watch(trial._trial_id)
            try:
                value = float(retrying(lambda: objective(trial), faults, f"evaluating trial {trial.number}"))
            except BaseException:
                heartbeat.watch(None)
                retrying(lambda: study.tell(trial, state=TrialState.FAIL, skip_if_finished=True), faults,
                         f"failing trial {trial.number}")
                raise
            t1 = time.perf_counter()
            claimed = retrying(lambda: _claim(study, trial, value, lock), faults, f"claiming trial {trial.number}")
            heartbeat.watch(None)
            if not claimed:
                continue
            retrying(lambda: study.tell(trial, value, skip_if_finished=True), faults, f"telling trial {trial.number}")
            ran.append(trial.number)
            if timings is not None:
                timings.append((ask_s, time.perf_counter() - t1))


def resolve_objective(objective_ref: str, kwargs: "Mapping[str, Any] | None" = None) -> Callable:
    """``"package.module:function"`` -> ``function`` (with ``kwargs`` bound)."""
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


def worker_seed(sampler: optuna.samplers.BaseSampler, seed: "int | None", worker: int,
                start: int = 0) -> "int | None":
    """The seed worker ``worker`` gives its sampler in a study that holds ``start`` trials: the
    run's seed for a stateless sampler (REA draws per trial number) and for worker 0 of a fresh
    study (one worker reproduces a single-process run); otherwise one derived from all three, so
    workers do not repeat each other and a resumed sampler does not replay its first draws."""
    if seed is None or is_stateless(sampler) or (worker, start) == (0, 0):
        return seed
    return int(np.random.SeedSequence([seed, worker, start]).generate_state(1)[0])


@dataclass
class WorkersResult:
    study: optuna.Study
    #: worker index -> numbers of the trials it completed.
    trials_by_worker: dict[int, list[int]] = field(default_factory=dict)
    #: worker index -> (ask_s, tell_s) per trial it completed.
    timings_by_worker: dict[int, list[tuple[float, float]]] = field(default_factory=dict)


def run_processes(n: int, target_ref: str, kwargs: Mapping[str, Any], timeout_s: float = 600.0,
                  torch_free: bool = False) -> list[Any]:
    """Start ``n`` processes calling ``target(index=i, **kwargs)`` (all start together); their return
    values in index order. ``torch_free``: the target runs no torch code (a table proxy), so the
    processes may be forked from this one (:func:`start_method`). A process's exception is re-raised
    here as ``RuntimeError`` with its traceback (a :class:`HarnessError` as itself, first line only)."""
    _check_positive_int("n_workers", n)
    resolve_objective(target_ref)  # fail before starting anything
    method = start_method(torch_free)
    ctx = mp.get_context(method)
    if method == "forkserver":  # it imports the target's module and every harness module imported
        # here (what a child needs to re-run our main module as __mp_main__), once
        ctx.set_forkserver_preload([target_ref.partition(":")[0],
                                    *sorted(m for m in sys.modules if m.startswith("harness."))])
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(i, target_ref, dict(kwargs), barrier, results,
                                                     optuna.logging.get_verbosity()), name=f"harness-worker-{i}")
             for i in range(n)]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    errors: list[str] = []
    wait_s = 5.0  # on an interrupt: the workers got the same Ctrl-C; then they are stopped
    try:
        for _ in range(n):
            index, error, value = _next_result(results, procs, timeout_s)
            if error:
                errors.append(error if error.startswith("HarnessError: ") else f"worker {index}:\n{error}")
            out[index] = value
        wait_s = timeout_s
    finally:
        for p in procs:
            p.join(timeout=wait_s)
            if p.is_alive():
                p.terminate()
                p.join()
    harness_errors = [e for e in errors if e.startswith("HarnessError: ")]
    if harness_errors:
        raise HarnessError(harness_errors[0].removeprefix("HarnessError: "))
    if errors:
        raise RuntimeError("search worker(s) failed:\n" + "\n".join(errors))
    return [out[i] for i in range(n)]


def start_method(torch_free: bool) -> str:
    """How worker processes start. ``fork`` (a worker starts in milliseconds, every module already
    imported) when the workers run no torch code -- a forked child must not use an OpenMP pool or
    a CUDA context of its parent -- and this process runs no other Python thread (whose locks the
    child would inherit held) and holds no CUDA context. Otherwise ``forkserver``: workers are
    forked from a fresh interpreter that imported the harness once (seconds, instead of seconds
    per worker with ``spawn``). Process-wide caches of connections and storages are reset in a
    forked child (``os.register_at_fork`` in the modules that own them)."""
    torch = sys.modules.get("torch")  # not imported for this: a process without torch has no CUDA context
    cuda = torch is not None and torch.cuda.is_initialized()
    return "fork" if torch_free and threading.active_count() == 1 and not cuda else "forkserver"


def _next_result(results, procs, timeout_s: float) -> tuple[int, "str | None", Any]:
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


def _exit_with_parent() -> None:
    """Die with the process that started us (killed or crashed): a crash of ``harness bench``
    must not leave its workers running on, unseen; their trials are reaped when it is re-run."""
    mp.parent_process().join()
    os._exit(1)


def _process_main(index: int, target_ref: str, kwargs: dict, barrier, results, verbosity: int) -> None:
    threading.Thread(target=_exit_with_parent, name="harness-parent-watch", daemon=True).start()
    try:
        optuna.logging.set_verbosity(verbosity)
        target = resolve_objective(target_ref)
        barrier.wait(timeout=120)
        results.put((index, None, target(index=index, **kwargs)))
    except HarnessError as e:
        barrier.abort()
        results.put((index, f"HarnessError: {e}", None))
    except BaseException:
        barrier.abort()  # release the others instead of leaving them at the barrier
        results.put((index, traceback.format_exc(), None))


def study_worker(index: int, *, storage: str, study_name: str, objective_ref: str, objective_kwargs: dict,
                 budget: int, sampler_name: str, seed: "int | None", space: "SearchSpace | str",
                 sampler_options: dict, lock_path: "str | None", faults: Faults) -> tuple[list[int], list]:
    """One process of :func:`run_workers`: open the storage, build the sampler, run to the budget."""
    sampler = make_sampler(sampler_name, seed, space, **sampler_options)
    worker = worker_seed(sampler, seed, index, start=len(load_study(storage, study_name).get_trials(deepcopy=False)))
    if worker != seed:
        sampler = make_sampler(sampler_name, worker, space, **sampler_options)
    study = load_study(storage, study_name, sampler=sampler)
    timings: list = []
    numbers = optimize_to_budget(study, resolve_objective(objective_ref, objective_kwargs), budget,
                                 StudyLock(storage, study_name, lock_path), faults=faults, timings=timings)
    return numbers, timings


def run_workers(n_workers: int, storage: "str | Path", study_name: str, objective_ref: str,
                budget: int, *, sampler_name: str = "rea", seed: "int | None" = None,
                space: "SearchSpace | str" = "nb201",
                sampler_options: "Mapping[str, Any] | None" = None, direction: str = "maximize",
                objective_kwargs: "Mapping[str, Any] | None" = None,
                lock_path: "str | Path | None" = None, faults: Faults = FAULTS,
                timeout_s: float = 600.0) -> WorkersResult:
    """Spawn ``n_workers`` processes on this machine that run one study (created if missing) to
    ``budget`` COMPLETE trials. ``storage``: a journal file path or a database URL; ``lock_path``
    (journal files only) defaults to ``<journal>.budget.lock``."""
    _check_positive_int("n_workers", n_workers)
    _check_positive_int("budget", budget)
    if direction not in ("maximize", "minimize"):
        raise HarnessError(f"direction {direction!r}: expected 'maximize' or 'minimize'")
    options = dict(sampler_options or {})
    sampler = make_sampler(sampler_name, seed, space, **options)  # validates name and options here
    resolve_objective(objective_ref, objective_kwargs)       # fail before spawning anything
    if lock_path is not None:
        journal = Path(storage)
        if Path(lock_path) in (journal, journal.with_name(journal.name + ".lock"), journal_lock_paths(journal)[0]):
            raise HarnessError(f"lock_path {str(lock_path)!r}: clashes with the journal file or its write lock")
    study = optuna.create_study(study_name=study_name, storage=optuna_storage(storage),
                                sampler=sampler, direction=direction, load_if_exists=True)
    outs = run_processes(n_workers, f"{__name__}:study_worker", dict(
        storage=str(storage), study_name=study_name, objective_ref=objective_ref,
        objective_kwargs=dict(objective_kwargs or {}), budget=budget, sampler_name=sampler_name, seed=seed,
        space=space, sampler_options=options, lock_path=None if lock_path is None else str(lock_path),
        faults=faults), timeout_s)
    return WorkersResult(study=study, trials_by_worker={i: o[0] for i, o in enumerate(outs)},
                         timings_by_worker={i: o[1] for i, o in enumerate(outs)})


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise HarnessError(f"{name} {value!r}: must be an integer >= 1")


__all__ = ["BEAT", "CLAIMED", "FAULTS", "REAPED", "RETRY_DEPTH", "RETRY_OF", "Faults", "FrozenTrial", "optimize_to_budget",
           "reap_stale", "run_workers", "run_processes"]
