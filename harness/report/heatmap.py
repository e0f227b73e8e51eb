"""CKA heatmaps like the paper's Figs. 1 and 2: backbone blocks on x, NAS cells on y.

Colour scale fixed to 0..1 (with a colorbar) so panels and runs compare at a glance; axes are
1-based, matching Tr-Net-i-j's i (cells) and j (blocks); cell 1 / block 1 sit at the bottom left,
so the leading diagonal runs up and to the right. NaN (a layer without variance) is drawn grey.

Legibility: a single heatmap writes its values in the squares up to ``ANNOTATE_MAX_SIDE`` rows or
columns, giving each square room for a two-decimal number at a legible size (a 15 x 15 NB201 vs
ResNet-32 matrix: 0.55 in squares, 7 pt text). A grid of several panels writes values only up to
``GRID_ANNOTATE_MAX_SIDE`` (beyond, its panels are colour only: the numbers are in the mean's
own heatmap and :mod:`harness.report.cka`'s markdown summary), and lays panels out near-square.

Uses matplotlib's object API on the Agg canvas (no pyplot global state), and writes the PNG
atomically through :func:`harness.store.files.write_png`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from harness import HarnessError
from harness.analysis.cka_table import as_matrix, mean_matrix
from harness.store.files import write_png

#: Write values into the squares only up to this many rows/columns (beyond, text is unreadable).
ANNOTATE_MAX_SIDE = 20
#: The same for each panel of a grid (smaller squares, several panels side by side).
GRID_ANNOTATE_MAX_SIDE = 8
_CMAP = "viridis"
_INCHES_PER_SQUARE = 0.42
#: Squares big enough for "0.00" at _annotation_size(side) points.
_INCHES_PER_ANNOTATED_SQUARE = 0.55


def _annotation_size(side: int) -> float:
    """Font size (pt) of the values in a matrix whose longer side is ``side``."""
    return 9.0 if side <= 8 else 7.5 if side <= 12 else 7.0


def _ticks(n: int) -> list[int]:
    step = 1 if n <= ANNOTATE_MAX_SIDE else int(np.ceil(n / ANNOTATE_MAX_SIDE))
    return list(range(1, n + 1, step))


def _draw(ax, m: np.ndarray, *, row_label: str, col_label: str, title: Optional[str],
          annotate: bool, mark: Optional[tuple[int, int]]):
    """One heatmap panel on ``ax``; returns the image (for a colorbar)."""
    rows, cols = m.shape
    cmap = matplotlib.colormaps[_CMAP].with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0.0, vmax=1.0, origin="lower",
                      extent=(0.5, cols + 0.5, 0.5, rows + 0.5), aspect="equal", interpolation="nearest")
    ax.set_xticks(_ticks(cols))
    ax.set_yticks(_ticks(rows))
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    if title:
        ax.set_title(title, fontsize=10)
    if annotate:
        size = _annotation_size(max(rows, cols))
        for r in range(rows):
            for c in range(cols):
                value = m[r, c]
                text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
                # Dark text on the bright (yellow) end of viridis, light text elsewhere.
                colour = "black" if np.isfinite(value) and value > 0.6 else "white"
                ax.text(c + 1, r + 1, text, ha="center", va="center", fontsize=size, color=colour)
    if mark is not None:
        i, j = mark
        if not (1 <= i <= rows and 1 <= j <= cols):
            raise HarnessError(f"heatmap: mark (cell {i}, block {j}) is outside the {rows} x {cols} matrix")
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    return image




def plot_cka_heatmap(matrix, path, *, row_label: str = "cell", col_label: str = "block",
                     title: Optional[str] = "CKA", annotate: bool = True,
                     mark: Optional[tuple[int, int]] = None) -> Path:
    """Draw one CKA matrix (rows = cells on y, columns = blocks on x) to a PNG at ``path``.

    ``annotate`` writes each value when both sides have at most ``ANNOTATE_MAX_SIDE`` entries;
    ``mark=(i, j)`` outlines one pair in red (e.g. an automatically chosen transfer depth).
    """
    m = as_matrix(matrix, "heatmap")
    rows, cols = m.shape
    annotate = annotate and max(rows, cols) <= ANNOTATE_MAX_SIDE
    square = _INCHES_PER_ANNOTATED_SQUARE if annotate and max(rows, cols) > 8 else _INCHES_PER_SQUARE
    fig = Figure(figsize=(max(3.5, cols * square + 1.8), max(3.0, rows * square + 1.3)), layout="constrained")
    ax = fig.add_subplot()
    image = _draw(ax, m, row_label=row_label, col_label=col_label, title=title, annotate=annotate, mark=mark)
    fig.colorbar(image, ax=ax, label="CKA", fraction=0.04, pad=0.02)
    return write_png(fig, path, dpi=150)


def plot_cka_grid(matrices: Sequence, path, *, titles: Optional[Sequence[str]] = None,
                  add_mean: bool = True, row_label: str = "cell", col_label: str = "block",
                  annotate: bool = True, ncols: Optional[int] = None, suptitle: Optional[str] = None,
                  mark: Optional[tuple[int, int]] = None) -> Path:
    """Several CKA matrices in one PNG, one panel each, plus (``add_mean``) a last panel with their
    mean, like the paper's Fig. 1 (three networks and the average over many). One shared colorbar.
    ``mark`` outlines (i, j) on the mean panel (or on every panel when there is no mean).
    ``ncols`` None: a near-square
    layout (4 panels: 2 x 2). Values are written only in panels of at most
    ``GRID_ANNOTATE_MAX_SIDE`` rows and columns.
    """
    mats = [as_matrix(m, f"matrix {k}") for k, m in enumerate(matrices)]
    if not mats:
        raise HarnessError("heatmap grid: no matrices given")
    titles = list(titles) if titles is not None else [f"network {k + 1}" for k in range(len(mats))]
    if len(titles) != len(mats):
        raise HarnessError(f"heatmap grid: {len(titles)} titles for {len(mats)} matrices")
    if ncols is None:
        ncols = int(np.ceil(np.sqrt(len(mats) + add_mean)))
    if ncols < 1:
        raise HarnessError(f"heatmap grid: ncols must be >= 1, got {ncols}")
    if add_mean:
        mats.append(mean_matrix(mats))
        titles.append(f"mean of {len(mats) - 1}")
    panels = len(mats)
    ncols = min(ncols, panels)
    nrows = -(-panels // ncols)
    rows, cols = max(m.shape[0] for m in mats), max(m.shape[1] for m in mats)
    annotate = annotate and max(rows, cols) <= GRID_ANNOTATE_MAX_SIDE
    panel_w, panel_h = max(3.0, cols * _INCHES_PER_SQUARE + 1.0), max(2.6, rows * _INCHES_PER_SQUARE + 0.9)
    fig = Figure(figsize=(ncols * panel_w + 1.2, nrows * panel_h + (0.5 if suptitle else 0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= panels:
            ax.set_axis_off()
            continue
        panel_mark = mark if (not add_mean or k == panels - 1) else None
        image = _draw(ax, mats[k], row_label=row_label, col_label=col_label, title=titles[k],
                      annotate=annotate, mark=panel_mark)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="CKA", shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    return write_png(fig, path, dpi=150)
