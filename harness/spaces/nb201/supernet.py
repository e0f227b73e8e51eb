"""The NAS-Bench-201 search supernet for DARTS-style methods (reference ``TinyNetworkDarts``).

Same skeleton as :class:`harness.spaces.nb201.network.NB201Network`, but every edge of every search
cell is a mixed op: the weighted sum of all 5 ops. The ops' BN has ``affine=False`` and (by
default) no running statistics, as in DARTS; the stem, reduction blocks and head are as in the
inference network. One (6, 5) matrix of architecture logits ``alpha`` is shared by all cells:
rows are edges in NB201 string order (``harness.spaces.nb201.EDGES``), columns ops in
``harness.spaces.nb201.OPS`` order.

For DARTS+PT (Wang et al., ICLR 2021) an edge can be *projected* (fixed to one op: its weights
become one-hot) and single ops can be *masked* (their weight is set to 0, the others keep their
softmax weight, as in DARTS+PT's perturbation step). :meth:`NB201Supernet.genotype` discretises
to an NB201 string.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.measure.counting import trainable_parameters
from harness.spaces.mixed import weighted_sum
from harness.spaces.nb201.encoding import EDGES, NUM_EDGES, NUM_OPS, OPS, to_str
from harness.spaces.nb201.network import body_layout, expected_input, search_positions
from harness.spaces.nb201.ops import ClassifierHead, ResNetBasicblock, make_op

Edge = Union[int, tuple[int, int]]
Op = Union[int, str]


class MixedOp(nn.Module):
    """sum_k w[k] * op_k(x) over the 5 NB201 ops.

    The 'none' op is left out: the reference adds ``(x * 0) * w[0]``, a tensor of zeros, which
    changes no finite value, and its gradient with respect to ``w[0]`` is 0 either way.
    """

    def __init__(self, C: int, affine: bool = False, track_running_stats: bool = False):
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, C, affine, track_running_stats) for name in OPS[1:])

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return weighted_sum(self.ops, x, w)


class SearchCell(nn.Module):
    """NB201 cell whose 6 edges are mixed ops; ``forward(x, weights)`` with weights (6, 5)."""

    def __init__(self, C: int, affine: bool = False, track_running_stats: bool = False):
        super().__init__()
        self.in_dim = self.out_dim = C
        self.edges = nn.ModuleList(MixedOp(C, affine, track_running_stats) for _ in EDGES)
        # Per target node 1..3: (edge index, source node) of its incoming edges, string order.
        self._plan = tuple(tuple((e, src) for e, (src, dst) in enumerate(EDGES) if dst == node) for node in (1, 2, 3))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for incoming in self._plan:
            (e, src), *rest = incoming
            out = self.edges[e](nodes[src], weights[e])
            for e, src in rest:
                out = out + self.edges[e](nodes[src], weights[e])
            nodes.append(out)
        return nodes[-1]


def _edge_index(edge: Edge) -> int:
    if isinstance(edge, tuple) and edge in EDGES:
        return EDGES.index(edge)
    if isinstance(edge, int) and not isinstance(edge, bool) and 0 <= edge < NUM_EDGES:
        return edge
    raise HarnessError(f"edge {edge!r}: expected 0..{NUM_EDGES - 1} (string order) or one of {list(EDGES)}")


def _op_index(op: Op) -> int:
    if isinstance(op, str) and op in OPS:
        return OPS.index(op)
    if isinstance(op, int) and not isinstance(op, bool) and 0 <= op < NUM_OPS:
        return op
    raise HarnessError(f"op {op!r}: expected 0..{NUM_OPS - 1} or one of {', '.join(OPS)}")


class ArchitectureWeights(nn.Module):
    """The shared (6, 5) logits ``alpha`` plus DARTS+PT's per-edge projection and op masks."""

    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS))
        self.register_buffer("mask", torch.ones(NUM_EDGES, NUM_OPS, dtype=torch.bool))
        # projected[e] = chosen op id, or -1 while edge e is still searched.
        self.register_buffer("projected", torch.full((NUM_EDGES,), -1, dtype=torch.long))

    def weights(self) -> torch.Tensor:
        """(6, 5) op weights: softmax(alpha) with masked ops zeroed; projected edges one-hot."""
        soft = F.softmax(self.alpha, dim=-1) * self.mask
        is_projected = self.projected >= 0
        if not bool(is_projected.any()):
            return soft
        one_hot = F.one_hot(self.projected.clamp(min=0), NUM_OPS).to(soft.dtype)
        return torch.where(is_projected[:, None], one_hot, soft)

    def project(self, edge: Edge, op: Op) -> None:
        """Fix ``edge`` to ``op`` (its weight row becomes one-hot, its mask row too)."""
        e, k = _edge_index(edge), _op_index(op)
        if int(self.projected[e]) >= 0:
            raise HarnessError(f"edge {EDGES[e]} is already projected to {OPS[int(self.projected[e])]!r}")
        if not bool(self.mask[e, k]):
            raise HarnessError(f"edge {EDGES[e]}: op {OPS[k]!r} is masked out and cannot be chosen")
        self.projected[e] = k
        self.mask[e] = False
        self.mask[e, k] = True

    def mask_op(self, edge: Edge, op: Op) -> None:
        """Remove ``op`` from ``edge``'s candidates (weight 0, never chosen by ``genotype``)."""
        e, k = _edge_index(edge), _op_index(op)
        if int(self.projected[e]) >= 0:
            raise HarnessError(f"edge {EDGES[e]} is projected to {OPS[int(self.projected[e])]!r}; cannot mask its ops")
        if int(self.mask[e].sum()) == 1 and bool(self.mask[e, k]):
            raise HarnessError(f"edge {EDGES[e]}: {OPS[k]!r} is its last remaining op")
        self.mask[e, k] = False

    def reset(self) -> None:
        """Undo every projection and mask (alpha is kept)."""
        self.mask.fill_(True)
        self.projected.fill_(-1)

    def genotype(self) -> str:
        """NB201 string: each edge's projected op, else argmax of alpha over its remaining ops."""
        with torch.no_grad():
            logits = self.alpha.masked_fill(~self.mask, float("-inf"))
            chosen = torch.where(self.projected >= 0, self.projected, logits.argmax(dim=-1))
        return to_str([OPS[int(k)] for k in chosen])

    # DARTS+PT's decision interface (harness.methods.oneshot.decision, above the spaces: its kinds
    # by value): one op per edge; every NB201 node keeps all its incoming edges, so there is no
    # topology decision.
    def pt_lanes(self) -> list[list[tuple[str, list[int]]]]:
        return [[("op", list(range(NUM_EDGES)))]]

    def decided(self, kind: str, edge: int) -> bool:
        return int(self.projected[edge]) >= 0

    def candidates(self, kind: str, edge: int) -> list[int]:
        """The ops still candidates on ``edge`` ('none' included: it is an NB201 op)."""
        return [k for k in range(NUM_OPS) if bool(self.mask[edge, k])]

    def keep(self, kind: str, edge: int, kept: list[int]) -> None:
        self.project(edge, kept[0])

    def describe(self, kind: str, edge: int) -> dict:
        return {"edge": edge}


def check_weights(weights: torch.Tensor) -> torch.Tensor:
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (NUM_EDGES, NUM_OPS):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise HarnessError(f"architecture weights: expected a ({NUM_EDGES}, {NUM_OPS}) tensor, got {shape}")
    return weights


class ArchitectureState:
    """Methods over ``self.arch`` (alpha, masks, projections), shared by the supernet and every
    Tr-Supernet built from it."""

    arch: ArchitectureWeights

    @property
    def arch_parameters(self) -> nn.Parameter:
        return self.arch.alpha

    @property
    def mask(self) -> torch.Tensor:
        return self.arch.mask

    def project(self, edge: Edge, op: Op) -> None:
        self.arch.project(edge, op)

    def mask_op(self, edge: Edge, op: Op) -> None:
        self.arch.mask_op(edge, op)

    def genotype(self) -> str:
        return self.arch.genotype()

    def weight_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters except ``alpha`` (what the weight optimizer gets)."""
        return [p for p in trainable_parameters(self) if p is not self.arch.alpha]

    def _weights(self, weights: "torch.Tensor | None") -> torch.Tensor:
        return self.arch.weights() if weights is None else check_weights(weights)


class NB201Supernet(ArchitectureState, nn.Module):
    """DARTS supernet over the NB201 space; ``forward(x, weights=None)`` returns logits.

    ``weights=None`` uses :meth:`ArchitectureWeights.weights` (softmax, masks, projections);
    an explicit (6, 5) tensor is used as given for every cell.
    """

    def __init__(self, num_classes: int = 10, C: int = 16, N: int = 5, affine: bool = False,
                 track_running_stats: bool = False):
        super().__init__()
        if num_classes < 1 or C < 1 or N < 1:
            raise HarnessError(f"NB201Supernet: num_classes={num_classes}, C={C}, N={N} must all be >= 1")
        self.C, self.N, self.num_classes = C, N, num_classes
        self.stem = nn.Sequential(nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C))
        self.cells = nn.ModuleList(
            ResNetBasicblock(c_in, c_out, 2) if reduction else SearchCell(c_out, affine, track_running_stats)
            for c_in, c_out, reduction in body_layout(C, N))
        self.head = ClassifierHead(self.cells[-1].out_dim, num_classes)
        self.arch = ArchitectureWeights()

    # -- forward --
    def forward(self, x: torch.Tensor, weights: "torch.Tensor | None" = None) -> torch.Tensor:
        return self.head(run_body(self.cells, self.stem(x), self._weights(weights)))

    def forward_features(self, x: torch.Tensor, weights: "torch.Tensor | None" = None) -> list[torch.Tensor]:
        """Outputs of all 3N+2 body modules, in order."""
        feats: list[torch.Tensor] = []
        run_body(self.cells, self.stem(x), self._weights(weights), feats)
        return feats

    def search_positions(self) -> list[int]:
        """Positions in ``cells`` of search cells 1..3N."""
        return search_positions(self.N)

    def tail(self, start: int) -> "NB201SupernetTail":
        """Body modules ``start``.. and the head, sharing this supernet's modules and ``arch``."""
        return NB201SupernetTail(list(self.cells[start:]), self.head, self.arch)

    def expected_input(self, start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
        return expected_input(self.cells, start, input_size)


class NB201SupernetTail(ArchitectureState, nn.Module):
    """Supernet body from one position on plus the head, with the supernet's shared ``arch``:
    what a Tr-Supernet keeps (paper Sec. 3.2)."""

    inputs = 1

    def __init__(self, cells: "list[nn.Module]", head: ClassifierHead, arch: ArchitectureWeights):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.head = head
        self.arch = arch

    def forward(self, inputs: "list[torch.Tensor]", weights: "torch.Tensor | None" = None) -> torch.Tensor:
        return self.head(run_body(self.cells, inputs[-1], self._weights(weights)))

    def forward_features(self, inputs: "list[torch.Tensor]", weights: "torch.Tensor | None" = None
                         ) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        run_body(self.cells, inputs[-1], self._weights(weights), feats)
        return feats


def run_body(cells: Sequence[nn.Module], feature: torch.Tensor, weights: torch.Tensor,
             feats: "list[torch.Tensor] | None" = None) -> torch.Tensor:
    """Run supernet body modules in order (search cells get ``weights``, reduction blocks not);
    append each output to ``feats`` when given. Returns the last output."""
    for cell in cells:
        feature = cell(feature, weights) if isinstance(cell, SearchCell) else cell(feature)
        if feats is not None:
            feats.append(feature)
    return feature
