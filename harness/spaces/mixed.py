"""What every supernet shares: the DARTS mixed op's sum (Liu et al., ICLR 2019, Eq. 2) and the
names of the architecture-selection decisions DARTS+PT takes on a supernet's ``arch`` (Wang et al.,
ICLR 2021, Alg. 1 and the reference ``sota/cnn/projection.py``).

A supernet's architecture state offers PT its decisions as *lanes*: ``arch.pt_lanes()`` lists
phases, each a list of lanes ``(kind, keys)`` taken in step (one decision of every lane per
projection step), where ``kind`` is :data:`OP` (``key`` is an edge's row index into
``arch.weights()``: keep one op) or :data:`TOPOLOGY` (``key`` names a node: keep two of its
incoming edges). ``arch.decided(kind, key)``, ``arch.candidates(kind, key)`` (op ids, or the row
indices of the incoming edges still present), ``arch.keep(kind, key, kept)`` and
``arch.describe(kind, key)`` (how a record names the decision) complete the interface.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: The two kinds of PT decision: which op an edge keeps; which two incoming edges a node keeps.
OP, TOPOLOGY = "op", "topology"


def weighted_sum(ops: Sequence[nn.Module], x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[k] * op_k(x), where ``ops`` are the candidate ops after the zero op (op index 0).

    The zero op is left out: the references add ``w[0] * (x * 0)``, a tensor of zeros, which
    changes no finite value, and its gradient with respect to ``w[0]`` is 0 either way.

    Without autograd (DARTS+PT's accuracy measurements) every op whose weight is exactly 0 is left
    out the same way -- after projections most are -- and an edge whose weights are all 0 (a
    removed edge) runs only its first op, for the output's shape. The sum is unchanged; those ops'
    BN running statistics do not move, which nothing reads: the supernet is searched and measured
    in train mode (batch statistics). With autograd every op runs, as in the references: an op of
    weight 0 still gets a zero gradient, so weight decay and momentum move its parameters."""
    if torch.is_grad_enabled():
        terms = range(len(ops))
    else:
        values = w.tolist()  # one device sync per edge, not one per op
        terms = [k for k in range(len(ops)) if values[k + 1] != 0] or [0]
    out = None
    for k in terms:
        term = ops[k](x) * w[k + 1]
        out = term if out is None else out + term
    return out
