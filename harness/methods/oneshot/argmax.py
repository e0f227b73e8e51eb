"""DARTS's own architecture selection (Liu et al., ICLR 2019, Sec. 2.4): after the bilevel search,
each edge keeps the op of largest architecture weight -- the baseline DARTS+PT's perturbation-based
selection was designed to beat (Wang et al., ICLR 2021, Sec. 3).

The supernet training is DARTS+PT's (:class:`.training.SupernetTraining`: same bilevel steps, same
``epochs``, same seeds, so the trained alphas are those PT starts from); then no tuning epochs and no
measurements: the architecture is the supernet's ``genotype()`` with nothing projected, which is
DARTS's derivation in each space -- NB201: per edge the argmax of alpha over all 5 ops, ``none``
included (NB201's DARTS baseline, xautodl ``search_model_darts.py`` ``genotype()``); DARTS space:
per node the two incoming edges whose strongest non-``none`` op weighs most, each with that op
(DARTS ``model_search.py`` ``genotype()``).
"""
from __future__ import annotations

import time

from torch import nn

from harness.data.datasets import Dataset
from harness.methods.oneshot.bilevel import SearchConfig
from harness.methods.oneshot.dartspt import config_from_table
from harness.methods.oneshot.training import SearchResult, SupernetTraining


def argmax_config(search: dict, supernet: str, warmup: "int | None" = None, cutout: "int | None" = None
                  ) -> SearchConfig:
    """DARTS+PT's settings (:func:`.dartspt.config_from_table`) without its tuning epochs: DARTS
    selects right after training, and its rows say so."""
    return config_from_table(search, supernet, warmup, cutout).with_(tune_epochs=0)


def argmax_search(model: nn.Module, data: Dataset, cfg: SearchConfig, *, seed: int = 0,
                  progress: bool = False, label: str = "DARTS") -> SearchResult:
    """Train ``model`` (already on the data's device) with DARTS and keep the argmax of alpha."""
    run = SupernetTraining(model, data, cfg, seed=seed, progress=progress, label=label, epochs=cfg.epochs)
    run.train()
    t0 = time.perf_counter()
    arch = model.genotype()
    run.result.select_s = time.perf_counter() - t0
    return run.finish(arch)
