"""Tabular benchmarks: look up what an architecture reaches without training it.

* :mod:`harness.tabular.base` -- :class:`TabularBenchmark`, the protocol callers rely on;
* :mod:`harness.tabular.registry` -- ``get_table(space, path)``, ``register_table``, ``table_spaces``;
* :mod:`harness.tabular.nb201` -- NAS-Bench-201 over the shipped Parquet table;
* :mod:`harness.tabular.official` -- NAS-Bench-201 / NATS-Bench over the official files (optional
  packages, imported only when such a file is loaded).

Imports only go one way: base <- nb201 <- official <- registry <- this package.
"""
from harness.tabular.base import TabularBenchmark
from harness.tabular.registry import get_table, load_nb201, register_table, table_spaces

__all__ = ["TabularBenchmark", "get_table", "load_nb201", "register_table", "table_spaces"]
