"""Markdown and LaTeX tables and number formatting for reports.

Missing or non-finite numbers print as an en dash ("–"). MB = 10^6 bytes.
"""
from __future__ import annotations

import re

import numpy as np

DASH = "–"
_NUMERIC = re.compile(r"^[-–+]?[\d.,]+")


def _finite(x) -> bool:
    try:
        return x is not None and bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


def _numeric(rows: list[list], i: int) -> bool:
    """Column ``i`` holds only numbers (or "–"): it aligns right."""
    return bool(rows) and all(_NUMERIC.match(str(r[i])) or str(r[i]) == DASH for r in rows)


def markdown_table(headers: list, rows: list[list]) -> str:
    """A GitHub-markdown table; columns whose cells are all numbers (or "–") align right."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |",
             "|" + "|".join("---:" if _numeric(rows, i) else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--",
          "×": r"$\times$", "·": r"$\cdot$", "χ": r"$\chi$", "²": r"$^2$"}


def latex_table(headers: list, rows: list[list]) -> str:
    """The same table as :func:`markdown_table` as a LaTeX ``tabular`` with booktabs rules
    (``\\usepackage{booktabs}``); text escaped, number columns right-aligned."""
    def cell(x) -> str:
        return "".join(_LATEX.get(c, c) for c in str(x))

    spec = "".join("r" if _numeric(rows, i) else "l" for i in range(len(headers)))
    lines = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(map(cell, headers)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(cell, r)) + r" \\" for r in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def num(x, digits: int = 2) -> str:
    """``1,234.57``; "–" when missing."""
    return f"{float(x):,.{digits}f}" if _finite(x) else DASH


def pm(mean, std, digits: int = 2) -> str:
    """``mean ± std``; "–" when the mean is missing."""
    return f"{float(mean):.{digits}f} ± {float(std):.{digits}f}" if _finite(mean) else DASH


def mb(x) -> str:
    """Bytes as MB (10^6), one decimal."""
    return num(float(x) / 1e6, 1) if _finite(x) else DASH


def seconds(x) -> str:
    """``0.50 ms`` below a second, ``12.3 s`` below ten minutes, then ``12.5 min``."""
    if not _finite(x):
        return DASH
    x = float(x)
    if x < 1:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.1f} s" if x < 600 else f"{x / 60:.1f} min"


def ratio(a, b) -> str:
    """``a / b`` as ``2.00×``; "–" when either is missing or ``b`` is 0."""
    return f"{float(a) / float(b):.2f}×" if _finite(a) and _finite(b) and float(b) != 0 else DASH


def ci(est, lo, hi, digits: int = 2) -> str:
    """``est [lo, hi]``; ``est`` alone (with a note mark) when the row has no interval."""
    if not _finite(est):
        return "–"
    if not (_finite(lo) and _finite(hi)):
        return f"{est:.{digits}f} (no CI)"
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
