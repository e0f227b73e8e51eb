"""Rank correlation of a proxy against NB201's 200-epoch ground truth (paper Tables 1 and 3).

Two selections of architectures:

* ``random``: ``sample`` architectures drawn uniformly without replacement, ``draws`` times
  (draw ``d`` uses ``numpy.random.default_rng([seed, d])``); mean and std over draws. The paper's
  Table 1 reports one draw of 1,000, not a mean: the first draw's values are kept beside the mean
  (``krocc_single``, ``srocc_single``, drawn with ``single_draw_seed`` = ``[seed, 0]``).
* ``top``: the ``top_k`` best by ground truth. Ties at the boundary are handled by ``ties``:
  ``"drop"`` (default) keeps every architecture strictly better than the k-th value and adds the
  boundary group only if all of it fits within k -- the set never depends on an arbitrary order,
  and n may come out a little below k (CIFAR-10: six tie at 93.185, n = 997); ``"stable"`` breaks
  ties by benchmark index (exactly k); ``"include"`` keeps the whole boundary group (n >= k).

Kendall's tau is tau-b (``scipy.stats.kendalltau``), Spearman's rho ``scipy.stats.spearmanr``.

Every row carries a 95% bootstrap interval over its architectures (:func:`harness.stats.rank_interval`,
seeded with ``seed``): ``krocc_lo`` / ``krocc_hi`` and ``srocc_lo`` / ``srocc_hi`` bound the
single-draw values (draw 0 of a random sample, or the fixed selection), i.e. the uncertainty of
one selection of n architectures, which is what the paper reports.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import kendalltau, spearmanr

from harness import HarnessError
from harness.stats import LEVEL, RESAMPLES, paired_rank_difference, rank_interval, verdict

TIES = ("drop", "stable", "include")
#: Which architectures a rank benchmark trains its training proxies on (kind ``rank``, ``train_selections``):
#: ``random`` = a seeded random draw of ``train.archs``; ``ordered`` = the first ``train.archs`` of a
#: seeded random order of the whole space (a larger ``archs`` keeps the earlier ones, so N can grow
#: run after run); ``top_k`` = the best by ground truth.
TRAIN_SELECTIONS = ("random", "ordered", "top_k")


@dataclass
class RankResult:
    dataset: str
    proxy: str
    selection: str
    n: int
    draws: int
    krocc: float
    krocc_std: float
    srocc: float
    srocc_std: float
    seed: int
    wall_s: float
    krocc_single: float     # draw 0 alone (the paper's one draw); = krocc for a fixed selection
    srocc_single: float
    single_draw_seed: str   # numpy.random.default_rng seed of draw 0, "[seed, 0]"; "" for a fixed selection
    krocc_lo: float         # 95% bootstrap interval of krocc_single over its architectures
    krocc_hi: float
    srocc_lo: float
    srocc_hi: float
    ci_level: float
    ci_resamples: int
    selected: np.ndarray = field(default=None, repr=False, compare=False)  # indices of the single draw

    def row(self) -> dict:
        out = asdict(self)
        del out["selected"]
        return out


def correlations(proxy: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(Kendall tau-b, Spearman rho); NaN-free inputs of equal length >= 2 required."""
    proxy, truth = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    if proxy.shape != truth.shape or proxy.ndim != 1 or len(proxy) < 2:
        raise HarnessError(f"rank correlation needs two equal-length vectors of >= 2 values, got {proxy.shape} and {truth.shape}")
    if np.isnan(proxy).any() or np.isnan(truth).any():
        raise HarnessError("rank correlation: proxy or ground truth contains NaN")
    return float(kendalltau(proxy, truth).statistic), float(spearmanr(proxy, truth).statistic)


def top_k(truth: np.ndarray, k: int, ties: str = "drop") -> np.ndarray:
    """Indices of the top-k by ground truth (see the module docstring for ``ties``)."""
    if not 1 <= k <= len(truth):
        raise HarnessError(f"top-k {k}: must be in 1..{len(truth)}")
    if ties not in TIES:
        raise HarnessError(f"ties {ties!r}: expected one of {', '.join(TIES)}")
    order = np.argsort(-truth, kind="stable")
    if ties == "stable":
        return np.sort(order[:k])
    boundary = truth[order[k - 1]]
    at_or_above = np.flatnonzero(truth >= boundary)
    if ties == "include" or len(at_or_above) <= k:
        return at_or_above
    return np.flatnonzero(truth > boundary)


def rank_proxy(proxy: np.ndarray, truth: np.ndarray, *, dataset: str, proxy_name: str,
               sample: "int | None" = None, draws: int = 20, top: "int | None" = None,
               ties: str = "drop", seed: int = 0, resamples: int = RESAMPLES) -> RankResult:
    """Rank correlation over a random sample (mean/std over draws) or the top-k by ground truth,
    with the bootstrap interval of the single draw (``resamples`` = 0: no interval, NaN bounds).

    ``proxy`` may contain NaN for architectures it has no value for (e.g. recorded training runs);
    those are left out of the selection before sampling.
    """
    t0 = time.perf_counter()
    known = np.flatnonzero(~np.isnan(proxy))

    def interval(sel: np.ndarray) -> tuple:
        iv = rank_interval(proxy[sel], truth[sel], seed=seed, resamples=resamples)
        return iv["krocc"].low, iv["krocc"].high, iv["srocc"].low, iv["srocc"].high, LEVEL, resamples

    if top is not None:
        sel = np.intersect1d(top_k(truth, top, ties), known)
        tau, rho = correlations(proxy[sel], truth[sel])
        return RankResult(dataset, proxy_name, f"top-{top}", len(sel), 1, tau, 0.0, rho, 0.0, seed,
                          time.perf_counter() - t0, tau, rho, "", *interval(sel), sel)
    n = len(known) if sample is None else sample
    if not 2 <= n <= len(known):
        raise HarnessError(f"sample {n}: must be in 2..{len(known)} (architectures with a proxy value)")
    if draws < 1:
        raise HarnessError(f"draws {draws}: must be >= 1")
    if n == len(known):
        draws = 1  # every draw would select the same set
    taus, rhos, first = [], [], None
    for d in range(draws):
        sel = np.random.default_rng([seed, d]).choice(known, size=n, replace=False)
        first = sel if first is None else first
        tau, rho = correlations(proxy[sel], truth[sel])
        taus.append(tau)
        rhos.append(rho)
    random = n < len(known)
    label = f"random-{n}" if random else f"all-{n}"
    return RankResult(dataset, proxy_name, label, n, draws, float(np.mean(taus)), float(np.std(taus)),
                      float(np.mean(rhos)), float(np.std(rhos)), seed, time.perf_counter() - t0,
                      taus[0], rhos[0], f"[{seed}, 0]" if random else "", *interval(first), np.sort(first))


def paired_rows(results: list[tuple[RankResult, np.ndarray]], truth: np.ndarray, baseline: str,
                resamples: int = RESAMPLES) -> list[dict]:
    """Each proxy minus ``baseline`` on the very architectures both were ranked on (same dataset,
    selection and single-draw indices): the paired bootstrap difference of KROCC and SROCC
    (:func:`harness.stats.paired_rank_difference`, seeded with the rows' seed) and the verdict."""
    base = {(r.dataset, r.selection): (r, v) for r, v in results if r.proxy == baseline}
    out = []
    for r, values in results:
        b = base.get((r.dataset, r.selection))
        if r.proxy == baseline or b is None or not np.array_equal(r.selected, b[0].selected):
            continue
        sel = r.selected
        d = paired_rank_difference(values[sel], b[1][sel], truth[sel], seed=r.seed, resamples=resamples)
        out.append({"dataset": r.dataset, "selection": r.selection, "proxy": r.proxy, "baseline": baseline,
                    **d.row(), "ci_level": LEVEL, "ci_resamples": resamples, "seed": r.seed,
                    "verdict": verdict(r.proxy, baseline, d.krocc, d.n)})
    return out
