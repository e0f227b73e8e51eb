"""Table proxies: a column of a space's tabular benchmark as the score, in microseconds.

``nb201-12ep-val`` is the paper's "Original" proxy (12-epoch validation accuracy, NB201
``hp='12'``); ``nb201-200ep-oneseed`` one more full training run, the noise ceiling of Table 1.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness import HarnessError
from harness.proxies.base import GroundTruth, Score
from harness.spaces import SearchSpace
from harness.tabular import get_table

#: name -> (space, metric, epochs)
TABLE_PROXIES: dict[str, tuple[str, str, int]] = {
    "nb201-12ep-val": ("nb201", "val_acc", 12),            # the paper's "Original"
    "nb201-12ep-test": ("nb201", "test_acc", 12),
    "nb201-200ep-oneseed": ("nb201", "test_acc_oneseed", 200),  # noise ceiling: one more full training
}


class TableProxy:
    def __init__(self, name: str, space: SearchSpace, dataset: str, table_path: "str | None" = None):
        if name not in TABLE_PROXIES:
            raise HarnessError(f"proxy {name!r}: unknown table proxy (known: {', '.join(TABLE_PROXIES)})")
        table_space, metric, epochs = TABLE_PROXIES[name]
        if table_space != space.name:
            raise HarnessError(f"proxy {name!r}: a table of space {table_space!r}, not {space.name!r}")
        self.name, self.space, self.dataset = name, space, dataset
        self.table = get_table(space.name, table_path)
        self._values = self.table.column(dataset, metric, epochs)
        self._truth = GroundTruth(space, dataset, table_path)

    def values(self) -> np.ndarray:
        """The proxy for every architecture of the table (rank benchmarks)."""
        return self._values

    def __call__(self, arch: Any) -> Score:
        t0 = time.perf_counter()
        i = self.table.index_of(arch)
        value, truth = float(self._values[i]), self._truth(arch)
        return Score(value, truth, time.perf_counter() - t0, None, "table")
