"""A toy proxy family: the smallest complete :class:`harness.proxies.ProxyFamily`, to copy from.

``toy:<op>`` scores an NB201 candidate by how many of its cell's six edges hold the operation
``op`` (e.g. ``toy:nor_conv_3x3``: more 3x3 convolutions, a crude stand-in for capacity); its
ground truth is the NB201 table's. It scores every architecture of the table at once
(``whole_table``), so a rank benchmark ranks it like a table proxy. Register it with
``register_proxy_family(TOY)``; definitions, rank and search runs need nothing else.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness import HarnessError
from harness.proxies import GroundTruth, ProxyContext, ProxyFamily, Score
from harness.spaces import SearchSpace, get_space

PREFIX = "toy:"


def check_op(name: str) -> str:
    """``toy:nor_conv_3x3`` -> ``nor_conv_3x3``; an operation NB201 does not have is an error."""
    op, ops = name[len(PREFIX):], get_space("nb201").ops
    if op not in ops:
        raise HarnessError(f"toy proxy {name!r}: unknown operation (known: {', '.join(ops)})")
    return op


class ToyProxy:
    def __init__(self, name: str, space: SearchSpace, dataset: str, table_path: "str | None" = None):
        self.name, self.space, self.op = name, space, check_op(name)
        self._truth = GroundTruth(space, dataset, table_path)

    def score_of(self, arch: Any) -> float:
        return float(self.space.canonical(arch).count(self.op))

    def values(self) -> np.ndarray:
        """The proxy for every architecture of the table, by benchmark index (rank benchmarks)."""
        return np.array([self.score_of(i) for i in range(self.space.num_archs)])

    def __call__(self, arch: Any) -> Score:
        t0 = time.perf_counter()
        value = self.score_of(arch)
        return Score(value, self._truth(arch), time.perf_counter() - t0, None, "toy")


def make_toy(name: str, ctx: ProxyContext) -> ToyProxy:
    return ToyProxy(name, ctx.space, ctx.dataset, ctx.table)


TOY = ProxyFamily("toy", f"{PREFIX}<op>", make_toy, prefix=PREFIX, check=check_op, whole_table=True, torch_free=True,
                  space=lambda name: "nb201")
