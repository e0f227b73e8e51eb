"""The decisions DARTS+PT takes on a supernet (Wang et al., ICLR 2021, Alg. 1 and the reference
``sota/cnn/projection.py``): the interface a supernet's architecture state (``supernet.arch``)
offers :mod:`harness.methods.oneshot.pt`.

The state offers PT its decisions as *lanes*: ``arch.pt_lanes()`` lists phases, each a list of
lanes ``(kind, keys)`` taken in step (one decision of every lane per projection step), where
``kind`` is :data:`OP` (``key`` is an edge's row index into ``arch.weights()``: keep one op) or
:data:`TOPOLOGY` (``key`` names a node: keep two of its incoming edges). ``arch.decided(kind, key)``,
``arch.candidates(kind, key)`` (op ids, or the row indices of the incoming edges still present),
``arch.keep(kind, key, kept)`` and ``arch.describe(kind, key)`` (how a record names the decision)
complete the interface (:class:`Decisions`).

The supernets live in ``harness.spaces``, below the methods, so they implement the interface by
its shape and name the kinds by their values, ``"op"`` and ``"topology"``, without importing this
module; ``tests/test_methods_oneshot.py`` checks every space's supernet against it.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

#: The two kinds of PT decision: which op an edge keeps; which two incoming edges a node keeps.
OP, TOPOLOGY = "op", "topology"
KINDS = (OP, TOPOLOGY)


@runtime_checkable
class Decisions(Protocol):
    """A supernet's architecture state as PT sees it (see the module docstring)."""

    def weights(self) -> torch.Tensor:
        """The op weights, one row per edge (an :data:`OP` decision's key indexes the rows)."""

    def pt_lanes(self) -> list[list[tuple[str, list]]]:
        """Phases of lanes ``(kind, keys)``, taken in step."""

    def decided(self, kind: str, key: Any) -> bool: ...

    def candidates(self, kind: str, key: Any) -> list: ...

    def keep(self, kind: str, key: Any, kept: list) -> None: ...

    def describe(self, kind: str, key: Any) -> dict: ...
