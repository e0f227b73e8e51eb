"""Uncertainty for every comparison the harness reports: seeded bootstrap intervals and tests.

A comparison without its uncertainty is not a result. Every number here is a 95% interval
(:data:`LEVEL`) from ``scipy.stats.bootstrap`` (percentile method, :data:`RESAMPLES` resamples,
a seeded generator, so a rerun reproduces it bit for bit), or a ``scipy.stats.permutation_test``
p-value:

* :func:`rank_interval` -- Kendall tau-b and Spearman rho of a proxy vs the ground truth, resampling
  the architectures they were computed on (Efron & Tibshirani 1993, ch. 13);
* :func:`paired_rank_difference` -- two proxies scored on the *same* architectures: the difference
  of their correlations with the ground truth, resampling architectures jointly (one resample
  feeds both proxies, so what they share cancels); its p-value is the two-sided bootstrap
  p-value of the same resamples (twice the smaller tail beyond 0), so "the interval excludes 0"
  and "p < 1 - level" agree up to resampling noise;
* :func:`mean_interval` -- a mean over seeds (best-found accuracy of a search method);
* :func:`mean_difference` -- two methods' means over independent seeds (different samplers share
  nothing per seed, so the test is unpaired): a bootstrap interval resampling each group
  separately and a permutation-test p-value of the difference of means.

The percentile method needs no jackknife and stays defined for degenerate data: a proxy equal to
the ground truth has tau 1 on every resample, so its interval is exactly [1, 1]; identical proxies
differ by exactly 0 on every resample, so their paired interval is [0, 0] with p = 1.

:func:`verdict` is the only wording the reports use: "A better than B" only when the interval of
the difference excludes 0; otherwise "no significant difference".
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import (
    ConstantInputWarning,
    DegenerateDataWarning,
    bootstrap,
    chi2,
    kendalltau,
    permutation_test,
    rankdata,
    studentized_range,
)

#: Confidence level of every interval.
LEVEL = 0.95
#: Bootstrap resamples per interval: the percentile endpoints of a 95% interval then carry about 3%
#: Monte Carlo error of its half-width (quantile standard error at 2.5% over 2000 draws).
RESAMPLES = 2000
#: Significance level of the rank test (1 - LEVEL, written out: no float noise in reports).
ALPHA = 0.05
#: Fewer observations than this get no interval (NaN): a bootstrap of 2-4 points mostly redraws ties.
MIN_N = 5


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def text(self, digits: int = 3) -> str:
        if not np.isfinite(self.low):
            return f"{self.estimate:.{digits}f}"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


_NAN = float("nan")


#: Up to this many architectures Kendall's tau of a batch of resamples is computed from pairwise
#: signs at once (n^2 memory per resample); above it one ``scipy.stats.kendalltau`` call each
#: (O(n log n)). Both are tau-b; the crossover is where they cost the same on a 2-core CPU.
PAIRWISE_MAX_N = 200


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis: sum(sign dx * sign dy) / sqrt(#pairs untied in x *
    #pairs untied in y), the same value as ``scipy.stats.kendalltau`` (tested)."""
    if x.shape[-1] > PAIRWISE_MAX_N:
        flat_x, flat_y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        return np.array([kendalltau(a, b).statistic for a, b in zip(flat_x, flat_y)]).reshape(x.shape[:-1])
    sx = np.sign(x[..., :, None] - x[..., None, :]).astype(np.int8)
    sy = np.sign(y[..., :, None] - y[..., None, :]).astype(np.int8)
    concordance = np.einsum("...ij,...ij->...", sx, sy, dtype=np.int64)
    untied = np.abs(sx).sum((-1, -2), dtype=np.int64) * np.abs(sy).sum((-1, -2), dtype=np.int64)
    return concordance / np.sqrt(untied)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis: Pearson's r of the average ranks (as scipy.stats.spearmanr)."""
    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    return (rx * ry).sum(-1) / np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))


def _tau_rho(proxy: np.ndarray, truth: np.ndarray, axis: int = -1) -> np.ndarray:
    """(Kendall tau-b, Spearman rho) along ``axis`` -> shape (2, ...); NaN where a side is constant."""
    x, y = np.moveaxis(np.asarray(proxy, dtype=float), axis, -1), np.moveaxis(np.asarray(truth, dtype=float), axis, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([_kendall_tau_b(x, y), _spearman(x, y)])


def _batch(n: int) -> int:
    """Resamples per vectorized call: about 40 MB of pairwise signs."""
    return max(1, 20_000_000 // (n * n)) if n <= PAIRWISE_MAX_N else 256


def _percentile(dist: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    return float(np.quantile(dist, alpha)), float(np.quantile(dist, 1 - alpha))


def _bootstrap(data: tuple, statistic, *, paired: bool, seed: int, resamples: int) -> np.ndarray:
    """The bootstrap distribution of ``statistic`` (resamples along the last axis). A resample that
    redraws one value only has no rank correlation: it comes back NaN (scipy warns) and the callers
    leave it out of the interval."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConstantInputWarning, DegenerateDataWarning, RuntimeWarning))
        res = bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=resamples,
                        batch=_batch(len(data[0])), method="percentile", confidence_level=LEVEL,
                        random_state=np.random.default_rng(seed))
    return np.asarray(res.bootstrap_distribution)


def rank_interval(proxy, truth, *, seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES
                  ) -> dict[str, Interval]:
    """``{"krocc": ..., "srocc": ...}`` with bootstrap intervals over the architectures (pairs of
    proxy value and ground truth resampled together). Fewer than :data:`MIN_N`: NaN bounds."""
    proxy, truth = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    est = _tau_rho(proxy, truth)
    if len(proxy) < MIN_N or resamples < 1:
        return {"krocc": Interval(float(est[0]), _NAN, _NAN), "srocc": Interval(float(est[1]), _NAN, _NAN)}
    dist = _bootstrap((proxy, truth), _tau_rho, paired=True, seed=seed, resamples=resamples)
    # a resample of all-equal values has no rank correlation (NaN); it says nothing about the interval
    out = {}
    for k, name in enumerate(("krocc", "srocc")):
        d = dist[k][np.isfinite(dist[k])]
        out[name] = Interval(float(est[k]), *_percentile(d, level))
    return out


@dataclass(frozen=True)
class PairedDifference:
    """Correlation of proxy ``a`` minus that of proxy ``b`` with the ground truth, on the same n
    architectures; ``*_p``: two-sided bootstrap p-values; ``krocc_dist``: the bootstrap differences."""

    n: int
    krocc: Interval
    srocc: Interval
    krocc_p: float
    srocc_p: float
    krocc_dist: np.ndarray

    def row(self) -> dict:
        out = {"n": self.n, "krocc_p": self.krocc_p, "srocc_p": self.srocc_p}
        for name in ("krocc", "srocc"):
            iv = getattr(self, name)
            out.update({f"{name}_diff": iv.estimate, f"{name}_diff_lo": iv.low, f"{name}_diff_hi": iv.high})
        return out


def bootstrap_p(dist: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0": twice the smaller share of resampled
    differences at or beyond 0 on either side, at most 1 (every resample exactly 0: p = 1)."""
    d = dist[np.isfinite(dist)]
    if len(d) == 0:
        return _NAN
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def paired_rank_difference(a, b, truth, *, seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES
                           ) -> PairedDifference:
    """Proxy ``a``'s KROCC/SROCC minus proxy ``b``'s, both against ``truth`` on the same architectures,
    resampling architectures jointly (see the module docstring)."""
    a, b, truth = (np.asarray(v, dtype=float) for v in (a, b, truth))
    if not (a.shape == b.shape == truth.shape and a.ndim == 1):
        raise ValueError(f"paired difference needs three equal-length vectors, got {a.shape}, {b.shape}, {truth.shape}")

    def diff(x, y, t, axis=-1):
        return _tau_rho(x, t, axis) - _tau_rho(y, t, axis)

    est = diff(a, b, truth)
    if len(a) < MIN_N or resamples < 1:
        nan = [Interval(float(e), _NAN, _NAN) for e in est]
        return PairedDifference(len(a), nan[0], nan[1], _NAN, _NAN, np.array([]))
    dist = _bootstrap((a, b, truth), diff, paired=True, seed=seed, resamples=resamples)
    ivs, ps = [], []
    for k in range(2):
        d = dist[k][np.isfinite(dist[k])]
        ivs.append(Interval(float(est[k]), *_percentile(d, level)))
        ps.append(bootstrap_p(d))
    return PairedDifference(len(a), ivs[0], ivs[1], ps[0], ps[1], dist[0])


def mean_interval(values, *, seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES) -> Interval:
    """The mean of ``values`` (e.g. best-found accuracy over seeds) with a bootstrap interval."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Interval(_NAN, _NAN, _NAN)
    if len(v) < MIN_N or resamples < 1:
        return Interval(float(v.mean()), _NAN, _NAN)
    if np.all(v == v[0]):
        return Interval(float(v[0]), float(v[0]), float(v[0]))
    dist = _bootstrap((v,), np.mean, paired=False, seed=seed, resamples=resamples)  # np.mean takes axis=
    return Interval(float(v.mean()), *_percentile(dist, level))


@dataclass(frozen=True)
class MeanDifference:
    """mean(a) - mean(b) over independent observations (seeds), its interval and permutation p."""

    n_a: int
    n_b: int
    diff: Interval
    p: float

    def row(self) -> dict:
        return {"n_a": self.n_a, "n_b": self.n_b, "diff": self.diff.estimate, "diff_lo": self.diff.low,
                "diff_hi": self.diff.high, "p": self.p}


def _mean_diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def mean_difference(a, b, *, seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES) -> MeanDifference:
    """``mean(a) - mean(b)`` for two independent groups: bootstrap interval (each group resampled
    on its own) and a two-sided permutation-test p-value (labels exchanged under the null)."""
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    est = float(a.mean() - b.mean()) if len(a) and len(b) else _NAN
    if min(len(a), len(b)) < MIN_N or resamples < 1:
        return MeanDifference(len(a), len(b), Interval(est, _NAN, _NAN), _NAN)
    if np.all(np.concatenate([a, b]) == a[0]):
        return MeanDifference(len(a), len(b), Interval(0.0, 0.0, 0.0), 1.0)
    res = bootstrap((a, b), _mean_diff, paired=False, vectorized=True, n_resamples=resamples,
                    method="percentile", confidence_level=level, random_state=np.random.default_rng(seed))
    p = permutation_test((a, b), _mean_diff, permutation_type="independent", vectorized=True,
                         n_resamples=resamples, alternative="two-sided", random_state=np.random.default_rng(seed)).pvalue
    return MeanDifference(len(a), len(b), Interval(est, float(res.confidence_interval.low),
                                                   float(res.confidence_interval.high)), float(p))


def verdict(a: str, b: str, diff: Interval, n: "int | str", level: float = LEVEL, higher_is_better: bool = True) -> str:
    """The one sentence a report may say about A vs B, from the interval of ``A - B``."""
    if not np.isfinite(diff.low):
        return f"no interval (n = {n})"
    if not diff.excludes_zero():
        return f"no significant difference (n = {n})"
    a_wins = (diff.low > 0) == higher_is_better
    better, worse = (a, b) if a_wins else (b, a)
    return f"{better} better than {worse} ({level:.0%} interval of the difference excludes 0, n = {n})"


def interval_columns(prefix: str, iv: Interval) -> dict:
    """``{prefix}_lo``, ``{prefix}_hi`` columns of an interval (the estimate has its own column)."""
    return {f"{prefix}_lo": iv.low, f"{prefix}_hi": iv.high}


def mean_band(values, *, seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over the rows (seeds) of a seeds x points array, e.g. best-found accuracy
    after each query. Each resample redraws whole rows, so every point of the band comes from the
    same resampled seeds, and the band at one point is :func:`mean_interval` of that column (same
    seed, same resamples). Fewer than :data:`MIN_N` rows: NaN band."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or not np.isfinite(v).all():
        raise ValueError(f"mean band needs a complete 2-D array of finite values, got shape {v.shape}")
    mean = v.mean(axis=0)
    if len(v) < MIN_N or resamples < 1:
        return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    dist = _bootstrap((v,), np.mean, paired=False, seed=seed, resamples=resamples)  # points x resamples
    alpha = (1 - level) / 2
    return mean, np.quantile(dist, alpha, axis=-1), np.quantile(dist, 1 - alpha, axis=-1)


@dataclass(frozen=True)
class RankTest:
    """Methods compared over blocks: mean rank (1 = best), the Friedman test and the Nemenyi
    critical difference ``cd``: two mean ranks further apart than ``cd`` differ at level ``alpha``,
    and only when the Friedman test rejects (Demšar 2006, Sec. 3.2.2)."""

    names: tuple[str, ...]
    mean_ranks: tuple[float, ...]
    blocks: int
    statistic: float
    p: float
    cd: float
    alpha: float

    def rejects(self) -> bool:
        """The Friedman test rejects "every method ranks alike" at ``alpha``."""
        return bool(self.p < self.alpha)

    def rank(self, name: str) -> float:
        return self.mean_ranks[self.names.index(name)]

    def differ(self, a: str, b: str) -> bool:
        """Nemenyi: ``a`` and ``b`` differ (the Friedman test rejects and their mean ranks are more
        than the critical difference apart)."""
        return self.rejects() and abs(self.rank(a) - self.rank(b)) > self.cd

    def order(self) -> list[str]:
        """Names by mean rank, best first (ties keep the input order)."""
        return [self.names[i] for i in np.argsort(self.mean_ranks, kind="stable")]

    def cliques(self) -> list[tuple[str, ...]]:
        """Maximal runs of methods (in rank order) no two of which differ: the bars of a CD diagram."""
        order = self.order()
        ranks = [self.rank(n) for n in order]
        runs = []
        for i in range(len(order)):
            j = i
            while j + 1 < len(order) and not (self.rejects() and ranks[j + 1] - ranks[i] > self.cd):
                j += 1
            if j > i and not (runs and runs[-1][1] >= j):
                runs.append((i, j))
        return [tuple(order[i:j + 1]) for i, j in runs]


def rank_test(scores, names, *, higher_is_better: bool = True, alpha: float = ALPHA) -> RankTest:
    """Friedman test and Nemenyi critical difference of ``scores`` (blocks x methods, complete).

    Ranks are taken within each block (ties share the average rank). The Friedman statistic is
    the tie-corrected chi-square of ``scipy.stats.friedmanchisquare``, computed here so that two
    methods and blocks that are all ties work too (all ties: statistic 0, p = 1). The critical
    difference is q_alpha / sqrt(2) * sqrt(k (k + 1) / (6 N)), q_alpha the studentized range
    quantile of k means with infinite degrees of freedom (Demšar 2006, Eq. 5 and Table 5a)."""
    x = np.asarray(scores, dtype=float)
    names = tuple(str(n) for n in names)
    if x.ndim != 2 or x.shape[1] != len(names) or len(names) < 2 or len(x) < 2:
        raise ValueError(f"rank test needs >= 2 blocks x >= 2 methods ({len(names)} names), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("rank test needs complete blocks (a score for every method in every block)")
    n, k = x.shape
    ranks = rankdata(-x if higher_is_better else x, axis=1)
    ties = sum(float((c ** 3 - c).sum()) for c in (np.unique(row, return_counts=True)[1] for row in ranks))
    correction = 1 - ties / (n * (k ** 3 - k))
    if correction <= 0:  # every block all ties: nothing separates the methods
        statistic, p = 0.0, 1.0
    else:
        statistic = float((12.0 / (n * k * (k + 1)) * (ranks.sum(axis=0) ** 2).sum() - 3 * n * (k + 1)) / correction)
        p = float(chi2.sf(statistic, k - 1))
    cd = float(studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2) * np.sqrt(k * (k + 1) / (6 * n)))
    return RankTest(names, tuple(float(r) for r in ranks.mean(axis=0)), n, statistic, p, cd, alpha)
