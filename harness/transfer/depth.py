"""Automatic transfer depth: choose Tr-Net-i-j's (i, j) from a CKA matrix.

The paper fixes i = j = 5 by hand and leaves choosing them as future work (footnote 1: "a proper
metric will tell us how many pre-trained layers should be used"). Here the CKA matrix of
Fig. 1 decides. Rows are NAS cells (i = 1..L), columns backbone blocks (j = 1..K), both 1-based.

The rule
--------
1. **Monotone path.** A path to (i, j) assigns each cell 1..i a block,
   j(1) <= j(2) <= ... <= j(i) = j (depth order is kept; several cells may share one block when
   the NAS net is deeper). Its
   strength is its weakest link, min over c of CKA[c, j(c)]. For every (i, j) the strongest such
   path is found exactly by dynamic programming:
   ``best[1, j] = CKA[1, j]``; ``best[i, j] = min(CKA[i, j], max_{j' <= j} best[i-1, j'])``.
   This is the "leading diagonal" of Fig. 1: the best-matching pairs, walked in depth order.
2. **Valid pairs.** (i, j) is valid when ``best[i, j] >= threshold`` -- every replaced cell has a
   pre-trained counterpart at least that similar, not just the last one -- when
   ``i <= max_i`` and ``j <= max_j`` (paper Sec. 3.2: i and j lie in 1..L-1, so at least one cell
   is still trained), and when ``compatible(i, j)`` holds (the splice must fit: e.g. for NB201,
   cell i's and block j's outputs must have the same shape).
3. **Choice.** The deepest valid i -- replacing more cells saves more memory and time, and the
   threshold already guards against replacing cells whose features differ -- and for that i the
   block j most similar to cell i (highest CKA[i, j]), because the remaining cells i+1.. are fed
   block j's output in place of cell i's. Ties go to the block nearest the diagonal
   (j = i K / L), then to the smaller j.

Calibration
-----------
The threshold depends on the estimator (:data:`CKA_ESTIMATORS`; Eq. (1)'s biased HSIC inflates
CKA when features outnumber examples: independent Gaussian features, n = 500, p = 16,384, give
0.97 with Eq. (1) and 0.005 unbiased). Each default in :data:`DEFAULT_THRESHOLDS` is set so the
rule picks the paper's depth, i = 5 for NB201 with ResNet-32 (Sec. 4.1), on measured matrices:
``scripts/calibrate_cka_threshold.py`` runs ``benchmarks/nb201-cka.toml`` (default sizes: the
embedded CIFAR-10 images, ResNet-32 pre-trained 30 epochs to 48% validation accuracy, 3 random
architectures trained 12 epochs to 30-38% test accuracy, 500 validation images) with Eq. (1),
then on the same networks and images with the unbiased estimator, and for each mean matrix
computes the thresholds for which the rule picks cell 5 (:func:`thresholds_choosing`, splices
restricted by shape). Measured on a 2-core CPU: Eq. (1) (0.648, 0.736], unbiased (0.655, 0.751]
(the strongest path to cell 5 vs the strongest to any deeper splicable cell, which is in the
third stage); each default is the interval's midpoint, rounded: 0.69 and 0.70. For reference, the
paper's pair (cell 5, block 5) has CKA 0.204 (Eq. (1)) and 0.227 (unbiased), the rejected
Tr-Net-10-10 (Fig. 7) 0.136 and 0.143. On these trained feature maps the two estimators agree
closely (mean |difference| 0.019, at most 0.055 over the 225 pairs): real maps are far from the
isotropic random case. Caveats: networks this short of convergence resemble the ResNet's first
block everywhere, so at i = 5 the rule's most similar block is block 1 (Tr-Net-5-1), not the
paper's j = 5, and no threshold gives (5, 5) on these matrices (CKA(5, 5) is below the paths to
cells 6-10); recalibrate with ``--full`` on a GPU before relying on the automatic depth. The
matrices and intervals are kept in ``tests/golden/cka_calibration.json``, which a test checks the
defaults against.

NaN entries (a layer with no variance, e.g. an all-``none`` cell) count as no similarity.
No valid pair raises :class:`HarnessError` quoting the best reachable value and the threshold.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from harness import HarnessError

#: CKA estimators (harness.analysis.cka): the paper's Eq. (1) over the whole evaluation set, and
#: the unbiased HSIC of Song et al. (2012) summed over minibatches (Nguyen et al. 2021).
CKA_ESTIMATORS = ("eq1", "unbiased_minibatch")
#: The paper's: Fig. 1 is Eq. (1) over a set of images.
DEFAULT_ESTIMATOR = "eq1"
#: Similarity every replaced cell must keep with its block, per estimator (their scales differ;
#: see "Calibration" in the module docstring).
DEFAULT_THRESHOLDS = {"eq1": 0.69, "unbiased_minibatch": 0.70}


def check_estimator(estimator) -> str:
    """``estimator`` if it is one of :data:`CKA_ESTIMATORS`, else a :class:`HarnessError`."""
    if estimator not in CKA_ESTIMATORS:
        raise HarnessError(f"CKA estimator {estimator!r}: expected one of {', '.join(CKA_ESTIMATORS)}")
    return estimator


def default_threshold(estimator: str) -> float:
    """The calibrated threshold of ``estimator`` (one of :data:`CKA_ESTIMATORS`)."""
    return DEFAULT_THRESHOLDS[check_estimator(estimator)]


@dataclass(frozen=True)
class TransferChoice:
    """The chosen Tr-Net-i-j and the CKA values behind it (1-based cell / block numbers)."""

    i: int
    j: int
    path: tuple[tuple[int, int], ...]   # (cell, block) for cells 1..i
    values: tuple[float, ...]           # CKA[cell, block] along ``path``
    threshold: float
    estimator: str                      # which CKA the matrix holds (CKA_ESTIMATORS)

    @property
    def cka(self) -> float:
        """CKA between cell i and block j (the splice point)."""
        return self.values[-1]

    @property
    def min_cka(self) -> float:
        """The weakest link on the path (>= threshold by construction)."""
        return min(self.values)

    def as_record(self) -> dict:
        """Flat columns for a run's Parquet row; the path as JSON ``[[cell, block, cka], ...]``."""
        return {
            "transfer_i": self.i,
            "transfer_j": self.j,
            "transfer_threshold": self.threshold,
            "transfer_estimator": self.estimator,
            "transfer_cka": self.cka,
            "transfer_min_cka": self.min_cka,
            "transfer_path": json.dumps([[c, b, v] for (c, b), v in zip(self.path, self.values)]),
        }


def shape_compatible(cell_shapes: Sequence, block_shapes: Sequence) -> Callable[[int, int], bool]:
    """``compatible(i, j)`` (1-based): 1 <= i <= L-1, 1 <= j <= K-1 (at least one cell still
    trained, at least one block left out) and cell i's output shape equals block j's -- what a
    splice of block j's output into cell i+1 needs. Shapes are per example, e.g. (16, 32, 32)."""
    cells, blocks = [tuple(c) for c in cell_shapes], [tuple(b) for b in block_shapes]

    def compatible(i: int, j: int) -> bool:
        return 1 <= i <= len(cells) - 1 and 1 <= j <= len(blocks) - 1 and cells[i - 1] == blocks[j - 1]

    return compatible


def check_threshold(threshold) -> float:
    """The CKA every replaced cell must keep: a number in (0, 1] (0 would accept any pair)."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(threshold, bool) or not 0.0 < value <= 1.0:  # also rejects NaN
        raise HarnessError(f"transfer threshold: must be a number in (0, 1], got {threshold!r}")
    return value


def _as_matrix(matrix) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise HarnessError(f"transfer depth: the CKA matrix must be 2-D (cells x blocks), got shape {m.shape}")
    if np.isinf(m).any():
        raise HarnessError("transfer depth: the CKA matrix has infinite entries")
    return np.where(np.isnan(m), -np.inf, m)  # no variance -> never similar enough


def strongest_paths(matrix) -> tuple[np.ndarray, np.ndarray]:
    """``best[i, j]`` (0-based) = the weakest link of the strongest monotone path to (i, j), and
    ``parent[i, j]`` = the block that path uses for cell i-1 (-1 on the first row)."""
    return _strongest_paths(_as_matrix(matrix))


def _strongest_paths(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = m.shape
    best = np.empty_like(m)
    parent = np.full(m.shape, -1, dtype=np.int64)
    best[0] = m[0]
    for i in range(1, rows):
        prefix_best, prefix_arg = -np.inf, 0
        for j in range(cols):
            if best[i - 1, j] > prefix_best:  # strict: ties keep the shallower block
                prefix_best, prefix_arg = best[i - 1, j], j
            best[i, j] = min(m[i, j], prefix_best)
            parent[i, j] = prefix_arg
    return best, parent


def thresholds_choosing(matrix, i: int, *, compatible: Optional[Callable[[int, int], bool]] = None,
                        max_i: Optional[int] = None, max_j: Optional[int] = None) -> Optional[tuple[float, float]]:
    """The thresholds t for which :func:`choose_transfer_depth` picks cell ``i`` (1-based), as the
    half-open interval ``(low, high]``, or None when there is none.

    With ``reach(c)`` = the strongest path to cell c over its eligible blocks, the rule picks the
    deepest c with ``reach(c) >= t``; so ``high = reach(i)`` and ``low`` = the largest reach of a
    deeper eligible cell (0 when there is none). How the default thresholds were calibrated.
    """
    m = _as_matrix(matrix)
    rows, cols = m.shape
    max_i = rows - 1 if max_i is None else max_i
    max_j = cols - 1 if max_j is None else max_j
    if not 1 <= i <= max_i:
        raise HarnessError(f"transfer depth: cell {i} is outside 1..{max_i}")
    best, _ = _strongest_paths(m)
    reach = [max((best[c - 1, j - 1] for j in range(1, max_j + 1) if compatible is None or compatible(c, j)),
                 default=-np.inf) for c in range(1, max_i + 1)]
    high = reach[i - 1]
    low = max([0.0, *reach[i:]])
    return (float(low), float(high)) if high > low else None


def choose_transfer_depth(matrix, threshold: Optional[float] = None, *, estimator: str = DEFAULT_ESTIMATOR,
                          compatible: Optional[Callable[[int, int], bool]] = None,
                          max_i: Optional[int] = None, max_j: Optional[int] = None) -> TransferChoice:
    """Propose Tr-Net-i-j from a (cells x blocks) CKA matrix by the rule in this module's docstring.

    ``threshold`` None = ``estimator``'s calibrated default (:data:`DEFAULT_THRESHOLDS`).
    ``compatible(i, j)`` (1-based) restricts the splice point; ``max_i`` / ``max_j`` default to
    rows - 1 / columns - 1 (paper: i, j in 1..L-1).
    """
    m = _as_matrix(matrix)
    rows, cols = m.shape
    default = default_threshold(estimator)  # also rejects an unknown estimator
    threshold = check_threshold(default if threshold is None else threshold)
    max_i = rows - 1 if max_i is None else max_i
    max_j = cols - 1 if max_j is None else max_j
    if not 1 <= max_i <= rows:
        raise HarnessError(f"transfer depth: max_i must be in 1..{rows} for a matrix with {rows} cells, got {max_i}")
    if not 1 <= max_j <= cols:
        raise HarnessError(f"transfer depth: max_j must be in 1..{cols} for a matrix with {cols} blocks, got {max_j}")

    best, parent = _strongest_paths(m)
    eligible = [(i, j) for i in range(1, max_i + 1) for j in range(1, max_j + 1)
                if compatible is None or compatible(i, j)]
    if not eligible:
        raise HarnessError(f"transfer depth: no cell/block pair with i <= {max_i}, j <= {max_j} is compatible")
    valid = [(i, j) for i, j in eligible if best[i - 1, j - 1] >= threshold]
    if not valid:
        i, j = max(eligible, key=lambda p: (best[p[0] - 1, p[1] - 1], p[0]))
        reach = best[i - 1, j - 1]
        shown = "nan" if reach == -np.inf else f"{reach:.4f}"
        raise HarnessError(
            f"transfer depth: no {'compatible ' if compatible else ''}cell/block pair keeps CKA >= "
            f"{threshold:g} along the diagonal; the best is {shown} (cell {i}, block {j}) "
            f"-- lower the threshold or pick i, j by hand")

    deepest = max(i for i, _ in valid)
    # Highest CKA at the splice; ties -> the block nearest the diagonal, then the smaller j.
    diagonal = deepest * cols / rows
    i, j = deepest, max((j for i_, j in valid if i_ == deepest),
                        key=lambda b: (m[deepest - 1, b - 1], -abs(b - diagonal), -b))

    path = [(i, j)]
    while path[-1][0] > 1:
        cell, block = path[-1]
        path.append((cell - 1, int(parent[cell - 1, block - 1]) + 1))
    path.reverse()
    values = tuple(float(m[c - 1, b - 1]) for c, b in path)
    return TransferChoice(i=i, j=j, path=tuple(path), values=values, threshold=float(threshold), estimator=estimator)
