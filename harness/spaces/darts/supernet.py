"""The DARTS search supernet (reference ``cnn/model_search.py`` ``Network``, Liu et al., ICLR 2019)
with the architecture-selection hooks of DARTS+PT (Wang et al., ICLR 2021, ``darts-pt``).

C=16, 8 cells, reduction cells at ``layers // 3`` and ``2 * layers // 3`` (2 and 5), 4 steps,
multiplier 4, stem multiplier 3; every one of a cell's 14 edges (node k = 2..5 reads nodes
0..k-1; edge order: node 2's two, node 3's three, ...) is a mixed op, the softmax-weighted sum of
the 8 primitives (pools followed by a BN without affine, all BN without affine). Two (14, 8)
logit matrices, ``alpha_normal`` and ``alpha_reduce``; weights as one (2, 14, 8) tensor
(index 0 normal, 1 reduce).

DARTS+PT hooks, per cell kind: :meth:`ArchitectureWeights.mask_op` (one op's weight set to 0,
the rest keep their softmax weight: the op-perturbation step), ``project`` (an edge fixed to one
op: its row one-hot), ``remove_edge`` (an incoming edge of a node weighted 0: topology
perturbation) and ``project_node`` (a node keeps exactly two incoming edges).
:meth:`ArchitectureWeights.genotype` is the reference derivation over those weights: per node
the 2 incoming edges whose strongest non-``none`` op weighs most, each with that op. The same
hooks behind DARTS+PT's decision interface (``pt_lanes`` ..., :mod:`harness.methods.oneshot.decision`)
let the space-independent PT of :mod:`harness.methods.oneshot.pt` run the reference's schedule.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.measure.counting import trainable_parameters
from harness.spaces.darts.genotype import CELLS, CONCAT, STEPS, Genotype, validate
from harness.spaces.darts.network import expected_input, fit_first_input, layout
from harness.spaces.darts.ops import PRIMITIVES, make_op, preprocess
from harness.spaces.mixed import weighted_sum

#: The decision kinds of DARTS+PT's interface, by value (it lives above the spaces, in
#: harness.methods.oneshot.decision): keep one op of an edge; keep two incoming edges of a node.
OP, TOPOLOGY = "op", "topology"
#: (source, target) node of each of the 14 edges, in the reference order.
EDGES: tuple[tuple[int, int], ...] = tuple((j, k) for k in range(2, 2 + STEPS) for j in range(k))
NUM_EDGES, NUM_OPS = len(EDGES), len(PRIMITIVES)


class MixedOp(nn.Module):
    """sum_k w[k] * op_k(x) over the 8 primitives (reference ``model_search.MixedOp``). The zero op
    is left out of the sum: it adds zeros (the reference's ``w * Zero(x)``)."""

    def __init__(self, C: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList()
        for name in PRIMITIVES[1:]:
            op = make_op(name, C, stride, affine=False)
            self.ops.append(nn.Sequential(op, nn.BatchNorm2d(C, affine=False)) if "pool" in name else op)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return weighted_sum(self.ops, x, w)


class SearchCell(nn.Module):
    """One supernet cell; ``forward(s0, s1, weights)`` with weights (14, 8)."""

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction, self.reduction_prev = reduction, reduction_prev
        self.C_prev_prev, self.C_prev, self.C = C_prev_prev, C_prev, C
        self.preprocess0 = preprocess(C_prev_prev, C, reduction_prev, affine=False)
        self.preprocess1 = preprocess(C_prev, C, False, affine=False)
        self.edges = nn.ModuleList(MixedOp(C, 2 if reduction and src < 2 else 1) for src, _ in EDGES)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                pre0: "nn.Module | None" = None) -> torch.Tensor:
        states = [(pre0 or self.preprocess0)(s0), self.preprocess1(s1)]
        e = 0
        for k in range(2, 2 + STEPS):
            out = self.edges[e](states[0], weights[e])
            for j in range(1, k):
                out = out + self.edges[e + j](states[j], weights[e + j])
            e += k
            states.append(out)
        return torch.cat(states[-len(CONCAT):], dim=1)


def _cell_index(cell: str) -> int:
    if cell not in CELLS:
        raise HarnessError(f"cell {cell!r}: expected 'normal' or 'reduce'")
    return CELLS.index(cell)


def _edge_index(edge) -> int:
    if isinstance(edge, tuple) and edge in EDGES:
        return EDGES.index(edge)
    if isinstance(edge, int) and not isinstance(edge, bool) and 0 <= edge < NUM_EDGES:
        return edge
    raise HarnessError(f"edge {edge!r}: expected 0..{NUM_EDGES - 1} or a (source, node) pair such as (0, 2)")


def _op_index(op) -> int:
    if isinstance(op, str) and op in PRIMITIVES:
        return PRIMITIVES.index(op)
    if isinstance(op, int) and not isinstance(op, bool) and 0 <= op < NUM_OPS:
        return op
    raise HarnessError(f"op {op!r}: expected 0..{NUM_OPS - 1} or one of {', '.join(PRIMITIVES)}")


def node_edges(node: int) -> list[int]:
    """Indices of the incoming edges of intermediate node ``node`` (2..5)."""
    if not isinstance(node, int) or not 2 <= node < 2 + STEPS:
        raise HarnessError(f"node {node!r}: intermediate nodes are 2..{1 + STEPS}")
    return [e for e, (_, dst) in enumerate(EDGES) if dst == node]


class ArchitectureWeights(nn.Module):
    """``alpha_normal`` and ``alpha_reduce`` (14, 8) plus DARTS+PT's masks and projections."""

    def __init__(self):
        super().__init__()
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS))
        self.register_buffer("op_mask", torch.ones(2, NUM_EDGES, NUM_OPS, dtype=torch.bool))
        self.register_buffer("edge_mask", torch.ones(2, NUM_EDGES, dtype=torch.bool))
        # projected[c, e] = chosen op of edge e of cell kind c, or -1 while it is still searched.
        self.register_buffer("projected", torch.full((2, NUM_EDGES), -1, dtype=torch.long))

    def alphas(self) -> torch.Tensor:
        return torch.stack([self.alpha_normal, self.alpha_reduce])

    def weights(self) -> torch.Tensor:
        """(2, 14, 8): softmax(alpha) with masked ops zeroed, projected edges one-hot, removed
        edges all zero."""
        soft = F.softmax(self.alphas(), dim=-1) * self.op_mask
        one_hot = F.one_hot(self.projected.clamp(min=0), NUM_OPS).to(soft.dtype)
        w = torch.where((self.projected >= 0)[..., None], one_hot, soft)
        return w * self.edge_mask[..., None]

    def project(self, cell: str, edge, op) -> None:
        """Fix ``edge`` of ``cell`` to ``op``."""
        c, e, k = _cell_index(cell), _edge_index(edge), _op_index(op)
        if int(self.projected[c, e]) >= 0:
            raise HarnessError(f"{cell} edge {EDGES[e]} is already projected to {PRIMITIVES[int(self.projected[c, e])]!r}")
        if not bool(self.op_mask[c, e, k]):
            raise HarnessError(f"{cell} edge {EDGES[e]}: op {PRIMITIVES[k]!r} is masked out and cannot be chosen")
        self.projected[c, e] = k
        self.op_mask[c, e] = False
        self.op_mask[c, e, k] = True

    def mask_op(self, cell: str, edge, op) -> None:
        """Give ``op`` on ``edge`` weight 0 (and never choose it in ``genotype``)."""
        c, e, k = _cell_index(cell), _edge_index(edge), _op_index(op)
        if int(self.projected[c, e]) >= 0:
            raise HarnessError(f"{cell} edge {EDGES[e]} is projected; cannot mask its ops")
        if k == 0 or int(self.op_mask[c, e, 1:].sum()) == 1 and bool(self.op_mask[c, e, k]):
            raise HarnessError(f"{cell} edge {EDGES[e]}: cannot mask {PRIMITIVES[k]!r} "
                               "('none' is never chosen; the last other op must stay)")
        self.op_mask[c, e, k] = False

    def remove_edge(self, cell: str, edge) -> None:
        """Weight 0 for a node's incoming ``edge`` (it needs 2 edges left)."""
        c, e = _cell_index(cell), _edge_index(edge)
        node = EDGES[e][1]
        left = [i for i in node_edges(node) if bool(self.edge_mask[c, i])]
        if e not in left:
            raise HarnessError(f"{cell} edge {EDGES[e]} is already removed")
        if len(left) <= 2:
            raise HarnessError(f"{cell} node {node}: only {len(left)} incoming edges left; a node keeps two")
        self.edge_mask[c, e] = False

    def project_node(self, cell: str, node: int, inputs: "tuple[int, int]") -> None:
        """Node ``node`` keeps the edges from the two ``inputs`` nodes; its other edges are removed."""
        c = _cell_index(cell)
        keep = {_edge_index((src, node)) for src in inputs} if all(
            isinstance(s, int) and (s, node) in EDGES for s in inputs) else set()
        if len(keep) != 2 or not all(bool(self.edge_mask[c, e]) for e in keep):
            raise HarnessError(f"{cell} node {node}: inputs {inputs!r} must be two different remaining earlier nodes")
        for e in node_edges(node):
            self.edge_mask[c, e] = e in keep

    def reset(self) -> None:
        """Undo every mask, removal and projection (alpha is kept)."""
        self.op_mask.fill_(True)
        self.edge_mask.fill_(True)
        self.projected.fill_(-1)

    def genotype(self) -> Genotype:
        """The reference derivation over :meth:`weights` (masked ops and removed edges never chosen)."""
        with torch.no_grad():
            w = self.weights().masked_fill(~self.op_mask | ~self.edge_mask[..., None], float("-inf"))
            w[..., 0] = float("-inf")  # 'none' is never chosen
            cells = []
            for c in range(2):
                pairs = []
                for node in range(2, 2 + STEPS):
                    edges = node_edges(node)
                    best = {e: w[c, e].max().item() for e in edges}
                    for e in sorted(edges, key=lambda i: -best[i])[:2]:
                        pairs.append((PRIMITIVES[int(w[c, e].argmax())], EDGES[e][0]))
                cells.append(pairs)
        return validate(cells[0], CONCAT, cells[1], CONCAT)

    # DARTS+PT's decision interface (harness.methods.oneshot.decision). Keys: (cell index, edge) for op
    # decisions (the row of ``weights()``), (cell index, node) for topology decisions.
    def pt_lanes(self) -> list[list[tuple[str, list[tuple[int, int]]]]]:
        """The reference ``pt_project``: each op-projection step projects an edge of the normal
        cell, then one of the reduction cell (14 steps); then each topology step one node of each
        (nodes 3, 4, 5: node 2 has exactly its two candidate inputs)."""
        ops = [(OP, [(c, e) for e in range(NUM_EDGES)]) for c in range(len(CELLS))]
        nodes = [(TOPOLOGY, [(c, n) for n in range(2, 2 + STEPS) if len(node_edges(n)) > 2])
                 for c in range(len(CELLS))]
        return [ops, nodes]

    def decided(self, kind: str, key: tuple[int, int]) -> bool:
        c, i = key
        if kind == OP:
            return int(self.projected[c, i]) >= 0
        return int(self.edge_mask[c, node_edges(i)].sum()) <= 2

    def candidates(self, kind: str, key: tuple[int, int]) -> list:
        """Op decision: the ops still candidates except 'none' (a genotype cannot hold it; the
        reference measures it too, but its removal changes no output, and when it is kept the
        reference's derivation writes the edge's first other op). Topology: the (cell, edge) rows
        of the node's incoming edges still present."""
        c, i = key
        if kind == OP:
            return [k for k in range(1, NUM_OPS) if bool(self.op_mask[c, i, k])]
        return [(c, e) for e in node_edges(i) if bool(self.edge_mask[c, e])]

    def keep(self, kind: str, key: tuple[int, int], kept: list) -> None:
        c, i = key
        if kind == OP:
            self.project(CELLS[c], i, kept[0])
        else:
            self.project_node(CELLS[c], i, tuple(EDGES[e][0] for _, e in kept))

    def describe(self, kind: str, key: tuple[int, int]) -> dict:
        return {"cell": CELLS[key[0]], "edge" if kind == OP else "node": key[1]}


class ArchitectureState:
    """Methods over ``self.arch``, shared by the supernet and every Tr-Supernet built from it."""

    arch: ArchitectureWeights

    @property
    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.arch.alpha_normal, self.arch.alpha_reduce]

    def project(self, cell: str, edge, op) -> None:
        self.arch.project(cell, edge, op)

    def mask_op(self, cell: str, edge, op) -> None:
        self.arch.mask_op(cell, edge, op)

    def remove_edge(self, cell: str, edge) -> None:
        self.arch.remove_edge(cell, edge)

    def project_node(self, cell: str, node: int, inputs: "tuple[int, int]") -> None:
        self.arch.project_node(cell, node, inputs)

    def genotype(self) -> Genotype:
        return self.arch.genotype()

    def weight_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters except the alphas (what the weight optimizer gets)."""
        alphas = {id(p) for p in self.arch_parameters}
        return [p for p in trainable_parameters(self) if id(p) not in alphas]

    def _weights(self, weights: "torch.Tensor | None") -> torch.Tensor:
        if weights is None:
            return self.arch.weights()
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (2, NUM_EDGES, NUM_OPS):
            shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
            raise HarnessError(f"architecture weights: expected a (2, {NUM_EDGES}, {NUM_OPS}) tensor "
                               f"(normal, reduce), got {shape}")
        return weights


def run_search_cells(cells, inputs: "list[torch.Tensor]", weights: torch.Tensor, feats: "list | None" = None,
                     pre0: "nn.Module | None" = None) -> torch.Tensor:
    """Run supernet cells on the last two of ``inputs`` (one: used twice); returns the last output."""
    s0, s1 = inputs[-2] if len(inputs) > 1 else inputs[-1], inputs[-1]
    for k, cell in enumerate(cells):
        s0, s1 = s1, cell(s0, s1, weights[int(cell.reduction)], pre0 if k == 0 else None)
        if feats is not None:
            feats.append(s1)
    return s1


class DartsSupernet(ArchitectureState, nn.Module):
    """The DARTS search network; ``forward(x, weights=None)`` returns logits (``weights=None``:
    :meth:`ArchitectureWeights.weights`)."""

    def __init__(self, num_classes: int = 10, C: int = 16, layers: int = 8, stem_multiplier: int = 3):
        super().__init__()
        if num_classes < 1:
            raise HarnessError(f"DARTS supernet: num_classes={num_classes} must be >= 1")
        self.C, self.layers, self.num_classes = C, layers, num_classes
        self._layout = layout(C, layers, stem_multiplier)
        self.stem = nn.Sequential(nn.Conv2d(3, stem_multiplier * C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem_multiplier * C))
        self.cells = nn.ModuleList(
            SearchCell(s["C_prev_prev"], s["C_prev"], s["C"], s["reduction"], s["reduction_prev"])
            for s in self._layout)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self._layout[-1]["C_out"], num_classes)
        self.arch = ArchitectureWeights()

    def forward(self, x: torch.Tensor, weights: "torch.Tensor | None" = None) -> torch.Tensor:
        s = run_search_cells(self.cells, [self.stem(x)], self._weights(weights))
        return self.classifier(self.global_pooling(s).flatten(1))

    def forward_features(self, x: torch.Tensor, weights: "torch.Tensor | None" = None) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        run_search_cells(self.cells, [self.stem(x)], self._weights(weights), feats)
        return feats

    def search_positions(self) -> list[int]:
        return list(range(self.layers))

    def tail(self, start: int) -> "DartsSupernetTail":
        """Cells ``start..`` and the classifier, sharing this supernet's modules and ``arch``."""
        if not 1 <= start < self.layers:
            raise HarnessError(f"DARTS supernet tail start {start}: must be in 1..{self.layers - 1}")
        return DartsSupernetTail(list(self.cells[start:]), self.classifier, self.arch)

    def expected_input(self, start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
        return expected_input(self._layout, start, input_size)


class DartsSupernetTail(ArchitectureState, nn.Module):
    """Supernet cells from one position on, the classifier and the shared ``arch``: what a
    Tr-Supernet keeps (paper Sec. 4.3.2). Consumes the last 2 prefix outputs; ``fit_inputs`` as
    in :class:`harness.spaces.darts.network.DartsTail`."""

    inputs = 2

    def __init__(self, cells: "list[SearchCell]", classifier: nn.Linear, arch: ArchitectureWeights):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier
        self.arch = arch
        self.pre0: "nn.Module | None" = None

    def fit_inputs(self, shapes: "list[tuple[int, int, int]]") -> None:
        self.pre0 = fit_first_input(self.cells[0], shapes, affine=False)

    def forward(self, inputs: "list[torch.Tensor]", weights: "torch.Tensor | None" = None) -> torch.Tensor:
        s = run_search_cells(self.cells, inputs, self._weights(weights), pre0=self.pre0)
        return self.classifier(self.global_pooling(s).flatten(1))

    def forward_features(self, inputs: "list[torch.Tensor]", weights: "torch.Tensor | None" = None
                         ) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        run_search_cells(self.cells, inputs, self._weights(weights), feats, self.pre0)
        return feats
