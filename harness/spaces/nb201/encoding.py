"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020) and conversions between its encodings.

A cell has 4 nodes; node ``j`` sums one operation applied to every earlier node, so there are
6 edges with 5 operations each: 5**6 = 15,625 architectures. Encodings handled here:

* NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges in *string order*:
  0->1, 0->2, 1->2, 0->3, 1->3, 2->3);
* the benchmark index 0..15624 (the order of the official benchmark file; it is not an
  enumeration, so it comes from a shipped table ``index.npy``);
* a 6-tuple of op names in string order (``ops``);
* NASLib op indices: edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) (nodes counted from 1) and op
  order ``skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3``;
* an integer ``code`` = sum(op_id[k] * 5**k) over string-order edges with NB201's op order
  ``OPS``, used for vectorised look-ups.

Every function raises :class:`harness.HarnessError` naming the bad input.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Iterable, Sequence, Union

import numpy as np

from harness import HarnessError

#: The datasets NB201's architectures were trained on (its tabular benchmark's).
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")
#: NB201's own op order (``SearchSpaceNames['nas-bench-201']``); op ids below refer to it.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: NASLib's op order for this space.
NASLIB_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: Edges in string order as (from_node, to_node), nodes 0..3.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: NASLib's edge order as positions into ``EDGES``: (1,2),(1,3),(1,4),(2,3),(2,4),(3,4).
NASLIB_EDGE_ORDER: tuple[int, ...] = (0, 1, 3, 2, 4, 5)
NUM_EDGES = 6
NUM_OPS = 5
NUM_ARCHS = NUM_OPS**NUM_EDGES

Arch = Union[str, int, Sequence[str], Sequence[int]]

#: The all-``nor_conv_3x3`` cell: the largest NB201 network, used for memory and speed figures.
ALL_CONV3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"

_OP_ID = {op: k for k, op in enumerate(OPS)}
_NASLIB_TO_OP_ID = np.array([_OP_ID[op] for op in NASLIB_OPS])
_OP_ID_TO_NASLIB = np.argsort(_NASLIB_TO_OP_ID)
_POW = NUM_OPS ** np.arange(NUM_EDGES)
_NODE_RE = re.compile(r"^([a-z0-9_]+)~(\d+)$")


def parse(arch_str: str) -> tuple[str, ...]:
    """NB201 string -> 6 op names in string order."""
    if not isinstance(arch_str, str):
        raise HarnessError(f"arch {arch_str!r}: expected an NB201 string, got {type(arch_str).__name__}")
    s = arch_str.strip()
    nodes = s.split("+")
    if len(nodes) != 3:
        raise HarnessError(f"arch {arch_str!r}: expected 3 nodes separated by '+', found {len(nodes)}")
    ops: list[str] = []
    for node, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
            raise HarnessError(f"arch {arch_str!r}: node {node} {part!r} must look like |op~i|...|")
        edges = part[1:-1].split("|")
        if len(edges) != node:
            raise HarnessError(f"arch {arch_str!r}: node {node} must have {node} incoming edge(s), found {len(edges)}")
        for want_src, edge in enumerate(edges):
            m = _NODE_RE.match(edge)
            if not m:
                raise HarnessError(f"arch {arch_str!r}: edge {edge!r} must look like op~i")
            op, src = m.group(1), int(m.group(2))
            if op not in _OP_ID:
                raise HarnessError(f"arch {arch_str!r}: unknown op {op!r} (known: {', '.join(OPS)})")
            if src != want_src:
                raise HarnessError(
                    f"arch {arch_str!r}: edge {edge!r} on node {node} must come from node {want_src} "
                    f"(edges are listed ~0..~{node - 1} in order)")
            ops.append(op)
    return tuple(ops)


def to_str(ops: Sequence[str]) -> str:
    """6 op names (string order) -> NB201 string."""
    ops = _check_ops(ops)
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def to_naslib(ops: Sequence[str]) -> tuple[int, ...]:
    """6 op names (string order) -> NASLib op indices (NASLib edge and op order)."""
    ops = _check_ops(ops)
    return tuple(int(_OP_ID_TO_NASLIB[_OP_ID[ops[e]]]) for e in NASLIB_EDGE_ORDER)


def from_naslib(op_indices: Sequence[int]) -> tuple[str, ...]:
    """NASLib op indices -> 6 op names in string order."""
    idx = list(op_indices)
    if len(idx) != NUM_EDGES or not all(isinstance(i, (int, np.integer)) and 0 <= i < NUM_OPS for i in idx):
        raise HarnessError(f"NASLib op indices {op_indices!r}: expected 6 integers in 0..4")
    ops = [""] * NUM_EDGES
    for naslib_pos, edge in enumerate(NASLIB_EDGE_ORDER):
        ops[edge] = NASLIB_OPS[idx[naslib_pos]]
    return tuple(ops)


def to_code(ops: Sequence[str]) -> int:
    ops = _check_ops(ops)
    return int(sum(_OP_ID[op] * int(p) for op, p in zip(ops, _POW)))


def from_code(code: int) -> tuple[str, ...]:
    return tuple(OPS[(int(code) // int(p)) % NUM_OPS] for p in _POW)


@lru_cache(maxsize=1)
def _index_tables() -> tuple[np.ndarray, np.ndarray]:
    """(index -> code, code -> index), from the shipped benchmark order."""
    with resources.files("harness.spaces.nb201").joinpath("index.npy").open("rb") as f:
        index_to_code = np.load(f, allow_pickle=False).astype(np.int64)
    code_to_index = np.empty(NUM_ARCHS, dtype=np.int64)
    code_to_index[index_to_code] = np.arange(NUM_ARCHS)
    return index_to_code, code_to_index


@lru_cache(maxsize=1)
def _str_to_index() -> dict[str, int]:
    """Canonical NB201 string -> index: a dict hit is ~50x faster than parsing."""
    return {to_str(from_code(code)): i for i, code in enumerate(_index_tables()[0])}


def index_of(arch: Arch) -> int:
    """Any encoding -> benchmark index."""
    if isinstance(arch, str) and arch in _str_to_index():
        return _str_to_index()[arch]
    return int(_index_tables()[1][to_code(to_ops(arch))])


def from_index(index: int) -> tuple[str, ...]:
    _check_index(index)
    return from_code(_index_tables()[0][int(index)])


def to_ops(arch: Arch) -> tuple[str, ...]:
    """Any encoding -> 6 op names in string order.

    A ``str`` is an NB201 string, an ``int`` a benchmark index, a sequence of 6 strings op names
    in string order, a sequence of 6 ints NASLib op indices.
    """
    if isinstance(arch, str):
        return parse(arch)
    if isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
        return from_index(int(arch))
    if isinstance(arch, (tuple, list, np.ndarray)):
        items = list(arch)
        if items and all(isinstance(x, str) for x in items):
            return _check_ops(items)
        if items and all(isinstance(x, (int, np.integer)) for x in items):
            return from_naslib(items)
    raise HarnessError(f"arch {arch!r}: not an NB201 string, index, 6 op names or 6 NASLib op indices")


def indices_of(archs: Iterable[Arch]) -> np.ndarray:
    """Vectorised: many archs (any encoding, or an int array of indices) -> index array."""
    if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu":
        bad = (archs < 0) | (archs >= NUM_ARCHS)
        if bad.any():
            raise HarnessError(f"arch index {int(archs[bad][0])} out of range 0..{NUM_ARCHS - 1}")
        return archs.astype(np.int64)
    code_to_index = _index_tables()[1]
    out = []
    for a in archs:
        if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
            _check_index(int(a))
            out.append(int(a))
        elif isinstance(a, str):
            out.append(index_of(a))
        else:
            out.append(int(code_to_index[to_code(to_ops(a))]))
    return np.asarray(out, dtype=np.int64)


def all_ops_ids() -> np.ndarray:
    """(15625, 6) int array of op ids (``OPS`` order, string-order edges), row = benchmark index."""
    codes = _index_tables()[0]
    return (codes[:, None] // _POW[None, :]) % NUM_OPS


def random_ops(rng: np.random.Generator) -> tuple[str, ...]:
    return tuple(OPS[i] for i in rng.integers(0, NUM_OPS, size=NUM_EDGES))


def mutate(ops: Sequence[str], rng: np.random.Generator, mode: str = "nb201") -> tuple[str, ...]:
    """One mutation: change one edge to a different op.

    ``mode="nb201"`` follows the NB201 reference REA: pick a random target node (1..3), then a
    random incoming edge of it, then a different op -- so edges into node 1 are picked more often.
    ``mode="uniform_edge"`` follows NASLib: pick one of the 6 edges uniformly.
    """
    ops = list(_check_ops(ops))
    if mode == "nb201":
        node = int(rng.integers(1, 4))
        incoming = [e for e, (_, dst) in enumerate(EDGES) if dst == node]
        edge = incoming[int(rng.integers(0, len(incoming)))]
    elif mode == "uniform_edge":
        edge = int(rng.integers(0, NUM_EDGES))
    else:
        raise HarnessError(f"mutation mode {mode!r}: expected 'nb201' or 'uniform_edge'")
    choices = [op for op in OPS if op != ops[edge]]
    ops[edge] = choices[int(rng.integers(0, len(choices)))]
    return tuple(ops)


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    ops = tuple(ops)
    if len(ops) != NUM_EDGES:
        raise HarnessError(f"arch {ops!r}: expected {NUM_EDGES} op names, got {len(ops)}")
    for op in ops:
        if op not in _OP_ID:
            raise HarnessError(f"arch {ops!r}: unknown op {op!r} (known: {', '.join(OPS)})")
    return ops


def _check_index(index: int) -> None:
    if not 0 <= index < NUM_ARCHS:
        raise HarnessError(f"arch index {index} out of range 0..{NUM_ARCHS - 1}")
