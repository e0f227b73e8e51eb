"""Building blocks of NAS-Bench-201 networks, as in the NB201 reference code (``models/cell_operations.py``).

Every op keeps the reference's layer order and options so parameter counts, FLOPs and
behaviour match the networks the benchmark trained:

* ``nor_conv_kxk``: ReLU -> Conv(no bias) -> BN;
* ``avg_pool_3x3``: AvgPool2d(3, stride 1, padding 1, ``count_include_pad=False``);
* ``skip_connect``: identity (inside a cell input and output channels are equal, stride 1);
* ``none``: the zero op. Cells never build it: they drop its edge (see ``nb201.InferCell``).

The reduction block between stages is the reference ``ResNetBasicblock``.
"""
from __future__ import annotations

from torch import nn

from harness import HarnessError
from harness.spaces.nb201.encoding import OPS


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(bias=False) -> BatchNorm2d, the reference ``ReLUConvBN``."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )


class ResNetBasicblock(nn.Module):
    """The NB201 reduction block: stride-2 residual block, pre-activation, no ReLU after the add.

    branch = ReLUConvBN 3x3 stride 2 -> ReLUConvBN 3x3; shortcut = AvgPool2d(2) -> Conv1x1
    (no bias, no BN); out = shortcut + branch.
    """

    def __init__(self, C_in: int, C_out: int, stride: int = 2, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        if stride != 2:
            raise HarnessError(f"reduction block stride {stride}: NB201 only uses stride 2")
        self.in_dim, self.out_dim, self.stride = C_in, C_out, stride
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, affine, track_running_stats)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine, track_running_stats)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(C_in, C_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class ClassifierHead(nn.Module):
    """The NB201 head (reference ``TinyNetwork``): BN + ReLU, global average pool, Linear."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(C), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C, num_classes)

    def forward(self, feature):
        return self.classifier(self.global_pooling(self.lastact(feature)).flatten(1))


def make_op(name: str, C: int, affine: bool = True, track_running_stats: bool = True) -> nn.Module:
    """One cell op on ``C`` channels at stride 1 (the only case inside NB201 cells).

    ``none`` has no module: callers skip its edge. Asking for it here is a bug, not user input.
    """
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, 1, 1, affine, track_running_stats)
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, 1, 0, affine, track_running_stats)
    if name == "avg_pool_3x3":
        # The reference POOLING op adds a 1x1 ReLUConvBN only when C_in != C_out: never in a cell.
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "skip_connect":
        # The reference uses FactorizedReduce only for stride 2 or a channel change: never in a cell.
        return nn.Identity()
    if name == "none":
        raise ValueError("the 'none' op has no module; skip its edge instead")
    raise HarnessError(f"op {name!r}: unknown (known: {', '.join(OPS)})")
