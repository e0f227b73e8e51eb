"""What a tabular benchmark is: the protocol every table implements.

A tabular benchmark records, for every architecture of one search space, what it reaches after
training, so a search or a proxy can be scored without training anything. Callers talk to tables
only through this protocol (rows, columns, look-ups and the ground-truth column), so no
assumption about one benchmark (NAS-Bench-201's datasets, epoch budgets or seeds) leaks upward.
Adding a table is one module here plus one ``register_table`` line in
:mod:`harness.tabular.registry`.
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TabularBenchmark(Protocol):
    #: Name of the search space the table covers (a :func:`harness.spaces.get_space` name).
    space: str
    #: Where the numbers come from (a file path); recorded with results as provenance.
    source: str
    datasets: tuple[str, ...]
    num_archs: int

    def index_of(self, arch: Any) -> int:
        """Any encoding the space accepts -> row."""

    def indices_of(self, archs: Iterable[Any]) -> np.ndarray:
        """Many architectures (any encodings, or an int array of rows) -> int64 row array."""

    def column(self, dataset: str, metric: str, epochs: int) -> np.ndarray:
        """One metric after ``epochs`` epochs for every architecture, by row (read-only)."""

    def lookup(self, arch: Any, dataset: str, metric: str, epochs: int) -> float:
        """One architecture's value of one metric."""

    def ground_truth(self, dataset: str) -> np.ndarray:
        """The column proxies and searches are ranked against, by row (read-only)."""

    def metrics(self) -> dict[str, tuple[int, ...]]:
        """Metric name -> the epoch budgets it is recorded after."""
