"""The TR-NAS splice: Tr-Net-i-j and Tr-Supernet-i-j (paper Sec. 3.2, Fig. 3), for any space.

Instead of training a network A = {a1..aL} we train S = {b1..bj, a(i+1)..aL}: the stem and
first ``j`` blocks of a pre-trained backbone (frozen, shared by every candidate) followed by A
without its stem and first ``i`` search cells. ``i`` counts the space's search cells (1..L); the
modules between the dropped cells (e.g. NB201's reduction blocks) go with them, and the first
kept module is whatever follows cell ``i``. Tr-Net-5-5 with ResNet-32 (stage 1 of each) is the
paper's NB201 default; Tr-Net-10-10 its ablation.

Nothing here knows a particular space. A spliceable network (see :mod:`harness.spaces.base`)
gives ``search_positions()`` (where cells 1..L sit in its body), ``tail(start)`` (its modules from
``start`` to the logits, consuming the last ``tail.inputs`` outputs before it) and
``expected_input(start, input_size)`` (the shape the module at ``start`` takes). A tail that
consumes several outputs (a DARTS cell reads the two cells before it) only has the last one's
shape fixed by ``expected_input``; if it has ``fit_inputs(shapes)`` the splice calls it with the
shapes of the prefix outputs it will get, so it can build what adapts the others.

The frozen prefix runs under ``torch.no_grad()`` and always in eval mode, so it keeps no
activations for backward -- the memory saving the paper measures -- and its BN running
statistics never move. Its modules are shared with the backbone, not copied.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Union

import torch
from torch import nn

from harness import HarnessError
from harness.backbones.resnet import CifarResNet, build_backbone

Backbone = Union[CifarResNet, str]

#: How the frozen prefix's BN normalises -- the paper says the blocks are frozen, not which
#: statistics they use: ``running`` (the pre-trained running statistics, default) or ``batch``
#: (each batch's own statistics, as in training mode; the running ones are neither used nor moved).
PREFIX_BN = ("running", "batch")


class FrozenPrefix(nn.Module):
    """Stem + first ``j`` blocks of a backbone; frozen, no_grad, always in eval mode.

    The modules are the backbone's own (not copies), and they are frozen in place: the
    backbone's parameters get ``requires_grad=False`` too. ``bn`` is one of :data:`PREFIX_BN`.
    """

    def __init__(self, backbone: CifarResNet, j: int, bn: str = "running"):
        super().__init__()
        n_blocks = len(backbone.blocks)
        if not 1 <= j <= n_blocks - 1:
            raise HarnessError(f"j={j}: must be in 1..{n_blocks - 1} (the backbone has {n_blocks} blocks)")
        if bn not in PREFIX_BN:
            raise HarnessError(f"prefix BN mode {bn!r}: unknown (known: {', '.join(PREFIX_BN)})")
        self.j, self.bn = j, bn
        self.stem = backbone.stem
        self.blocks = nn.ModuleList(backbone.blocks[:j])
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenPrefix":
        # Whatever the parent asks, stay in eval mode: BN uses (and never updates) running stats.
        return super().train(False)

    @contextmanager
    def _statistics(self) -> Iterator[None]:
        """With ``bn="batch"``, BN layers normalise by the batch's statistics for this call only:
        training mode without tracking, so their running statistics stay exactly as loaded."""
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if self.bn == "batch" else []
        saved = [(m.training, m.track_running_stats) for m in norms]
        for m in norms:
            m.training, m.track_running_stats = True, False
        try:
            yield
        finally:
            for m, (training, track) in zip(norms, saved):
                m.training, m.track_running_stats = training, track

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x, 1)[-1]

    def outputs(self, x: torch.Tensor, last: int) -> list[torch.Tensor]:
        """Outputs of the last ``last`` blocks (only those are kept alive)."""
        kept: list[torch.Tensor] = []
        with torch.no_grad(), self._statistics():
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
                kept = (kept + [x])[-last:]
        return kept

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of blocks 1..j."""
        feats = []
        with torch.no_grad(), self._statistics():
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
                feats.append(x)
        return feats


def _resolve_backbone(backbone: Backbone) -> CifarResNet:
    if isinstance(backbone, str):
        return build_backbone(backbone)
    if not isinstance(backbone, CifarResNet):
        raise HarnessError(f"backbone {type(backbone).__name__}: expected a CifarResNet or a backbone name")
    return backbone


def _start(network: nn.Module, i: int) -> int:
    """Search cell ``i`` (1..L-1: at least one cell stays trainable) -> first kept body position."""
    positions = network.search_positions()
    L = len(positions)
    if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= L - 1:
        raise HarnessError(f"i={i!r}: must be in 1..{L - 1} (the network has {L} search cells)")
    return positions[i - 1] + 1


def _check_shapes(prefix: FrozenPrefix, network: nn.Module, start: int, i: int,
                  input_size: tuple[int, int, int], last: int = 1) -> list[tuple[int, ...]]:
    """Check the prefix's last output fits the module at ``start``; the shapes (C, H, W) of the
    prefix's last ``last`` outputs (what the tail will consume)."""
    param = next(prefix.parameters())
    shapes = [tuple(t.shape[1:]) for t in
              prefix.outputs(torch.zeros(1, *input_size, device=param.device, dtype=param.dtype), last)]
    got, want = shapes[-1], network.expected_input(start, input_size)
    if got != want:
        raise HarnessError(
            f"Tr-Net-{i}-{prefix.j}: backbone prefix output shape (C, H, W) = {got} does not fit the "
            f"module after cell {i}, which expects shape {want} (input {tuple(input_size)})")
    return shapes


class TrNet(nn.Module):
    """Tr-Net-i-j: frozen backbone prefix + the network's modules after search cell ``i``."""

    def __init__(self, prefix: FrozenPrefix, network: nn.Module, i: int,
                 input_size: tuple[int, int, int] = (3, 32, 32)):
        super().__init__()
        start = _start(network, i)
        tail = network.tail(start)
        shapes = _check_shapes(prefix, network, start, i, input_size, tail.inputs)
        if hasattr(tail, "fit_inputs"):  # a tail taking several inputs may adapt to their shapes
            tail.fit_inputs(shapes)
        self.i, self.j, self.arch_str = i, prefix.j, getattr(network, "arch_str", None)
        self.prefix = prefix
        self.tail = tail

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.tail(self.prefix.outputs(x, self.tail.inputs), *args, **kwargs)

    def forward_features(self, x: torch.Tensor, *args, **kwargs) -> list[torch.Tensor]:
        """Outputs of prefix blocks 1..j, then of every kept body module."""
        feats = self.prefix.forward_features(x)
        return feats + self.tail.forward_features(feats[-self.tail.inputs:], *args, **kwargs)

    def extra_repr(self) -> str:
        return f"i={self.i}, j={self.j}" + (f", arch={self.arch_str!r}" if self.arch_str else "")


class TrSupernet(TrNet):
    """Tr-Supernet-i-j: frozen prefix + a supernet's body after cell ``i``. The architecture
    state (alpha, masks, projections) is the supernet's own object, shared and trainable."""

    def __init__(self, prefix: FrozenPrefix, supernet: nn.Module, i: int,
                 input_size: tuple[int, int, int] = (3, 32, 32)):
        super().__init__(prefix, supernet, i, input_size)

    @property
    def arch(self) -> nn.Module:
        return self.tail.arch

    @property
    def arch_parameters(self):
        return self.tail.arch_parameters

    def weight_parameters(self) -> list[nn.Parameter]:
        return self.tail.weight_parameters()

    def project(self, *args) -> None:
        self.tail.project(*args)

    def mask_op(self, *args) -> None:
        self.tail.mask_op(*args)

    def genotype(self):
        return self.tail.genotype()


def build_tr_net(network: nn.Module, backbone: Backbone, i: int = 5, j: int = 5,
                 input_size: tuple[int, int, int] = (3, 32, 32), prefix_bn: str = "running") -> TrNet:
    """Tr-Net-i-j of a spliceable ``network`` on ``backbone`` (a CifarResNet, its weights already
    loaded, or a backbone name for a randomly initialised one)."""
    backbone = _resolve_backbone(backbone)
    _start(network, i)  # fail before building anything
    return TrNet(FrozenPrefix(backbone, j, prefix_bn), network, i, input_size)


def build_tr_supernet(supernet: nn.Module, backbone: Backbone, i: int = 5, j: int = 5,
                      input_size: tuple[int, int, int] = (3, 32, 32), prefix_bn: str = "running") -> TrSupernet:
    """Tr-Supernet-i-j: a space's supernet body after search cell ``i`` on a frozen prefix."""
    backbone = _resolve_backbone(backbone)
    _start(supernet, i)
    return TrSupernet(FrozenPrefix(backbone, j, prefix_bn), supernet, i, input_size)
