"""How a candidate is scored: the :class:`Proxy` interface and the :class:`Score` it returns.

A proxy maps one candidate of a space to a number a search maximises (paper Sec. 3: the
"Original" proxy is the 12-epoch validation accuracy; Tr-Net-i-j's is the validation accuracy of
the spliced network) plus what that number cost. Each score also carries the candidate's ground
truth when the space has a tabular benchmark (NB201: the 200-epoch test accuracy), so a search
or a rank benchmark can be judged by what it really finds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from harness.spaces import SearchSpace
from harness.tabular import get_table, table_spaces


@dataclass
class Score:
    value: float               # what the search maximises
    ground_truth: float        # NaN when the space has no tabular benchmark
    wall_s: float
    peak_bytes: "int | None"   # saved-for-backward bytes (CPU) or CUDA peak; None for look-ups
    device: str
    cached: bool = False       # replayed from an earlier run


class Proxy(Protocol):
    name: str
    space: SearchSpace

    def __call__(self, arch: Any) -> Score: ...


class GroundTruth:
    """The ground-truth vector of a space's tabular benchmark for one dataset, if there is one."""

    def __init__(self, space: SearchSpace, dataset: str, table_path: "str | None" = None):
        self.space = space
        self.table = get_table(space.name, table_path) if space.name in table_spaces() else None
        self._truth = self.table.ground_truth(dataset) if self.table is not None else None

    def __call__(self, arch: Any) -> float:
        if self._truth is None:
            return float("nan")
        return float(self._truth[self.table.index_of(arch)])

    def vector(self) -> "np.ndarray | None":
        return self._truth
