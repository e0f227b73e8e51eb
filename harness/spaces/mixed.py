"""The DARTS mixed op's sum, shared by every supernet (Liu et al., ICLR 2019, Eq. 2)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def weighted_sum(ops: Sequence[nn.Module], x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[k] * op_k(x), where ``ops`` are the candidate ops after the zero op (op index 0).

    The zero op is left out: the references add ``w[0] * (x * 0)``, a tensor of zeros, which
    changes no finite value, and its gradient with respect to ``w[0]`` is 0 either way."""
    out = ops[0](x) * w[1]
    for k in range(1, len(ops)):
        out = out + ops[k](x) * w[k + 1]
    return out
