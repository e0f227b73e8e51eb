"""The DARTS space (Liu et al., ICLR 2019) behind the :class:`harness.spaces.base.SearchSpace` protocol.

Canonical encoding: a :class:`harness.spaces.darts.genotype.Genotype` (tuples, hashable); text:
the DARTS/NASLib ``Genotype(...)`` string. As Optuna parameters, for each cell kind (normal,
reduce) and node k = 2..5: ``<cell>_node<k>_inputs``, the ordered pair of its two different
input nodes as text ``"a,b"`` (a, b in 0..k-1), and ``<cell>_node<k>_op1`` / ``_op2``, the ops
on them (7 choices, no ``none``) -- 48 parameters; one complete assignment is one genotype.
The pair is ordered as the genotype lists it (the network's module order), so (a, b) and (b, a)
are two encodings of the same cell function.

``random`` draws every node's ordered input pair and its two ops uniformly; ``mutate`` changes
one op or one input (to a node the other input does not use), as the DARTS-space REA and local
search baselines of NASLib do (modes ``op_or_input`` (each with probability 1/2), ``op``,
``input``).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from optuna.distributions import CategoricalDistribution

from harness import HarnessError
from harness.spaces.darts import genotype as gt
from harness.spaces.darts.network import NetworkCIFAR
from harness.spaces.darts.ops import GENOTYPE_OPS
from harness.spaces.darts.supernet import DartsSupernet

NODES = tuple(range(2, 2 + gt.STEPS))


def _pairs(node: int) -> tuple[str, ...]:
    return tuple(f"{a},{b}" for a in range(node) for b in range(node) if a != b)


PARAM_NAMES: tuple[str, ...] = tuple(f"{cell}_node{k}_{what}" for cell in gt.CELLS for k in NODES
                                     for what in ("inputs", "op1", "op2"))


class DartsSpace:
    """DARTS: normal + reduction cell, 4 nodes of 2 (op, input) pairs each, 7 ops.

    Networks are the reference ``NetworkCIFAR`` (defaults C=36, 20 layers, auxiliary head: the
    paper's evaluation network); the supernet is the reference search network (C=16, 8 cells).
    """

    name = "darts"
    mutations = ("op_or_input", "op", "input")
    #: CIFAR-10 is the DARTS paper's; the others as for NB201 (no table: real training only).
    datasets = ("cifar10", "cifar100", "ImageNet16-120")
    ops = GENOTYPE_OPS

    def parse(self, text: str) -> gt.Genotype:
        return gt.parse(text)

    def format(self, arch) -> str:
        return gt.to_str(self.canonical(arch))

    def canonical(self, arch: Any) -> gt.Genotype:
        return gt.to_genotype(arch)

    def distributions(self) -> dict[str, CategoricalDistribution]:
        out = {}
        for cell in gt.CELLS:
            for k in NODES:
                out[f"{cell}_node{k}_inputs"] = CategoricalDistribution(_pairs(k))
                out[f"{cell}_node{k}_op1"] = CategoricalDistribution(GENOTYPE_OPS)
                out[f"{cell}_node{k}_op2"] = CategoricalDistribution(GENOTYPE_OPS)
        return out

    def to_params(self, arch) -> dict[str, str]:
        g = self.canonical(arch)
        params = {}
        for cell in gt.CELLS:
            pairs = g.cell(cell)
            for k in NODES:
                (op1, a), (op2, b) = pairs[2 * (k - 2)], pairs[2 * (k - 2) + 1]
                params.update({f"{cell}_node{k}_inputs": f"{a},{b}", f"{cell}_node{k}_op1": op1,
                               f"{cell}_node{k}_op2": op2})
        return params

    def from_params(self, params: Mapping[str, Any]) -> gt.Genotype:
        missing = [name for name in PARAM_NAMES if name not in params]
        if missing:
            raise HarnessError(f"trial params: missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        cells = {}
        for cell in gt.CELLS:
            pairs = []
            for k in NODES:
                key = f"{cell}_node{k}_inputs"
                if params[key] not in _pairs(k):
                    raise HarnessError(f"trial param {key}={params[key]!r}: expected two different nodes "
                                       f"of 0..{k - 1} as 'a,b'")
                a, b = (int(v) for v in params[key].split(","))
                for slot, src in (("op1", a), ("op2", b)):
                    op = params[f"{cell}_node{k}_{slot}"]
                    if op not in GENOTYPE_OPS:
                        raise HarnessError(f"trial param {cell}_node{k}_{slot}={op!r}: unknown op "
                                           f"(known: {', '.join(GENOTYPE_OPS)})")
                    pairs.append((op, src))
            cells[cell] = pairs
        return gt.validate(cells["normal"], gt.CONCAT, cells["reduce"], gt.CONCAT)

    def random(self, rng: np.random.Generator) -> gt.Genotype:
        cells = {}
        for cell in gt.CELLS:
            pairs = []
            for k in NODES:
                a, b = rng.choice(k, size=2, replace=False)
                pairs += [(GENOTYPE_OPS[rng.integers(len(GENOTYPE_OPS))], int(a)),
                          (GENOTYPE_OPS[rng.integers(len(GENOTYPE_OPS))], int(b))]
            cells[cell] = pairs
        return gt.validate(cells["normal"], gt.CONCAT, cells["reduce"], gt.CONCAT)

    def mutate(self, arch, rng: np.random.Generator, mode: "str | None" = None) -> gt.Genotype:
        mode = mode or self.mutations[0]
        if mode not in self.mutations:
            raise HarnessError(f"mutation {mode!r}: unknown for space darts (known: {', '.join(self.mutations)})")
        g = self.canonical(arch)
        if mode == "op_or_input":
            mode = ("op", "input")[int(rng.integers(2))]
        cell = gt.CELLS[int(rng.integers(2))]
        pairs = list(g.cell(cell))
        if mode == "op":
            p = int(rng.integers(len(pairs)))
            op, src = pairs[p]
            pairs[p] = (str(rng.choice([o for o in GENOTYPE_OPS if o != op])), src)
        else:
            # Node 2 has only nodes 0 and 1 to read: its inputs cannot change. Pick among the rest.
            p = int(rng.integers(2, len(pairs)))
            op, src = pairs[p]
            other = pairs[p ^ 1][1]
            node = 2 + p // 2
            pairs[p] = (op, int(rng.choice([s for s in range(node) if s not in (src, other)])))
        cells = {"normal": g.normal, "reduce": g.reduce, cell: pairs}
        return gt.validate(cells["normal"], gt.CONCAT, cells["reduce"], gt.CONCAT)

    def build_network(self, arch, num_classes: int = 10, C: int = 36, layers: int = 20, auxiliary: bool = True,
                      drop_path_prob: float = 0.0) -> NetworkCIFAR:
        return NetworkCIFAR(self.canonical(arch), num_classes=num_classes, C=C, layers=layers, auxiliary=auxiliary,
                            drop_path_prob=drop_path_prob)

    def build_supernet(self, num_classes: int = 10, C: int = 16, layers: int = 8) -> DartsSupernet:
        return DartsSupernet(num_classes=num_classes, C=C, layers=layers)
