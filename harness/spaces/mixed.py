"""What every supernet shares: the DARTS mixed op's sum (Liu et al., ICLR 2019, Eq. 2).

The decisions DARTS+PT takes on a supernet's architecture state, which the supernets implement,
are the method's interface: :mod:`harness.methods.oneshot.decision`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


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
