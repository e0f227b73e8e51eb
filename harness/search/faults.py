"""Fault handling of study workers: heartbeats, reaping the trials of dead workers, retries.

Optuna's heartbeat / ``fail_stale_trials`` / ``RetryHeartbeatStaleTrialCallback`` idea, re-done for
ask-and-tell and for every storage: each running trial carries a heartbeat (system attribute
``harness:beat``, renewed by a thread every ``heartbeat_s``; before the first beat its start time
counts) and its owner (``harness:owner``: host, boot id, process id and start time). Under the
study lock, a worker reaps trials whose beat is older than ``grace_s``, or whose owner ran on this
machine and has exited (a re-run after a crash does not wait out the grace): one whose value was
already claimed (the worker died between evaluating and telling) is completed with that value; any
other is marked FAIL and its candidate enqueued once as a WAITING trial with the same parameters
(``harness:retry_of``), which the next ``ask`` picks up first. Reaping and re-enqueueing are
idempotent, so a reaper that dies half-way is finished by the next one.
"""
from __future__ import annotations

import functools
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from harness import HarnessError, one_line
from harness.search.storage import CONNECTION_ERRORS, LockLost

BEAT, CLAIMED, REAPED, RETRY_OF, RETRY_DEPTH = ("harness:beat", "harness:value", "harness:reaped",
                                                "harness:retry_of", "harness:retry_depth")
OWNER = "harness:owner"


@dataclass(frozen=True)
class Faults:
    """Fault handling of a worker (seconds)."""

    heartbeat_s: float = 10.0    #: a running trial's beat is renewed this often
    grace_s: float = 60.0        #: a beat older than this marks the trial's worker dead
    max_retries: int = 1         #: re-evaluations of a candidate whose worker died (a retry that dies is not retried)
    reconnect_s: float = 60.0    #: how long a worker keeps retrying a lost database before it exits
    poll_s: float = 1.0          #: longest wait between looks while the other workers run the last trials


FAULTS = Faults()


def retrying(fn: Callable[[], Any], faults: Faults, what: str) -> Any:
    """``fn()``, retried with exponential backoff while the database is unreachable."""
    t0, delay = time.monotonic(), 0.25
    while True:
        try:
            return fn()
        except (*CONNECTION_ERRORS, LockLost) as e:
            lost = time.monotonic() - t0
            msg = one_line(e, 200)
            if lost >= faults.reconnect_s:
                raise HarnessError(f"worker lost the study database for {lost:.0f} s while {what}; giving up "
                                   f"(restart a worker to resume): {msg}") from None
            print(f"harness worker: database error while {what}, retrying in {delay:.2f} s: {msg}",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


class Heartbeat:
    """Renews ``harness:beat`` of the trial a worker evaluates (:meth:`watch`) every ``interval``
    seconds, from one thread per worker loop (not one per trial: starting a thread costs more
    than a tabular evaluation); a failed write is retried on the next beat (the reaper only acts
    after ``grace_s``)."""

    def __init__(self, study: optuna.Study, interval: float):
        self._storage, self._interval = study._storage, interval
        self._trial_id: "int | None" = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harness-heartbeat", daemon=True)

    def watch(self, trial_id: "int | None") -> None:
        """Beat for ``trial_id`` from now on (None: for no trial)."""
        self._trial_id = trial_id

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            trial_id = self._trial_id
            if trial_id is None:
                continue
            try:
                self._storage.set_trial_system_attr(trial_id, BEAT, time.time())
            except Exception:  # noqa: BLE001 -- told meanwhile, or a lost connection: the next beat tries again
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _read(path: str) -> "str | None":
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _proc_stat(pid: "int | str") -> "list[str] | None":
    """Fields of ``/proc/<pid>/stat`` after the command name (state first); None without one."""
    text = _read(f"/proc/{pid}/stat")
    return None if text is None else text.rpartition(")")[2].split()


@functools.lru_cache(maxsize=1)
def owner() -> dict:
    """Who runs a trial: host, boot id (two boots, or two containers named alike on one kernel,
    never share one), process id and the process's start time (process ids are reused)."""
    stat = _proc_stat("self")
    return {"host": socket.gethostname(), "boot": (_read("/proc/sys/kernel/random/boot_id") or "").strip(),
            "pid": os.getpid(), "start": stat[19] if stat else None}


os.register_at_fork(after_in_child=owner.cache_clear)  # a forked worker is another process


def owner_gone(who: "dict | None") -> bool:
    """True only when ``who`` ran on this machine and its process has exited (a zombie counts:
    a parent that never waits for it does not keep its trials alive); unsure -> False."""
    me = owner()
    if not isinstance(who, dict) or (who.get("host"), who.get("boot")) != (me["host"], me["boot"]):
        return False
    stat = _proc_stat(who.get("pid"))
    if stat is not None:
        return stat[0] in ("Z", "X") or (who.get("start") is not None and stat[19] != who["start"])
    if me["start"] is not None:  # /proc works here and the process is not in it
        return True
    try:
        os.kill(int(who["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, TypeError, ValueError):
        return False
    return False


def reap_stale(study: optuna.Study, faults: Faults = FAULTS, now: "float | None" = None) -> list[int]:
    """Settle the trials of dead workers (call it holding the study lock); returns their numbers.

    A RUNNING trial whose beat (or start) is older than ``faults.grace_s``, or whose owner has
    exited on this machine, is completed with its claimed value if it has one, else failed. Then
    every reaped-and-failed trial without a retry gets one WAITING copy of its parameters, unless it
    is already the ``max_retries``-th retry.
    """
    storage, now = study._storage, time.time() if now is None else now
    reaped = []
    trials = study.get_trials(deepcopy=False)
    for t in (t for t in trials if t.state == TrialState.RUNNING):
        beat = t.system_attrs.get(BEAT, t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat <= faults.grace_s and not owner_gone(t.system_attrs.get(OWNER)):
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
