"""The TR-NAS splice: Tr-Net-i-j and Tr-Supernet-i-j (paper Sec. 3.2, Fig. 3).

Instead of training an NB201 network A = {a1..aL} we train S = {b1..bj, a(i+1)..aL}: the stem
and first ``j`` blocks of a pre-trained backbone (frozen, shared by every candidate) followed by
A without its stem and first ``i`` search cells. ``i`` counts NB201 search cells (1..3N); the
reduction blocks among the dropped cells go with them, and the first kept module is whatever
follows cell ``i`` (a reduction block when ``i`` is a multiple of N). Tr-Net-5-5 with ResNet-32
(stage 1 of each) is the paper's default; Tr-Net-10-10 its ablation.

The frozen prefix runs under ``torch.no_grad()`` and always in eval mode, so it keeps no
activations for backward -- the memory saving the paper measures -- and its BN running
statistics never move. Its modules are shared with the backbone, not copied.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from harness import HarnessError
from harness.spaces.nb201.network import NB201Network, search_cell_position
from harness.backbones.resnet import CifarResNet, build_backbone
from harness.spaces.nb201.supernet import ArchitectureState, ArchitectureWeights, NB201Supernet, run_body
from harness.spaces.nb201.encoding import Arch

Backbone = Union[CifarResNet, str]


class FrozenPrefix(nn.Module):
    """Stem + first ``j`` blocks of a backbone; frozen, no_grad, always in eval mode.

    The modules are the backbone's own (not copies), and they are frozen in place: the
    backbone's parameters get ``requires_grad=False`` too.
    """

    def __init__(self, backbone: CifarResNet, j: int):
        super().__init__()
        n_blocks = len(backbone.blocks)
        if not 1 <= j <= n_blocks - 1:
            raise HarnessError(f"j={j}: must be in 1..{n_blocks - 1} (the backbone has {n_blocks} blocks)")
        self.j = j
        self.stem = backbone.stem
        self.blocks = nn.ModuleList(backbone.blocks[:j])
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenPrefix":
        # Whatever the parent asks, stay in eval mode: BN uses (and never updates) running stats.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
        return x

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of blocks 1..j."""
        feats = []
        with torch.no_grad():
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
                feats.append(x)
        return feats


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad`` -- what the optimizer gets (never the frozen prefix)."""
    return [p for p in model.parameters() if p.requires_grad]


def _resolve_backbone(backbone: Backbone) -> CifarResNet:
    if isinstance(backbone, str):
        return build_backbone(backbone)
    if not isinstance(backbone, CifarResNet):
        raise HarnessError(f"backbone {type(backbone).__name__}: expected a CifarResNet or a backbone name")
    return backbone


def _check_i(i: int, N: int) -> int:
    L = 3 * N
    if not isinstance(i, int) or not 1 <= i <= L - 1:
        raise HarnessError(f"i={i!r}: must be in 1..{L - 1} (NB201 has {L} search cells)")
    return search_cell_position(i, N) + 1  # first kept body module


def _expected_input(cells: nn.ModuleList, start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) that body module ``start`` expects: the stem keeps the resolution and each
    reduction block before ``start`` halves it."""
    halvings = sum(1 for m in cells[:start] if getattr(m, "stride", 1) == 2)
    _, H, W = input_size
    return cells[start].in_dim, H // 2**halvings, W // 2**halvings


def _check_shapes(prefix: FrozenPrefix, cells: nn.ModuleList, start: int, i: int,
                  input_size: tuple[int, int, int]) -> None:
    param = next(prefix.parameters())
    got = tuple(prefix(torch.zeros(1, *input_size, device=param.device, dtype=param.dtype)).shape[1:])
    want = _expected_input(cells, start, input_size)
    if got != want:
        raise HarnessError(
            f"Tr-Net-{i}-{prefix.j}: backbone prefix output shape (C, H, W) = {got} does not fit the NB201 "
            f"module after cell {i}, which expects shape {want} (input {tuple(input_size)})")


class TrNet(nn.Module):
    """Tr-Net-i-j: frozen backbone prefix + NB201 body modules after search cell ``i`` + head."""

    def __init__(self, prefix: FrozenPrefix, network: NB201Network, i: int,
                 input_size: tuple[int, int, int] = (3, 32, 32)):
        super().__init__()
        start = _check_i(i, network.N)
        _check_shapes(prefix, network.cells, start, i, input_size)
        self.i, self.j, self.arch_str = i, prefix.j, network.arch_str
        self.prefix = prefix
        self.suffix_cells = nn.ModuleList(network.cells[start:])
        self.lastact, self.global_pooling, self.classifier = network.lastact, network.global_pooling, network.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.prefix(x)
        for cell in self.suffix_cells:
            feature = cell(feature)
        return self.classifier(self.global_pooling(self.lastact(feature)).flatten(1))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of prefix blocks 1..j, then of every kept NB201 body module."""
        feats = self.prefix.forward_features(x)
        feature = feats[-1]
        for cell in self.suffix_cells:
            feature = cell(feature)
            feats.append(feature)
        return feats

    def extra_repr(self) -> str:
        return f"i={self.i}, j={self.j}, arch={self.arch_str!r}"


class TrSupernet(ArchitectureState, nn.Module):
    """Tr-Supernet-i-j: frozen backbone prefix + NB201 supernet body after cell ``i`` + head.

    ``arch`` (alpha, masks, projections) is the supernet's own object, shared and trainable.
    """

    def __init__(self, prefix: FrozenPrefix, supernet: NB201Supernet, i: int,
                 input_size: tuple[int, int, int] = (3, 32, 32)):
        super().__init__()
        start = _check_i(i, supernet.N)
        _check_shapes(prefix, supernet.cells, start, i, input_size)
        self.i, self.j = i, prefix.j
        self.prefix = prefix
        self.suffix_cells = nn.ModuleList(supernet.cells[start:])
        self.lastact, self.global_pooling, self.classifier = supernet.lastact, supernet.global_pooling, supernet.classifier
        self.arch: ArchitectureWeights = supernet.arch

    def forward(self, x: torch.Tensor, weights: "torch.Tensor | None" = None) -> torch.Tensor:
        feature = run_body(self.suffix_cells, self.prefix(x), self._weights(weights))
        return self.classifier(self.global_pooling(self.lastact(feature)).flatten(1))

    def forward_features(self, x: torch.Tensor, weights: "torch.Tensor | None" = None) -> list[torch.Tensor]:
        feats = self.prefix.forward_features(x)
        run_body(self.suffix_cells, feats[-1], self._weights(weights), feats)
        return feats


def build_tr_net(arch: Arch, backbone: Backbone, i: int = 5, j: int = 5, num_classes: int = 10,
                 C: int = 16, N: int = 5, input_size: tuple[int, int, int] = (3, 32, 32)) -> TrNet:
    """Tr-Net-i-j of NB201 architecture ``arch`` on ``backbone`` (a CifarResNet, its weights
    already loaded, or a backbone name for a randomly initialised one)."""
    backbone = _resolve_backbone(backbone)
    _check_i(i, N)  # fail before building anything
    prefix = FrozenPrefix(backbone, j)
    return TrNet(prefix, NB201Network(arch, num_classes=num_classes, C=C, N=N), i, input_size)


def build_tr_supernet(backbone: Backbone, i: int = 5, j: int = 5, num_classes: int = 10, C: int = 16,
                      N: int = 5, affine: bool = False, track_running_stats: bool = False,
                      input_size: tuple[int, int, int] = (3, 32, 32)) -> TrSupernet:
    """Tr-Supernet-i-j: the NB201 supernet's body after search cell ``i`` on a frozen prefix."""
    backbone = _resolve_backbone(backbone)
    _check_i(i, N)
    prefix = FrozenPrefix(backbone, j)
    return TrSupernet(prefix, NB201Supernet(num_classes, C, N, affine, track_running_stats), i, input_size)
