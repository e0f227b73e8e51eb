"""Perturbation-based architecture selection (PT; Wang et al., ICLR 2021, "Rethinking Architecture
Selection in Differentiable NAS", Alg. 1 and the reference ``nasbench201/projection.py``).

Edges are taken in a seeded random order (the reference draws a random remaining edge per
projection: the same as walking one seeded permutation). For the chosen edge every op is removed
in turn -- its weight set to 0, the other weights unchanged, as ``proj_mask`` in the reference --
and the supernet's accuracy on the valid half is measured; the op whose removal hurts most (lowest
accuracy) is kept, ties to the lower op index (the reference's strict ``<``), and the edge becomes
one-hot and frozen (``project``). The measurement runs the supernet in train mode, as the reference
(``infer(..., eval=False)``): search-cell BN on batch statistics. A Tr-Supernet's frozen prefix stays
in eval mode whatever its parent's mode (:class:`harness.transfer.splice.FrozenPrefix`). Here the
valid images are not augmented, so a measurement is deterministic (the reference's valid queue
applies the training transform).

The architecture-state interface PT needs from a supernet (NB201's and every Tr-Supernet's):
``arch.weights()`` -> (E, K) op weights, ``arch.projected`` (E,) -1 for undecided edges,
``arch.mask`` (E, K) ops still candidates, ``project(edge, op)``, ``genotype()``, and
``forward(x, weights)`` with an explicit (E, K) tensor.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from harness.data.augment import batches
from harness.data.datasets import Dataset, Split

Measure = Callable[[torch.Tensor], float]


def edge_order(num_edges: int, seed: int) -> list[int]:
    """The order PT visits the edges in: one permutation drawn with ``seed``."""
    return [int(e) for e in np.random.default_rng(seed).permutation(num_edges)]


def undecided_edges(model: nn.Module) -> list[int]:
    return [int(e) for e in torch.nonzero(model.arch.projected < 0).flatten()]


def masked_weights(model: nn.Module, edge: int, op: int) -> torch.Tensor:
    """The supernet's current op weights with ``op`` on ``edge`` set to 0."""
    with torch.no_grad():
        w = model.arch.weights().detach().clone()
        w[edge, op] = 0.0
    return w


@torch.no_grad()
def supernet_accuracy(model: nn.Module, split: Split, data: Dataset, weights: "torch.Tensor | None" = None,
                      batch_size: int = 256, limit: int = 0) -> float:
    """Top-1 accuracy (%) of the supernet with op ``weights`` on ``split`` (first ``limit`` images
    when > 0), in train mode (search-cell BN on batch statistics, as PT measures)."""
    was_training = model.training
    model.train()
    if limit:
        split = Split(split.x[:limit], split.y[:limit])
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    for x, y in batches(split, batch_size, train=False, mean=data.mean, std=data.std):
        logits = model(x) if weights is None else model(x, weights)
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return 100.0 * correct.item() / len(split)


def select_op(model: nn.Module, edge: int, measure: Measure) -> tuple[int, list[float]]:
    """PT's choice on ``edge``: the candidate op whose removal gives the lowest ``measure`` (ties to
    the lower op index). Returns (op, the measure per op; NaN for ops no longer candidates)."""
    mask = model.arch.mask[edge]
    values = [float("nan")] * int(mask.numel())
    best, best_value = None, None
    for op in range(int(mask.numel())):
        if not bool(mask[op]):
            continue
        values[op] = measure(masked_weights(model, edge, op))
        if best_value is None or values[op] < best_value:
            best, best_value = op, values[op]
    return int(best), values


def project_next(model: nn.Module, order: list[int], measure: Measure) -> "dict | None":
    """Project the first undecided edge of ``order``; returns what was chosen (None: all decided)."""
    undecided = set(undecided_edges(model))
    edge = next((e for e in order if e in undecided), None)
    if edge is None:
        return None
    op, values = select_op(model, edge, measure)
    model.project(edge, op)
    return {"edge": edge, "op": op, "accuracy_without_op": values}
