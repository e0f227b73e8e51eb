"""A toy one-shot method: the smallest complete entry of
:data:`harness.methods.oneshot.registry.ONESHOT_METHODS`, to copy from.

It trains the supernet as every method here does (:class:`SupernetTraining`), then keeps the first
candidate of every decision the supernet offers (:mod:`harness.spaces.mixed`: an edge's first op, a
node's first two incoming edges) -- a selection that ignores the training. Register it with
``ONESHOT_METHODS["first-op"] = TOY_METHOD``; a definition then names it in ``methods``.
"""
from __future__ import annotations

import time

from torch import nn

from harness.data.datasets import Dataset
from harness.methods.oneshot.bilevel import SearchConfig
from harness.methods.oneshot.decision import OP
from harness.methods.oneshot.registry import OneShotMethod
from harness.methods.oneshot.training import SearchResult, SupernetTraining


def first_op_search(model: nn.Module, data: Dataset, cfg: SearchConfig, *, seed: int = 0,
                    progress: bool = False, label: str = "first-op") -> SearchResult:
    run = SupernetTraining(model, data, cfg, seed=seed, progress=progress, label=label, epochs=cfg.epochs)
    run.train()
    t0 = time.perf_counter()
    arch = model.arch
    for phase in arch.pt_lanes():
        for kind, keys in phase:
            for key in keys:
                arch.keep(kind, key, arch.candidates(kind, key)[:1 if kind == OP else 2])
    run.result.select_s = time.perf_counter() - t0
    return run.finish(model.genotype())


TOY_METHOD = OneShotMethod("first-op", first_op_search)
