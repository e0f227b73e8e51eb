"""Operations of the DARTS space, layer for layer the DARTS reference (Liu et al., ICLR 2019;
``cnn/operations.py`` and ``cnn/model.py`` of github.com/quark0/darts).

* ``sep_conv_kxk``: (ReLU -> depthwise kxk -> pointwise 1x1 -> BN) applied twice, the stride on
  the first depthwise conv only;
* ``dil_conv_kxk``: ReLU -> depthwise kxk dilation 2 -> pointwise 1x1 -> BN;
* ``max_pool_3x3`` / ``avg_pool_3x3`` (``count_include_pad=False``); inside the supernet's mixed
  op a BN without affine follows them (reference ``model_search.MixedOp``);
* ``skip_connect``: identity, or :class:`FactorizedReduce` at stride 2;
* ``none``: the zero op (only in the supernet; genotypes never contain it).

Every conv is bias-free; ``affine`` is the BN flag (True in evaluation networks, False in the
supernet, as in the reference).
"""
from __future__ import annotations

import torch
from torch import nn

from harness import HarnessError

#: The DARTS primitives in the reference order (``genotypes.PRIMITIVES``); alpha columns follow it.
PRIMITIVES: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                               "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: What a genotype may use: every primitive but ``none``.
GENOTYPE_OPS: tuple[str, ...] = PRIMITIVES[1:]


class ReLUConvBN(nn.Sequential):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


class DilConv(nn.Sequential):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in,
                                   bias=False),
                         nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


class SepConv(nn.Sequential):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_in, kernel_size, stride, padding, groups=C_in, bias=False),
                         nn.Conv2d(C_in, C_in, 1, padding=0, bias=False),
                         nn.BatchNorm2d(C_in, affine=affine),
                         nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_in, kernel_size, 1, padding, groups=C_in, bias=False),
                         nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


class FactorizedReduce(nn.Module):
    """Stride-2 1x1 convs on the even and the odd pixel grid, concatenated, then BN (the
    reference's reduction for ``skip_connect`` and for a cell input after a reduction cell)."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise HarnessError(f"FactorizedReduce: output channels {C_out} must be even")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):
    """The ``none`` op: zeros of the output's shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0) if self.stride == 1 else x[:, :, ::self.stride, ::self.stride].mul(0.0)


def make_op(name: str, C: int, stride: int, affine: bool = True) -> nn.Module:
    """One DARTS op on ``C`` channels (the reference ``OPS[name](C, stride, affine)``)."""
    if name == "none":
        return Zero(stride)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(C, C, k, stride, k // 2, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(C, C, k, stride, k - 1, 2, affine)
    raise HarnessError(f"op {name!r}: unknown (known: {', '.join(PRIMITIVES)})")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Drop the whole path for a random subset of the batch, scaling the rest by 1/keep (the
    reference ``utils.drop_path``, out of place)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * (mask / keep)


class AuxiliaryHeadCIFAR(nn.Module):
    """The reference auxiliary classifier at 2/3 depth (assumes an 8x8 input). Its first ReLU is
    out of place here: the reference's in-place one rewrites the cell output the next cells read
    (harmless there only because they start with a ReLU too)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def preprocess(C_in: int, C_out: int, reduce: bool, affine: bool) -> nn.Module:
    """A cell input's preprocessing: FactorizedReduce when it comes at twice the cell's
    resolution (the cell before reduced), else ReLU-Conv1x1-BN (reference ``Cell.__init__``)."""
    return FactorizedReduce(C_in, C_out, affine) if reduce else ReLUConvBN(C_in, C_out, 1, 1, 0, affine)
