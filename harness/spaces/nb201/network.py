"""The NAS-Bench-201 inference network (reference ``TinyNetwork`` + ``InferCell``).

Layout (Dong & Yang, ICLR 2020, Fig. 1; reference ``models/cell_infers/tiny_network.py``):
stem Conv3x3(3->C, no bias)+BN (no ReLU); body = N search cells at C channels, a reduction block,
N cells at 2C, a reduction block, N cells at 4C (17 modules for N=5, kept in ``cells``);
head BN+ReLU, global average pool, Linear.

NB201 search cells are numbered 1..3N; :func:`search_cell_position` maps a cell number to its
position in ``cells`` (reduction blocks sit at positions N and 2N+1).
"""
from __future__ import annotations

import torch
from torch import nn

from harness import HarnessError
from harness.spaces.nb201.encoding import EDGES, Arch, to_ops, to_str
from harness.spaces.nb201.ops import ClassifierHead, ResNetBasicblock, make_op


def search_cell_position(i: int, N: int = 5) -> int:
    """NB201 search cell number ``i`` (1..3N) -> index into ``cells`` (reduction blocks counted)."""
    if not 1 <= i <= 3 * N:
        raise HarnessError(f"search cell {i}: must be in 1..{3 * N}")
    return (i - 1) + (i - 1) // N


def search_positions(N: int = 5) -> list[int]:
    """Positions in ``cells`` of search cells 1..3N."""
    return [search_cell_position(i, N) for i in range(1, 3 * N + 1)]


def body_layout(C: int = 16, N: int = 5) -> list[tuple[int, int, bool]]:
    """(C_in, C_out, is_reduction) for each of the 3N+2 body modules, in order."""
    layout, C_prev = [], C
    for stage in range(3):
        C_stage = C * 2**stage
        if stage > 0:
            layout.append((C_prev, C_stage, True))
        layout.extend([(C_stage, C_stage, False)] * N)
        C_prev = C_stage
    return layout


class InferCell(nn.Module):
    """One NB201 cell for a fixed architecture: 4 nodes, node k = sum of op(node j) over its edges.

    'none' edges are dropped at build time instead of adding ``x * 0`` as the reference does.
    This is exactly the same function: adding a tensor of (signed) zeros leaves every finite
    float unchanged, the Zero op has no parameters, and its gradient to its input is zero, so
    outputs, gradients and BN statistics are bit-for-bit those of the reference.
    A node whose incoming edges are *all* 'none' still exists in the reference as a zero tensor
    (downstream conv -> BN of zeros yields BN's bias, so it cannot be dropped); we make it with
    ``x.mul(0.)`` like the reference Zero op, which keeps it in the autograd graph too.
    One visible difference: a layer whose output reaches the cell output only through 'none'
    edges (so it cannot affect the output) ends a backward pass with ``grad None`` instead of
    a zero gradient.
    """

    def __init__(self, ops: tuple[str, ...], C: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.in_dim = self.out_dim = C
        self.layers = nn.ModuleList()
        # Per target node 1..3: the (layer index, source node) pairs of its non-'none' edges.
        plan: list[tuple[tuple[int, int], ...]] = []
        for node in (1, 2, 3):
            incoming = []
            for edge, (src, dst) in enumerate(EDGES):
                if dst == node and ops[edge] != "none":
                    incoming.append((len(self.layers), src))
                    self.layers.append(make_op(ops[edge], C, affine, track_running_stats))
            plan.append(tuple(incoming))
        self._plan = tuple(plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for incoming in self._plan:
            if not incoming:
                # All-'none' node: the reference's Zero op gives x*0 (every node has x's shape).
                nodes.append(x.mul(0.0))
                continue
            (k, src), *rest = incoming
            out = self.layers[k](nodes[src])
            for k, src in rest:  # same summation order as the reference's sum(...)
                out = out + self.layers[k](nodes[src])
            nodes.append(out)
        return nodes[-1]


class NB201Tail(nn.Module):
    """Body modules from one position on, then the head: what a Tr-Net keeps of a network
    (paper Sec. 3.2). The modules are the network's own, not copies. It consumes the last
    ``inputs`` outputs of whatever ran before it (NB201 cells take one input)."""

    inputs = 1

    def __init__(self, cells: "list[nn.Module]", head: ClassifierHead):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.head = head

    def forward(self, inputs: "list[torch.Tensor]") -> torch.Tensor:
        feature = inputs[-1]
        for cell in self.cells:
            feature = cell(feature)
        return self.head(feature)

    def forward_features(self, inputs: "list[torch.Tensor]") -> list[torch.Tensor]:
        feats, feature = [], inputs[-1]
        for cell in self.cells:
            feature = cell(feature)
            feats.append(feature)
        return feats


def expected_input(cells: nn.ModuleList, start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) that body module ``start`` expects: the stem keeps the resolution and each
    reduction block before ``start`` halves it."""
    halvings = sum(1 for m in cells[:start] if getattr(m, "stride", 1) == 2)
    _, H, W = input_size
    return cells[start].in_dim, H // 2**halvings, W // 2**halvings


class NB201Network(nn.Module):
    """A NAS-Bench-201 architecture, layer for layer the reference ``TinyNetwork``.

    ``arch``: any encoding accepted by :func:`harness.spaces.nb201.to_ops` (string, index, ops).
    ``forward(x)`` returns logits; ``forward_features(x)`` every body module's output.
    """

    def __init__(self, arch: Arch, num_classes: int = 10, C: int = 16, N: int = 5):
        super().__init__()
        if num_classes < 1 or C < 1 or N < 1:
            raise HarnessError(f"NB201Network: num_classes={num_classes}, C={C}, N={N} must all be >= 1")
        self.ops = to_ops(arch)
        self.arch_str = to_str(self.ops)
        self.C, self.N, self.num_classes = C, N, num_classes
        self.stem = nn.Sequential(nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C))
        self.cells = nn.ModuleList(
            ResNetBasicblock(c_in, c_out, 2) if reduction else InferCell(self.ops, c_out)
            for c_in, c_out, reduction in body_layout(C, N))
        self.head = ClassifierHead(self.cells[-1].out_dim, num_classes)

    def search_positions(self) -> list[int]:
        """Positions in ``cells`` of search cells 1..3N."""
        return search_positions(self.N)

    def tail(self, start: int) -> NB201Tail:
        """Body modules ``start``.. and the head, sharing this network's modules."""
        return NB201Tail(list(self.cells[start:]), self.head)

    def expected_input(self, start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
        return expected_input(self.cells, start, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        return self.head(feature)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of all 3N+2 body modules (cells and reduction blocks), in order."""
        feats, feature = [], self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
            feats.append(feature)
        return feats

    def extra_repr(self) -> str:
        return f"arch={self.arch_str!r}"
