"""Parameter and FLOP counts, the way NAS-Bench-201 reports them.

FLOPs are multiply-adds per image of ``Conv2d`` and ``Linear`` layers, biases included
(one add per output element), pooling, BN and activations not counted -- the convention
behind the benchmark's ``flops`` column (e.g. 15.64737 M for architecture 0 on CIFAR-10).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from harness import HarnessError


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    params: Iterable[nn.Parameter] = model.parameters()  # nn.Module.parameters() de-duplicates
    return sum(p.numel() for p in params if p.requires_grad or not trainable_only)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad``: what an optimizer gets (never a Tr-Net's frozen prefix)."""
    return [p for p in model.parameters() if p.requires_grad]


def _conv_flops(m: nn.Conv2d, out: torch.Tensor) -> int:
    per_position = m.kernel_size[0] * m.kernel_size[1] * m.in_channels * m.out_channels // m.groups
    positions = out.shape[2] * out.shape[3]
    bias = m.out_channels * positions if m.bias is not None else 0
    return per_position * positions + bias


def _linear_flops(m: nn.Linear, out: torch.Tensor) -> int:
    rows = out.numel() // m.out_features  # 1 for one image with a flat feature vector
    return rows * (m.in_features * m.out_features + (m.out_features if m.bias is not None else 0))


def count_flops(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32), **forward_kwargs) -> int:
    """Multiply-adds for one image of shape ``input_size`` (C, H, W), counted by forward hooks.

    Runs one eval-mode forward under ``torch.no_grad()`` (BN statistics are not touched) and
    restores the model's train/eval mode afterwards.
    """
    if len(input_size) != 3 or min(input_size) < 1:
        raise HarnessError(f"input_size {input_size!r}: expected (channels, height, width), all >= 1")
    total = [0]

    def hook(module, _inputs, output):
        if isinstance(module, nn.Conv2d):
            total[0] += _conv_flops(module, output)
        else:
            total[0] += _linear_flops(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device), **forward_kwargs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]
