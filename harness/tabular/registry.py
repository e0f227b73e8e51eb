"""Tabular benchmarks by search-space name: ``get_table("nb201")``. A new table registers one loader here.

A loader takes a path (or ``None`` for the table shipped with the harness, which the loader
caches) and returns a :class:`harness.tabular.base.TabularBenchmark`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness import HarnessError
from harness.tabular import official
from harness.tabular.base import TabularBenchmark
from harness.tabular.nb201 import NB201Table

Loader = Callable[["str | Path | None"], TabularBenchmark]
_LOADERS: dict[str, Loader] = {}


def register_table(space: str, loader: Loader) -> None:
    """Make ``loader(path)`` available as ``get_table(space, path)``; re-registering replaces it."""
    _LOADERS[space] = loader


def get_table(space: str = "nb201", path: "str | Path | None" = None) -> TabularBenchmark:
    """The tabular benchmark of search space ``space``: the shipped one (cached) or one read from ``path``."""
    if space not in _LOADERS:
        raise HarnessError(f"tabular benchmark {space!r}: unknown (known: {', '.join(table_spaces())})")
    return _LOADERS[space](path)


def table_spaces() -> tuple[str, ...]:
    return tuple(_LOADERS)


def load_nb201(path: "str | Path | None" = None) -> NB201Table:
    """NB201: the shipped table (``None``), a Parquet table of the same layout, or an official file
    (NAS-Bench-201 ``.pth`` / NATS-Bench ``NATS-tss-*``, see :mod:`harness.tabular.official`)."""
    if path is None or Path(path).suffix == ".parquet":
        return NB201Table.load(path)
    return official.load(path)


register_table("nb201", load_nb201)
