"""Distributed search: Optuna studies run to an exact budget by any number of workers on any machines.

:mod:`~harness.search.batch` is the one entry point (``harness bench`` for kind ``search``, through
:func:`harness.bench.runner.run_benchmark`, and ``harness worker``); the other modules are its
layers, not other ways to run a search: :mod:`~harness.search.studies` creates and joins a batch's studies;
:mod:`~harness.search.loop` is the worker loop (the budget lock); :mod:`~harness.search.faults`
heartbeats, stale-trial reaping and reconnects; :mod:`~harness.search.processes` local worker
processes; :mod:`~harness.search.storage` storage URLs and the study lock;
:mod:`~harness.search.trials` one trial (suggest, score, row); :mod:`~harness.search.summary` the
best-by-proxy rule that summarises a search. The samplers (REA, random, TPE) are NAS methods:
:mod:`harness.methods.samplers`.
"""
