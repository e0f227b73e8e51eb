"""One-shot NAS methods by name: what a ``oneshot`` definition's ``methods`` axis names.

A method trains a searchable supernet and selects an architecture on it: ``search(model, data,
cfg, seed=, progress=, label=)`` returns a :class:`.training.SearchResult` (found arch, per-epoch
rows, projections, seconds split into supernet training and selection, the final supernet's valid
accuracy). ``config(search_table, supernet, warmup, cutout)`` turns a definition's ``[search]``
table into the :class:`.bilevel.SearchConfig` of one run. A new method is one module here whose
search reuses :class:`.training.SupernetTraining`, plus one line in :data:`ONESHOT_METHODS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from torch import nn

from harness.data.datasets import Dataset
from harness.methods.oneshot.argmax import argmax_config, argmax_search
from harness.methods.oneshot.bilevel import SearchConfig
from harness.methods.oneshot.dartspt import config_from_table, dartspt_search
from harness.methods.oneshot.training import SearchResult


class Search(Protocol):
    def __call__(self, model: nn.Module, data: Dataset, cfg: SearchConfig, *, seed: int, progress: bool,
                 label: str) -> SearchResult: ...


#: (search table, supernet name, warmup axis value, cutout axis value) -> the run's settings.
ConfigParser = Callable[[dict, str, "int | None", "int | None"], SearchConfig]


@dataclass(frozen=True)
class OneShotMethod:
    name: str                                  # as its rows record it (column ``method``)
    search: Search
    config: ConfigParser = config_from_table


#: Registry key -> method; the key is what definitions name.
ONESHOT_METHODS: dict[str, OneShotMethod] = {
    "dartspt": OneShotMethod("DARTS+PT", dartspt_search),  # Wang et al., ICLR 2021: perturbation-based selection
    "darts": OneShotMethod("DARTS", argmax_search, argmax_config),  # Liu et al., ICLR 2019: argmax of alpha
}
#: The method of a definition that names none: the paper's (Sec. 4.3).
DEFAULT_METHOD = "dartspt"
