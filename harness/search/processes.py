"""Worker processes on one machine: start N, collect what each returned, fail as one.

The local workers of a search batch (:func:`harness.search.batch.run_batch`) are such processes
(:func:`run_processes`), forked from this process when that is safe or else from a fork server that imported the harness once (:func:`start_method`), instead of each
spawned process importing torch, Optuna and the harness again (~6 s of CPU each here: most of the
wall time of a short search on a fast proxy); they exit when the process that started them dies.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import queue as queue_module
import sys
import threading
import traceback
from typing import Any, Callable, Mapping

import optuna

from harness import HarnessError
from harness.search.loop import check_positive_int


def resolve_target(target_ref: str) -> Callable:
    """``"package.module:function"`` -> ``function``: what a process runs, named so that a process
    started from a fresh interpreter can import it."""
    module_name, sep, attr = target_ref.partition(":")
    if not sep or not module_name or not attr:
        raise HarnessError(f"target {target_ref!r}: expected 'package.module:function'")
    try:
        fn = importlib.import_module(module_name)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except (ImportError, AttributeError) as e:
        raise HarnessError(f"target {target_ref!r}: cannot be imported ({e})") from None
    if not callable(fn):
        raise HarnessError(f"target {target_ref!r}: is not callable")
    return fn


def run_processes(n: int, target_ref: str, kwargs: Mapping[str, Any], timeout_s: float = 600.0,
                  torch_free: bool = False) -> list[Any]:
    """Start ``n`` processes calling ``target(index=i, **kwargs)`` (all start together); their return
    values in index order. ``torch_free``: the target runs no torch code (a table proxy), so the
    processes may be forked from this one (:func:`start_method`). A process's exception is re-raised
    here as ``RuntimeError`` with its traceback (a :class:`HarnessError` as itself, first line only)."""
    check_positive_int("n_workers", n)
    resolve_target(target_ref)  # fail before starting anything
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
        target = resolve_target(target_ref)
        barrier.wait(timeout=120)
        results.put((index, None, target(index=index, **kwargs)))
    except HarnessError as e:
        barrier.abort()
        results.put((index, f"HarnessError: {e}", None))
    except BaseException:
        barrier.abort()  # release the others instead of leaving them at the barrier
        results.put((index, traceback.format_exc(), None))
