"""Run one Optuna study to an exact budget of COMPLETE trials from many workers, on many machines.

Optuna's ``n_trials`` counts per process, so N workers would overshoot a shared budget. Here a
worker asks for a trial only while holding the study's :class:`~harness.store.storage.StudyLock`
(a PostgreSQL advisory lock, a MySQL named lock, or an ``fcntl`` lock for journal files), and only
while ``COMPLETE + RUNNING + WAITING < budget``; the evaluation runs outside the lock. FAIL trials
do not count, so the study ends with exactly ``budget`` COMPLETE trials.

Faults (Optuna's heartbeat / ``fail_stale_trials`` / ``RetryHeartbeatStaleTrialCallback`` idea,
re-done for ask-and-tell and for every storage): each running trial carries a heartbeat (system
attribute ``harness:beat``, renewed by a thread every ``heartbeat_s``). Under the lock, a worker
reaps trials whose beat is older than ``grace_s``: one whose value was already claimed (the worker
died between evaluating and telling) is completed with that value; any other is marked FAIL and its
candidate enqueued once as a WAITING trial with the same parameters (``harness:retry_of``), which the
next ``ask`` picks up first. Reaping and re-enqueueing are idempotent, so a reaper that dies
half-way is finished by the next one. A worker that loses its database retries with exponential
backoff for ``reconnect_s``, then raises a one-line :class:`HarnessError`; what it had told is in
the database, and a study resumes by starting workers again.
"""
from __future__ import annotations

import functools
import importlib
import multiprocessing as mp
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
from harness.methods.query.samplers import is_stateless, make_sampler
from harness.spaces import SearchSpace
from harness.store.storage import CONNECTION_ERRORS, LockLost, StudyLock, load_study, optuna_storage

Objective = Callable[[Trial], float]
BEAT, CLAIMED, REAPED, RETRY_OF, RETRY_DEPTH = ("harness:beat", "harness:value", "harness:reaped",
                                                "harness:retry_of", "harness:retry_depth")
FINALISED = "harness:finalised"


@dataclass(frozen=True)
class Faults:
    """Fault handling of a worker (seconds)."""

    heartbeat_s: float = 10.0    #: a running trial's beat is renewed this often
    grace_s: float = 60.0        #: a beat older than this marks the trial's worker dead
    max_retries: int = 1         #: re-evaluations of a candidate whose worker died (a retry that dies is not retried)
    reconnect_s: float = 60.0    #: how long a worker keeps retrying a lost database before it exits
    poll_s: float = 1.0          #: wait between looks while the other workers run the last trials


FAULTS = Faults()


def _retrying(fn: Callable[[], Any], faults: Faults, what: str) -> Any:
    """``fn()``, retried with exponential backoff while the database is unreachable."""
    t0, delay = time.monotonic(), 0.25
    while True:
        try:
            return fn()
        except (*CONNECTION_ERRORS, LockLost) as e:
            lost = time.monotonic() - t0
            msg = " ".join(f"{type(e).__name__}: {e}".split())[:200]
            if lost >= faults.reconnect_s:
                raise HarnessError(f"worker lost the study database for {lost:.0f} s while {what}; giving up "
                                   f"(restart a worker to resume): {msg}") from None
            print(f"harness worker: database error while {what}, retrying in {delay:.2f} s: {msg}",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


class _Heartbeat:
    """Renews ``harness:beat`` of one running trial every ``interval`` seconds from a thread;
    a failed write is retried on the next beat (the reaper only acts after ``grace_s``)."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: float):
        self._storage, self._trial_id, self._interval = study._storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"harness-heartbeat-{trial_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.set_trial_system_attr(self._trial_id, BEAT, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                return
            except Exception:  # noqa: BLE001 -- a lost connection: the next beat tries again
                pass

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def reap_stale(study: optuna.Study, faults: Faults = FAULTS, now: "float | None" = None) -> list[int]:
    """Settle the trials of dead workers (call it holding the study lock); returns their numbers.

    A RUNNING trial whose beat (or start) is older than ``faults.grace_s`` is completed with its
    claimed value if it has one, else failed. Then every reaped-and-failed trial without a retry
    gets one WAITING copy of its parameters, unless it is already the ``max_retries``-th retry.
    """
    storage, now = study._storage, time.time() if now is None else now
    reaped = []
    trials = study.get_trials(deepcopy=False)
    for t in (t for t in trials if t.state == TrialState.RUNNING):
        beat = t.system_attrs.get(BEAT, t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat <= faults.grace_s:
            continue
        try:
            if CLAIMED in t.user_attrs:
                storage.set_trial_system_attr(t._trial_id, REAPED, "completed")
                storage.set_trial_state_values(t._trial_id, TrialState.COMPLETE, [t.user_attrs[CLAIMED]])
            else:
                storage.set_trial_system_attr(t._trial_id, REAPED, "failed")
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            reaped.append(t.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # its worker told it after all
    if reaped:
        trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get(RETRY_OF) for t in trials}
    for t in trials:
        if (t.state == TrialState.FAIL and t.system_attrs.get(REAPED) == "failed" and t.number not in retried
                and t.system_attrs.get(RETRY_DEPTH, 0) < faults.max_retries):
            study.add_trial(optuna.trial.create_trial(
                state=TrialState.WAITING, params=t.params, distributions=t.distributions,
                system_attrs={RETRY_OF: t.number, RETRY_DEPTH: t.system_attrs.get(RETRY_DEPTH, 0) + 1}))
    return reaped


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
            study._storage.set_trial_system_attr(trial._trial_id, BEAT, time.time())
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
                       *, record: "Callable[[Trial, float], None] | None" = None,
                       finalise: "Callable[[optuna.Study], None] | None" = None, faults: Faults = FAULTS,
                       timings: "list[tuple[float, float]] | None" = None) -> list[int]:
    """Ask, evaluate and tell until the study holds ``budget`` COMPLETE trials; safe from any
    number of processes and machines sharing the study and its lock.

    ``record(trial, value)`` runs after the value is claimed and before the tell (a row written
    there exists for every COMPLETE trial not reaped); ``finalise(study)`` runs once per study, by
    the first worker that finds the budget met. A failing objective marks its trial FAIL (not
    counted) and re-raises. ``timings`` collects (ask_s, tell_s) per trial. Returns the numbers
    of the trials this call completed.
    """
    _check_positive_int("budget", budget)
    if not isinstance(lock, StudyLock):
        lock = StudyLock(None, study.study_name, lock_path=lock)
    ran: list[int] = []
    while True:
        t0 = time.perf_counter()
        trial = _retrying(lambda: _next_trial(study, budget, lock, faults, finalise), faults, "asking for a trial")
        if trial is None:
            return ran
        if trial is _WAIT:
            time.sleep(faults.poll_s)
            continue
        ask_s = time.perf_counter() - t0
        with _Heartbeat(study, trial._trial_id, faults.heartbeat_s):
            try:
                value = float(_retrying(lambda: objective(trial), faults, f"evaluating trial {trial.number}"))
            except BaseException:
                _retrying(lambda: study.tell(trial, state=TrialState.FAIL, skip_if_finished=True), faults,
                          f"failing trial {trial.number}")
                raise
            t1 = time.perf_counter()
            if not _retrying(lambda: _claim(study, trial, value, lock), faults, f"claiming trial {trial.number}"):
                continue
            if record is not None:
                record(trial, value)
            _retrying(lambda: study.tell(trial, value, skip_if_finished=True), faults, f"telling trial {trial.number}")
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


def worker_seed(sampler: optuna.samplers.BaseSampler, seed: "int | None", worker: int) -> "int | None":
    """The seed worker ``worker`` gives its sampler: the run's seed for a stateless sampler
    (REA draws per trial number), a derived one otherwise so workers do not repeat each other."""
    if seed is None or is_stateless(sampler):
        return seed
    return int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


@dataclass
class WorkersResult:
    study: optuna.Study
    #: worker index -> numbers of the trials it completed.
    trials_by_worker: dict[int, list[int]] = field(default_factory=dict)
    #: worker index -> (ask_s, tell_s) per trial it completed.
    timings_by_worker: dict[int, list[tuple[float, float]]] = field(default_factory=dict)


def run_processes(n: int, target_ref: str, kwargs: Mapping[str, Any], timeout_s: float = 600.0) -> list[Any]:
    """Spawn ``n`` processes calling ``target(index=i, **kwargs)`` (all start together); their return
    values in index order. A process's exception is re-raised here as ``RuntimeError`` with its
    traceback (a :class:`HarnessError` as itself, first line only)."""
    _check_positive_int("n_workers", n)
    resolve_objective(target_ref)  # fail before spawning anything
    ctx = mp.get_context("spawn")  # fork would copy Optuna/torch state and threads
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(i, target_ref, dict(kwargs), barrier, results,
                                                     optuna.logging.get_verbosity()), name=f"harness-worker-{i}")
             for i in range(n)]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in range(n):
            index, error, value = _next_result(results, procs, timeout_s)
            if error:
                errors.append(error if error.startswith("HarnessError: ") else f"worker {index}:\n{error}")
            out[index] = value
    finally:
        for p in procs:
            p.join(timeout=timeout_s)
            if p.is_alive():
                p.terminate()
                p.join()
    harness_errors = [e for e in errors if e.startswith("HarnessError: ")]
    if harness_errors:
        raise HarnessError(harness_errors[0].removeprefix("HarnessError: "))
    if errors:
        raise RuntimeError("search worker(s) failed:\n" + "\n".join(errors))
    return [out[i] for i in range(n)]


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


def _process_main(index: int, target_ref: str, kwargs: dict, barrier, results, verbosity: int) -> None:
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
    worker = worker_seed(sampler, seed, index)
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
        if Path(lock_path) in (journal, journal.with_name(journal.name + ".lock")):
            raise HarnessError(f"lock_path {str(lock_path)!r}: clashes with the journal file or Optuna's own lock")
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


__all__ = ["FAULTS", "Faults", "FrozenTrial", "optimize_to_budget", "reap_stale", "run_workers", "run_processes"]
