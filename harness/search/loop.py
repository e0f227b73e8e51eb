"""Run one Optuna study to an exact budget of COMPLETE trials from many workers, on many machines.

Optuna's ``n_trials`` counts per process, so N workers would overshoot a shared budget. Here a
worker asks for a trial only while holding the study's :class:`~harness.search.storage.StudyLock`
(a PostgreSQL advisory lock, a MySQL named lock, or an ``fcntl`` lock for journal files), and only
while ``COMPLETE + RUNNING + WAITING < budget``; the evaluation runs outside the lock. FAIL trials
do not count, so the study ends with exactly ``budget`` COMPLETE trials.

Faults (a dead worker's trial is reaped and its candidate re-evaluated once; a lost database is
retried with backoff): :mod:`harness.search.faults`. Worker processes on one machine: :mod:`harness.search.processes`. A worker that loses its database for
``reconnect_s`` raises a one-line :class:`HarnessError`; what it had told is in the database, and a
study resumes by starting workers again.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.trial import Trial, TrialState

from harness import HarnessError
from harness.methods.samplers import is_stateless
from harness.search.faults import (
    CLAIMED,
    FAULTS,
    OWNER,
    REAPED,
    RETRY_OF,
    Faults,
    Heartbeat,
    owner,
    reap_stale,
    retrying,
)
from harness.search.storage import LockLost, StudyLock

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
    check_positive_int("budget", budget)
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


def worker_seed(sampler: optuna.samplers.BaseSampler, seed: "int | None", worker: int,
                start: int = 0) -> "int | None":
    """The seed worker ``worker`` gives its sampler in a study that holds ``start`` trials: the
    run's seed for a stateless sampler (REA draws per trial number) and for worker 0 of a fresh
    study (one worker reproduces a single-process run); otherwise one derived from all three, so
    workers do not repeat each other and a resumed sampler does not replay its first draws."""
    if seed is None or is_stateless(sampler) or (worker, start) == (0, 0):
        return seed
    return int(np.random.SeedSequence([seed, worker, start]).generate_state(1)[0])


def check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise HarnessError(f"{name} {value!r}: must be an integer >= 1")
