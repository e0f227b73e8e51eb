"""CIFAR ResNets as in the NB201 reference code (``models/CifarResNet.py``), the TR-NAS backbones.

Stem Conv3x3+BN+ReLU; three stages of post-activation basic blocks (Conv-BN-ReLU-Conv-BN, add,
ReLU); the first block of stages 2 and 3 has stride 2 and an AvgPool2d(2)+Conv1x1 shortcut (no
BN); global average pool; Linear. ResNet-32 (widths 16/32/64) is the NB201 backbone of the paper
(Appendix A.1); ResNet-20 with widths 64/128/256 is its DARTS-space backbone.

Blocks live in one flat ``blocks`` list, so TR-NAS block ``j`` (1-based) is ``blocks[j - 1]``.
"""
from __future__ import annotations

import torch
from torch import nn

from harness import HarnessError

#: name -> (depth, stage widths)
BACKBONES: dict[str, tuple[int, tuple[int, int, int]]] = {
    "resnet20": (20, (16, 32, 64)),
    "resnet32": (32, (16, 32, 64)),
    "resnet56": (56, (16, 32, 64)),
    "resnet20-wide": (20, (64, 128, 256)),
}


#: Downsampling shortcut of the first block of stages 2 and 3 -- the paper leaves it open:
#: ``avgpool_conv`` AvgPool2d(2) + Conv1x1, no BN (the NB201 reference's CifarResNet; default);
#: ``conv_bn`` strided Conv1x1 + BN (PyTorchCV's CIFAR ResNets, which the paper's appendix cites);
#: ``zero_pad`` identity subsampled by 2 and zero-padded channels (He et al. 2016, option A).
SHORTCUTS = ("avgpool_conv", "conv_bn", "zero_pad")


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: take every second pixel, pad the new channels with zeros (no parameters)."""

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        self.extra = C_out - C_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        return torch.cat([x, x.new_zeros(x.shape[0], self.extra, *x.shape[2:])], dim=1)


def _conv_bn(C_in: int, C_out: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(C_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Post-activation basic block: relu(shortcut(x) + BN(Conv(ReLU(BN(Conv(x))))))."""

    def __init__(self, C_in: int, C_out: int, stride: int, shortcut: str = "avgpool_conv"):
        super().__init__()
        self.in_dim, self.out_dim, self.stride = C_in, C_out, stride
        self.conv_a = _conv_bn(C_in, C_out, 3, stride, relu=True)
        self.conv_b = _conv_bn(C_out, C_out, 3, 1, relu=False)
        if stride == 2 and shortcut == "avgpool_conv":
            self.downsample = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2),
                                            nn.Conv2d(C_in, C_out, kernel_size=1, bias=False))
        elif stride == 2 and shortcut == "conv_bn":
            self.downsample = _conv_bn(C_in, C_out, 1, 2, relu=False)
        elif stride == 2:
            self.downsample = ZeroPadShortcut(C_in, C_out)
        elif C_in != C_out:
            self.downsample = _conv_bn(C_in, C_out, 1, 1, relu=False)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(residual + self.conv_b(self.conv_a(x)))


class CifarResNet(nn.Module):
    """ResNet-``depth`` for 32x32 inputs; ``depth = 6n + 2`` gives n blocks per stage."""

    def __init__(self, depth: int, widths: tuple[int, int, int] = (16, 32, 64), num_classes: int = 10,
                 shortcut: str = "avgpool_conv"):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise HarnessError(f"ResNet shortcut {shortcut!r}: unknown (known: {', '.join(SHORTCUTS)})")
        if depth < 8 or (depth - 2) % 6:
            raise HarnessError(f"ResNet depth {depth}: must be 6n+2 with n >= 1 (20, 32, 56, ...)")
        if len(widths) != 3 or min(widths) < 1:
            raise HarnessError(f"ResNet widths {widths!r}: expected 3 positive channel counts")
        if num_classes < 1:
            raise HarnessError(f"ResNet num_classes {num_classes}: must be >= 1")
        self.depth, self.widths, self.num_classes, self.shortcut = depth, tuple(widths), num_classes, shortcut
        per_stage = (depth - 2) // 6
        self.stem = _conv_bn(3, widths[0], 3, 1, relu=True)
        blocks, C_prev = [], widths[0]
        for stage, C in enumerate(widths):
            for k in range(per_stage):
                blocks.append(BasicBlock(C_prev, C, 2 if stage > 0 and k == 0 else 1, shortcut))
                C_prev = C
        self.blocks = nn.ModuleList(blocks)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.apply(_init_resnet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for block in self.blocks:
            feature = block(feature)
        return self.classifier(self.global_pooling(feature).flatten(1))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every block, in order (``feats[j - 1]`` is block j's)."""
        feats, feature = [], self.stem(x)
        for block in self.blocks:
            feature = block(feature)
            feats.append(feature)
        return feats


def _init_resnet(m: nn.Module) -> None:
    """The reference ``initialize_resnet``: Kaiming-normal (fan_out) convs, unit BN, small Linear."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.zeros_(m.bias)


def build_backbone(name: str, num_classes: int = 10, shortcut: str = "avgpool_conv") -> CifarResNet:
    """A freshly initialised backbone by name (see ``BACKBONES``) and downsampling ``shortcut``."""
    if name not in BACKBONES:
        raise HarnessError(f"backbone {name!r}: unknown (known: {', '.join(BACKBONES)})")
    depth, widths = BACKBONES[name]
    return CifarResNet(depth, widths, num_classes, shortcut)
