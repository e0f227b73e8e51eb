"""The DARTS evaluation network (reference ``cnn/model.py`` ``NetworkCIFAR``, Liu et al., ICLR 2019).

Stem Conv3x3(3 -> 3C, no bias) + BN; ``layers`` cells, the ones at ``layers // 3`` and
``2 * layers // 3`` reduction cells (channels doubled, resolution halved); every cell takes the
outputs of the two cells before it (the first cell gets the stem output twice) and outputs the
concatenation of its 4 nodes (4 x its C); an auxiliary head after cell ``2 * layers // 3``
(train mode only); global average pool + Linear. Drop-path on every non-identity op of a node
with probability ``drop_path_prob`` (set per epoch by the training loop).

In train mode with ``auxiliary=True`` ``forward`` returns ``(logits, aux_logits)`` (the training
loop adds ``auxiliary_weight`` x the auxiliary loss); otherwise the logits alone.

Spliceable (paper Sec. 3.2): every cell is a search cell (reduction cells are searched too), so
``search_positions()`` is ``0..layers-1`` and ``tail(start)`` keeps cells ``start..`` with the
heads (:class:`DartsTail`).
"""
from __future__ import annotations

import torch
from torch import nn

from harness import HarnessError
from harness.spaces.darts.genotype import Genotype, to_genotype, to_str
from harness.spaces.darts.ops import AuxiliaryHeadCIFAR, drop_path, make_op, preprocess


def layout(C: int, layers: int, stem_multiplier: int = 3, multiplier: int = 4) -> list[dict]:
    """Per cell: C_prev_prev, C_prev, C (its op width), reduction, reduction_prev, C_out, halvings
    (reductions up to and including it) -- the reference constructor's bookkeeping."""
    if C < 1 or layers < 3:
        raise HarnessError(f"DARTS network: C={C} must be >= 1 and layers={layers} >= 3 (two reduction cells)")
    cells, C_pp, C_p, C_curr, red_prev, halvings = [], stem_multiplier * C, stem_multiplier * C, C, False, 0
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            C_curr *= 2
            halvings += 1
        cells.append({"C_prev_prev": C_pp, "C_prev": C_p, "C": C_curr, "reduction": reduction,
                      "reduction_prev": red_prev, "C_out": multiplier * C_curr, "halvings": halvings})
        C_pp, C_p, red_prev = C_p, multiplier * C_curr, reduction
    return cells


class Cell(nn.Module):
    """One evaluation cell of a genotype (reference ``model.Cell``)."""

    def __init__(self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction, self.reduction_prev = reduction, reduction_prev
        self.C_prev_prev, self.C_prev, self.C = C_prev_prev, C_prev, C
        self.preprocess0 = preprocess(C_prev_prev, C, reduction_prev, affine=True)
        self.preprocess1 = preprocess(C_prev, C, False, affine=True)
        pairs = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self._indices = tuple(src for _, src in pairs)
        self._concat = tuple(concat)
        self.multiplier = len(concat)
        self._ops = nn.ModuleList(make_op(op, C, 2 if reduction and src < 2 else 1, True) for op, src in pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0,
                pre0: "nn.Module | None" = None) -> torch.Tensor:
        """``pre0`` replaces ``preprocess0`` (a Tr-Net tail whose first cell gets other inputs)."""
        states = [(pre0 or self.preprocess0)(s0), self.preprocess1(s1)]
        for step in range(len(self._ops) // 2):
            hs = []
            for k in (2 * step, 2 * step + 1):
                h = self._ops[k](states[self._indices[k]])
                if self.training and drop_prob > 0.0 and not isinstance(self._ops[k], nn.Identity):
                    h = drop_path(h, drop_prob)
                hs.append(h)
            states.append(hs[0] + hs[1])
        return torch.cat([states[i] for i in self._concat], dim=1)


def fit_first_input(cell: nn.Module, shapes: "list[tuple[int, int, int]]", affine: bool) -> "nn.Module | None":
    """A Tr-Net tail's first cell receives the last two prefix outputs (s0, s1) instead of the
    outputs of the two cells before it; s1 has the shape the cell expects (the splice checks it).
    If s0 fits the cell's own ``preprocess0`` (its channels, and twice s1's resolution exactly when
    the cell expects a reduced-away input) the cell's module is used: None. Otherwise a new
    preprocess module for s0 is returned: FactorizedReduce when s0 has twice s1's resolution,
    else ReLU-Conv1x1-BN. A single prefix output (j = 1) is used as both s0 and s1, as the DARTS
    stem output feeds the first cell twice."""
    (C0, H0, _), (_, H1, _) = shapes[0], shapes[-1]
    if H0 not in (H1, 2 * H1):
        raise HarnessError(f"DARTS tail: first input resolution {H0} is neither the second input's ({H1}) "
                           "nor twice it")
    reduce = H0 == 2 * H1
    if C0 == cell.C_prev_prev and reduce == cell.reduction_prev:
        return None
    return preprocess(C0, cell.C, reduce, affine)


class DartsTail(nn.Module):
    """Cells ``start..`` of a :class:`NetworkCIFAR` and its heads, sharing its modules: what a
    Tr-Net keeps (paper Sec. 3.2). Consumes the last 2 outputs before it (a DARTS cell reads the
    two previous cells). ``fit_inputs`` (called by the splice with the prefix's output shapes)
    gives the first cell its own s0 preprocessing when the shapes need it."""

    inputs = 2

    def __init__(self, cells: "list[Cell]", aux_at: "int | None", aux_head: "nn.Module | None",
                 classifier: nn.Linear, drop_path_prob: float):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.aux_at, self.auxiliary_head = aux_at, aux_head
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier
        self.drop_path_prob = drop_path_prob
        self.pre0: "nn.Module | None" = None

    def fit_inputs(self, shapes: "list[tuple[int, int, int]]") -> None:
        self.pre0 = fit_first_input(self.cells[0], shapes, affine=True)

    def forward(self, inputs: "list[torch.Tensor]"):
        return run_cells(self.cells, inputs, self.drop_path_prob, self.aux_at, self.auxiliary_head,
                         self.global_pooling, self.classifier, pre0=self.pre0)

    def forward_features(self, inputs: "list[torch.Tensor]") -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        run_cells(self.cells, inputs, self.drop_path_prob, self.aux_at, self.auxiliary_head,
                  self.global_pooling, self.classifier, feats, self.pre0)
        return feats


def run_cells(cells: nn.ModuleList, inputs: "list[torch.Tensor]", drop_prob: float, aux_at: "int | None",
              aux_head: "nn.Module | None", pool: nn.Module, classifier: nn.Module, feats: "list | None" = None,
              pre0: "nn.Module | None" = None):
    """Run evaluation cells on the last two of ``inputs`` (one input: used twice) and the heads;
    ``(logits, aux_logits)`` when the auxiliary head (after cell ``aux_at``) ran, else logits."""
    s0, s1 = inputs[-2] if len(inputs) > 1 else inputs[-1], inputs[-1]
    aux = None
    for k, cell in enumerate(cells):
        s0, s1 = s1, cell(s0, s1, drop_prob, pre0 if k == 0 else None)
        if feats is not None:
            feats.append(s1)
        if k == aux_at and aux_head is not None and cell.training:
            aux = aux_head(s1)
    logits = classifier(pool(s1).flatten(1))
    return (logits, aux) if aux is not None else logits


class NetworkCIFAR(nn.Module):
    """A DARTS genotype as the reference's CIFAR evaluation network.

    ``genotype``: text or :class:`Genotype`. ``C`` initial channels (36 in the paper's evaluation),
    ``layers`` cells (20), ``auxiliary`` head on/off, ``drop_path_prob`` (the loop sets it per epoch).
    """

    def __init__(self, genotype, num_classes: int = 10, C: int = 36, layers: int = 20, auxiliary: bool = True,
                 drop_path_prob: float = 0.0, stem_multiplier: int = 3):
        super().__init__()
        if num_classes < 1:
            raise HarnessError(f"DARTS network: num_classes={num_classes} must be >= 1")
        self.genotype = to_genotype(genotype)
        self.arch_str = to_str(self.genotype)
        self.C, self.layers, self.num_classes, self.auxiliary = C, layers, num_classes, auxiliary
        self.drop_path_prob = drop_path_prob
        self._layout = layout(C, layers, stem_multiplier)
        self.stem = nn.Sequential(nn.Conv2d(3, stem_multiplier * C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem_multiplier * C))
        self.cells = nn.ModuleList(
            Cell(self.genotype, s["C_prev_prev"], s["C_prev"], s["C"], s["reduction"], s["reduction_prev"])
            for s in self._layout)
        self.aux_at = 2 * layers // 3
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(self._layout[self.aux_at]["C_out"], num_classes)
        else:
            self.auxiliary_head = None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self._layout[-1]["C_out"], num_classes)

    def forward(self, x: torch.Tensor):
        return run_cells(self.cells, [self.stem(x)], self.drop_path_prob, self.aux_at,
                         self.auxiliary_head if self.auxiliary else None, self.global_pooling, self.classifier)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every cell, in order."""
        feats: list[torch.Tensor] = []
        run_cells(self.cells, [self.stem(x)], self.drop_path_prob, self.aux_at,
                  self.auxiliary_head if self.auxiliary else None, self.global_pooling, self.classifier, feats)
        return feats

    def search_positions(self) -> list[int]:
        """Every cell is a search cell: positions 0..layers-1."""
        return list(range(self.layers))

    def tail(self, start: int) -> DartsTail:
        """Cells ``start..`` and the heads, sharing this network's modules."""
        if not 1 <= start < self.layers:
            raise HarnessError(f"DARTS tail start {start}: must be in 1..{self.layers - 1}")
        keeps_aux = self.auxiliary and self.aux_at >= start
        tail = DartsTail(list(self.cells[start:]), self.aux_at - start if keeps_aux else None,
                         self.auxiliary_head if keeps_aux else None, self.classifier, self.drop_path_prob)
        return tail.train(self.training)

    def expected_input(self, start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
        """(C, H, W) of the output of cell ``start - 1``: the s1 input of cell ``start``."""
        return expected_input(self._layout, start, input_size)

    def extra_repr(self) -> str:
        return f"C={self.C}, layers={self.layers}, auxiliary={self.auxiliary}"


def expected_input(cells: list[dict], start: int, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
    if not 1 <= start < len(cells):
        raise HarnessError(f"DARTS tail start {start}: must be in 1..{len(cells) - 1}")
    prev = cells[start - 1]
    _, H, W = input_size
    return prev["C_out"], H // 2 ** prev["halvings"], W // 2 ** prev["halvings"]
