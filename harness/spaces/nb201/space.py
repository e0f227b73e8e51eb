"""The NAS-Bench-201 cell space behind the :class:`harness.spaces.base.SearchSpace` protocol.

Canonical encoding: the 6-tuple of op names in NB201 string order (edges 0->1, 0->2, 1->2,
0->3, 1->3, 2->3; Dong & Yang, ICLR 2020). As Optuna parameters: one categorical ``edge_k`` per
edge over NB201's op order, so a complete assignment is exactly one of the 5**6 = 15,625 cells.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from optuna.distributions import CategoricalDistribution

from harness import HarnessError
from harness.spaces.nb201 import encoding
from harness.spaces.nb201.network import NB201Network
from harness.spaces.nb201.supernet import NB201Supernet

PARAM_NAMES: tuple[str, ...] = tuple(f"edge_{k}" for k in range(encoding.NUM_EDGES))


class NB201Space:
    """NB201: 4-node cell, 6 edges, 5 ops; networks are the benchmark's ``TinyNetwork`` (C=16, N=5)."""

    name = "nb201"
    mutations = ("nb201", "uniform_edge")
    datasets = encoding.DATASETS
    ops = encoding.OPS
    num_archs = encoding.NUM_ARCHS

    def parse(self, text: str) -> tuple[str, ...]:
        return encoding.parse(text)

    def format(self, arch) -> str:
        return encoding.to_str(self.canonical(arch))

    def canonical(self, arch: Any) -> tuple[str, ...]:
        return encoding.to_ops(arch)

    def distributions(self) -> dict[str, CategoricalDistribution]:
        return {name: CategoricalDistribution(encoding.OPS) for name in PARAM_NAMES}

    def to_params(self, arch) -> dict[str, str]:
        return dict(zip(PARAM_NAMES, self.canonical(arch)))

    def from_params(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        missing = [name for name in PARAM_NAMES if name not in params]
        if missing:
            raise HarnessError(f"trial params {dict(params)!r}: missing {', '.join(missing)}")
        for name in PARAM_NAMES:
            if params[name] not in encoding.OPS:
                raise HarnessError(f"trial param {name}={params[name]!r}: unknown op (known: {', '.join(encoding.OPS)})")
        return tuple(params[name] for name in PARAM_NAMES)

    def random(self, rng: np.random.Generator) -> tuple[str, ...]:
        return encoding.random_ops(rng)

    def mutate(self, arch, rng: np.random.Generator, mode: "str | None" = None) -> tuple[str, ...]:
        return encoding.mutate(self.canonical(arch), rng, mode or self.mutations[0])

    def build_network(self, arch, num_classes: int = 10, C: int = 16, N: int = 5) -> NB201Network:
        return NB201Network(arch, num_classes=num_classes, C=C, N=N)

    def build_supernet(self, num_classes: int = 10, C: int = 16, N: int = 5, affine: bool = False,
                       track_running_stats: bool = False) -> NB201Supernet:
        return NB201Supernet(num_classes, C, N, affine, track_running_stats)

    def index_of(self, arch) -> int:
        """The benchmark index (the row of the NB201 table)."""
        return encoding.index_of(arch)
