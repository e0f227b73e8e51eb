"""Perturbation-based architecture selection (PT; Wang et al., ICLR 2021, "Rethinking Architecture
Selection in Differentiable NAS", Alg. 1 and the references ``nasbench201/projection.py`` and
``sota/cnn/projection.py``).

*Op projection*: edges are taken in a seeded random order (the reference draws a random remaining
edge per projection: the same as walking one seeded permutation). For the chosen edge every
candidate op is removed in turn -- its weight set to 0, the other weights unchanged, as
``proj_mask`` in the reference -- and the supernet's accuracy on the valid half is measured; the op
whose removal hurts most (lowest accuracy) is kept, ties to the lower op index (the reference's
strict ``<``), and the edge becomes one-hot and frozen. The measurement runs the supernet in train
mode, as the reference (``infer(..., eval=False)``): search-cell BN on batch statistics. A
Tr-Supernet's frozen prefix stays in eval mode whatever its parent's mode
(:class:`harness.transfer.splice.FrozenPrefix`). Here the valid images are not augmented, so a
measurement is deterministic (the reference's valid queue applies the training transform).

*Topology projection* (DARTS space; reference ``project_edge``): a node with more than two incoming
edges drops edges one at a time until two remain. Each round measures the supernet with each
remaining edge removed *alone* -- the edges dropped in earlier rounds of the same node stay in for
the measurement, as in the reference, which zeroes only the edge under test -- and drops the edge
whose removal keeps the accuracy highest, ties to the later edge (the reference's
``not crit < extrema``). With a deterministic measurement, as here, this keeps the two edges whose
single removal hurts most, i.e. the best pair at once; the reference re-measures every round.

Which decisions a supernet offers is its architecture state's business (the interface in
:mod:`harness.methods.oneshot.decision`): *lanes* of decisions, one decision of every lane of the current phase
per projection step. NB201: one lane, its 6 edges. DARTS (reference ``pt_project``): the normal and
the reduction cell's 14 edges in step (normal first), then their nodes 3-5. Every lane is walked in
its own seeded permutation, all drawn from one generator in lane order (NB201's single lane:
:func:`edge_order`). PT also needs ``arch.weights()`` (op weights whose rows an op decision's key
indexes) and ``forward(x, weights)`` with an explicit weights tensor.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from harness.data.augment import batches
from harness.data.datasets import Dataset, Split
from harness.methods.oneshot.decision import OP, TOPOLOGY

Measure = Callable[[torch.Tensor], float]
#: Phases of lanes ``(kind, keys in visiting order)``; see the module docstring.
Plan = list[list[tuple[str, list]]]


def edge_order(num_edges: int, seed: int) -> list[int]:
    """The order PT visits a single lane of ``num_edges`` edges in: one permutation drawn with ``seed``
    (NB201's order; :func:`projection_plan`'s first lane)."""
    return [int(e) for e in np.random.default_rng(seed).permutation(num_edges)]


def projection_plan(model: nn.Module, seed: int) -> Plan:
    """``model.arch.pt_lanes()`` with every lane's keys in a seeded random order."""
    rng = np.random.default_rng(seed)
    return [[(kind, [keys[int(i)] for i in rng.permutation(len(keys))]) for kind, keys in phase]
            for phase in model.arch.pt_lanes()]


def undecided(model: nn.Module, plan: Plan) -> bool:
    """Whether a decision of ``plan`` is still open."""
    return any(not model.arch.decided(kind, key) for phase in plan for kind, keys in phase for key in keys)


def masked_weights(model: nn.Module, row, op: "int | None" = None) -> torch.Tensor:
    """The supernet's current op weights with ``op`` of the edge at ``row`` set to 0 (the whole
    edge when ``op`` is None: the edge removed)."""
    with torch.no_grad():
        w = model.arch.weights().detach().clone()
        if op is None:
            w[row] = 0.0
        else:
            w[row][op] = 0.0
    return w


@torch.no_grad()
def supernet_accuracy(model: nn.Module, split: Split, data: Dataset, weights: "torch.Tensor | None" = None,
                      batch_size: int = 256, limit: int = 0) -> float:
    """Top-1 accuracy (%) of the supernet with op ``weights`` on ``split`` (first ``limit`` images
    when > 0), in train mode (search-cell BN on batch statistics, as PT measures)."""
    was_training = model.training
    if not was_training:  # a search keeps the supernet in train mode: no walk over its modules then
        model.train()
    if limit:
        split = Split(split.x[:limit], split.y[:limit])
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    for x, y in batches(split, batch_size, train=False, mean=data.mean, std=data.std):
        logits = model(x) if weights is None else model(x, weights)
        correct += (logits.argmax(1) == y).sum()
    if not was_training:
        model.train(False)
    return 100.0 * correct.item() / len(split)


def select_op(model: nn.Module, edge, measure: Measure) -> tuple[int, list[float]]:
    """PT's choice on the edge at row ``edge`` of the op weights: the candidate op whose removal
    gives the lowest ``measure`` (ties to the lower op index). Returns (op, the measure per op; NaN
    for ops that are not candidates)."""
    values = [float("nan")] * int(model.arch.weights().shape[-1])
    best, best_value = None, None
    for op in model.arch.candidates(OP, edge):
        values[op] = measure(masked_weights(model, edge, op))
        if best_value is None or values[op] < best_value:
            best, best_value = op, values[op]
    return int(best), values


def select_inputs(model: nn.Module, node, measure: Measure) -> tuple[list, list[list[float]]]:
    """PT's topology choice on ``node`` (see the module docstring): the rows of the two incoming
    edges kept, and per round the measure with each remaining edge removed."""
    rows = list(model.arch.candidates(TOPOLOGY, node))
    rounds = []
    while len(rows) > 2:
        values = [measure(masked_weights(model, row)) for row in rows]
        drop = max(range(len(rows)), key=lambda k: (values[k], k))  # highest; ties: the later edge
        rounds.append(values)
        rows.pop(drop)
    return rows, rounds


def project_next(model: nn.Module, order: list, measure: Measure, kind: str = OP) -> "dict | None":
    """Take the first open decision of ``order`` (keys of ``kind``); returns what was chosen
    (None: all decided)."""
    arch = model.arch
    key = next((k for k in order if not arch.decided(kind, k)), None)
    if key is None:
        return None
    if kind == OP:
        op, values = select_op(model, key, measure)
        arch.keep(kind, key, [op])
        return {**arch.describe(kind, key), "op": op, "accuracy_without_op": values}
    edges = [arch.describe(OP, row)["edge"] for row in arch.candidates(kind, key)]
    kept, rounds = select_inputs(model, key, measure)
    arch.keep(kind, key, kept)
    return {**arch.describe(kind, key), "edges": edges, "kept": [arch.describe(OP, row)["edge"] for row in kept],
            "accuracy_without_edge": rounds}


def project_step(model: nn.Module, plan: Plan, measure: Measure) -> list[tuple[dict, float]]:
    """One projection step: the next open decision of every lane of the first phase that has one,
    in lane order. Returns (record, seconds) per decision taken (none: all decided)."""
    for phase in plan:
        taken = []
        for kind, order in phase:
            t0 = time.perf_counter()
            chosen = project_next(model, order, measure, kind)
            if chosen is not None:
                taken.append((chosen, time.perf_counter() - t0))
        if taken:
            return taken
    return []
