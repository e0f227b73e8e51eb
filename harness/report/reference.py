"""The paper's reference values, loaded from ``reference.toml`` (package data).

* ``PAPER_RANK[(table, method)][dataset] = (KROCC, SROCC)`` -- Transfer-NAS paper Table 1
  (1000 random networks) and Table 3 (top-1000), methods ``Original`` and ``Tr-Net-5-5``;
* ``PAPER_METHOD[proxy]`` -- which paper column a harness proxy corresponds to;
* ``SELECTION_TABLE[selection]`` -- which paper table a rank selection corresponds to;
* ``NB201_REA[dataset]`` -- NB201 paper (Dong & Yang 2020, Table 5) REA test accuracy;
* ``DARTSPT_TABLE4[supernet][dataset]`` -- Transfer-NAS paper Table 4, DARTS+PT test accuracy;
* ``DARTSPT_TABLE5[supernet]["cutout" | "no_cutout"]`` -- Table 5 (DARTS space): test error, best
  error, search GPU days, GPU memory;
* ``PAPER_MEMORY`` -- Transfer-NAS paper Table 2, GPU memory while training (GB);
* ``ZERO_COST_SROCC[dataset][proxy]`` -- Abdelfattah et al. (ICLR 2021), Spearman's rho of each
  zero-cost proxy over all NB201 architectures (:func:`published_srocc`).
"""
from __future__ import annotations

from importlib import resources

import tomllib

from harness import HarnessError

REFERENCE_FILE = "reference.toml"


def load_reference() -> dict:
    """The raw TOML document."""
    src = resources.files("harness.report") / REFERENCE_FILE
    try:
        return tomllib.loads(src.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise HarnessError(f"{src}: cannot load the reference values ({' '.join(str(e).split())})") from None


_REF = load_reference()
PAPER_RANK: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    (table, method): {ds: (float(v[0]), float(v[1])) for ds, v in values.items()}
    for table, methods in _REF["rank"].items() for method, values in methods.items()}
PAPER_METHOD: dict[str, str] = dict(_REF["proxy_method"])
SELECTION_TABLE: dict[str, str] = dict(_REF["selection_table"])
NB201_REA: dict[str, str] = dict(_REF["nb201_rea"])
PAPER_MEMORY: dict[str, float] = dict(_REF["memory_table2"])
#: Transfer-NAS paper Table 4: DARTS+PT test accuracy on NB201, [supernet][dataset].
DARTSPT_TABLE4: dict[str, dict[str, float]] = {k: {ds: float(v) for ds, v in vals.items()}
                                               for k, vals in _REF["dartspt_table4"].items()}
#: Transfer-NAS paper Table 5: DARTS+PT on the DARTS space, [supernet]["cutout" | "no_cutout"][figure].
DARTSPT_TABLE5: dict[str, dict[str, dict[str, float]]] = {
    k: {c: {f: float(v) for f, v in figs.items()} for c, figs in vals.items()} for k, vals in _REF["dartspt_table5"].items()}
ZERO_COST_SROCC: dict[str, dict[str, float]] = {ds: {p: float(v) for p, v in vals.items()}
                                                for ds, vals in _REF["zero_cost_srocc"].items()}


def published_srocc(proxy: str, dataset: str) -> "float | None":
    """The published Spearman's rho of a zero-cost proxy on ``dataset`` (all NB201 archs), or None."""
    return ZERO_COST_SROCC.get(dataset, {}).get(proxy)


def paper_rank(proxy: str, selection: str, dataset: str) -> "tuple[str, str, tuple[float, float]] | None":
    """(table, method, (KROCC, SROCC)) the paper reports for this proxy / selection / dataset, or None."""
    method, table = PAPER_METHOD.get(proxy), SELECTION_TABLE.get(selection)
    vals = PAPER_RANK.get((table, method), {}).get(dataset) if method and table else None
    return (table, method, vals) if vals else None
