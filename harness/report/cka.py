"""The ``cka`` table as figures (paper Figs. 1 and 2), drawn from its rows alone.

:func:`harness.analysis.cka_table.read_cka` takes a table's latest batch back into matrices; :func:`write_cka_figures`
draws ``cka_grid.png`` (one panel per network plus the mean), ``cka_mean.png`` (the mean alone,
values written in the squares) and ``cka_summary.md`` (the mean's leading diagonal and the
splice the transfer-depth rule picks at the estimator's calibrated threshold, outlined in red on
the mean). A CKA run's figures (:func:`write_run_figures`, called by the CLI after a ``cka`` kind)
and ``harness leaderboard`` (:func:`write_cka_reports`, for ``<results>/cka``) both draw through
here, so a refresh redraws committed heatmaps exactly as a new run would.

Rows written before the ``estimator`` column existed came from the unbiased minibatch estimator
(the only one then); rows without ``cell_shape`` / ``block_shape`` cannot say which pairs splice,
so their summary names no splice.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.cka_table import CkaTable, read_cka
from harness.report.heatmap import plot_cka_grid, plot_cka_heatmap
from harness.store.files import write_text
from harness.store.markdown import markdown_table, num
from harness.store.results import ResultsStore
from harness.transfer.depth import choose_transfer_depth, default_threshold, shape_compatible, strongest_paths

GRID_PNG, MEAN_PNG, SUMMARY_MD = "cka_grid.png", "cka_mean.png", "cka_summary.md"
HEATMAPS = "cka-heatmaps"
SPACE_LABELS = {"nb201": "NB201", "darts": "DARTS"}
ESTIMATOR_LABELS = {"eq1": "Eq. (1), full data", "unbiased_minibatch": "unbiased HSIC, minibatch"}


def splice_choice(table: CkaTable) -> "tuple[object | None, str]":
    """The transfer-depth rule on the mean at the estimator's calibrated threshold ->
    (TransferChoice or None, one line saying what was chosen or why nothing was)."""
    threshold = default_threshold(table.estimator)
    shapes = table.shapes()
    if shapes is None:
        return None, "no splice computed: these rows do not record the cell and block shapes"
    try:
        choice = choose_transfer_depth(table.mean, threshold, estimator=table.estimator,
                                       compatible=shape_compatible(*shapes))
    except HarnessError as exc:
        return None, str(exc).removeprefix("transfer depth: ")
    return choice, (f"Tr-Net-{choice.i}-{choice.j}: CKA {choice.cka:.3f} at the splice, weakest pair on the path "
                    f"{choice.min_cka:.3f} >= threshold {threshold:g}")


def _summary(table: CkaTable, title: str, splice_line: str) -> str:
    m = table.mean
    rows, cols = m.shape
    best, _ = strongest_paths(m)
    lines = []
    for cell in range(1, rows + 1):
        diagonal = max(1, min(cols, round(cell * cols / rows)))  # the block at the same relative depth
        finite = np.where(np.isfinite(m[cell - 1]), m[cell - 1], -np.inf)
        top = int(np.argmax(finite)) + 1
        path = best[cell - 1].max()
        lines.append([cell, diagonal, num(m[cell - 1, diagonal - 1], 3), top, num(m[cell - 1, top - 1], 3),
                      num(path if np.isfinite(path) else np.nan, 3)])
    out = [f"# {title}", f"Estimator: `{table.estimator}` ({ESTIMATOR_LABELS.get(table.estimator, '?')}); "
           f"networks: {', '.join(table.names)}; the mean is over {sum(k == 'nb201' for k in table.kinds) or len(table.names)}.",
           markdown_table(["cell", "diagonal block", "CKA (diagonal)", "most similar block", "CKA (most similar)",
                           "strongest path to this cell"],
                          lines),
           "Diagonal block = round(cell x blocks / cells); strongest path = the weakest pair of the best monotone "
           "cell-to-block path ending at this cell (harness.transfer.depth).",
           f"Transfer-depth rule at `{table.estimator}`'s threshold {default_threshold(table.estimator):g}: {splice_line}."]
    return "\n\n".join(out) + "\n"


def write_cka_figures(table: CkaTable, out_dir: "str | Path") -> list[Path]:
    """``cka_grid.png``, ``cka_mean.png`` and ``cka_summary.md`` in ``out_dir`` (each atomic)."""
    out_dir = Path(out_dir)
    backbone = table.first("backbone_name") or "backbone"
    n_eval, split = table.first("n_eval"), table.first("eval_split", "eval")
    images = f"{int(n_eval)} {split} images" if n_eval is not None else f"{split} images"
    estimator = ESTIMATOR_LABELS.get(table.estimator, table.estimator)
    about = f"{table.first('dataset', '?')}, {images}, {estimator}"
    nb201 = sum(k == "nb201" for k in table.kinds)
    mean_title = (f"mean of {nb201} NB201 networks" if nb201 else "mean") if len(table.names) > 1 or nb201 \
        else table.names[0]
    space = SPACE_LABELS.get(table.first("space", "nb201"), table.first("space", "nb201"))
    cells = f"{space} {'supernet ' if not nb201 else ''}cell"
    labels = {"row_label": cells, "col_label": f"{backbone} block"}
    choice, splice_line = splice_choice(table)
    mark = (choice.i, choice.j) if choice is not None else None
    titles = [_panel_title(table, name) for name in table.names]
    several = len(table.matrices) > 1  # one network: its panel is the mean
    grid = plot_cka_grid(table.matrices + [table.mean] * several, out_dir / GRID_PNG,
                         titles=titles + [mean_title] * several,
                         add_mean=False, suptitle=f"CKA, {backbone} blocks vs {cells}s ({about})", **labels)
    mean = plot_cka_heatmap(table.mean, out_dir / MEAN_PNG, title=f"CKA: {mean_title} vs {backbone}\n({about})",
                            mark=mark, **labels)
    summary = write_text(_summary(table, f"CKA: {mean_title} vs {backbone} ({about})", splice_line),
                         out_dir / SUMMARY_MD)
    return [grid, mean, summary]


def _panel_title(table: CkaTable, name: str) -> str:
    rows = table.rows[table.rows["network"] == name]
    acc = rows["test_acc"].iloc[0] if "test_acc" in rows.columns else None
    ok = isinstance(acc, (int, float, np.floating)) and np.isfinite(acc)
    return f"{name}, test {acc:.1f}%" if ok else name


def write_cka_reports(results_dir: "str | Path") -> list[Path]:
    """Redraw ``<results>/cka-heatmaps`` from the results store's ``cka`` table (nothing without one)."""
    store = ResultsStore(results_dir)
    if not store.parts("cka"):
        return []
    return write_cka_figures(read_cka(store.path("cka")), Path(results_dir) / HEATMAPS)


def write_run_figures(runs: pd.DataFrame) -> list[Path]:
    """The figures of a ``cka`` kind's run: one row per dataset naming the Parquet ``part`` it wrote
    and the ``out`` folder its figures go to."""
    return [path for part, out in zip(runs["part"], runs["out"]) for path in write_cka_figures(read_cka(part), out)]
