"""harness.stats against cases with known answers."""
import numpy as np
import pytest
from scipy.stats import friedmanchisquare, kendalltau, spearmanr

from harness import stats
from harness.stats import (
    Interval,
    mean_band,
    mean_difference,
    mean_interval,
    paired_rank_difference,
    rank_interval,
    rank_test,
    verdict,
)


def _noisy(n, noise, seed):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    return truth + noise * rng.normal(size=n), truth


@pytest.mark.parametrize("n", [7, 60, 200, 201, 450])  # both sides of the pairwise / scipy crossover
def test_vectorised_tau_and_rho_equal_scipy_with_ties(n):
    rng = np.random.default_rng(n)
    x = np.round(rng.normal(size=(3, n)), 1)  # ties on both sides
    y = np.round(x + rng.normal(size=(3, n)), 1)
    tau, rho = stats._tau_rho(x, y)
    for k in range(3):
        assert tau[k] == pytest.approx(kendalltau(x[k], y[k]).statistic, abs=1e-12)
        assert rho[k] == pytest.approx(spearmanr(x[k], y[k]).statistic, abs=1e-12)


def test_identical_proxies_differ_by_exactly_zero():
    a, truth = _noisy(40, 1.0, 0)
    d = paired_rank_difference(a, a.copy(), truth, seed=3)
    assert (d.krocc.estimate, d.krocc.low, d.krocc.high) == (0.0, 0.0, 0.0)
    assert (d.srocc.low, d.srocc.high) == (0.0, 0.0)
    assert d.krocc_p == 1.0 and d.srocc_p == 1.0
    assert np.all(d.krocc_dist == 0)
    assert verdict("a", "b", d.krocc, d.n) == "no significant difference (n = 40)"


def test_proxy_equal_to_truth_has_tau_one_and_a_degenerate_interval():
    _, truth = _noisy(50, 0.0, 1)
    iv = rank_interval(truth * 3 + 1, truth, seed=0)  # any increasing function of the truth
    assert iv["krocc"].estimate == pytest.approx(1.0) and iv["srocc"].estimate == pytest.approx(1.0)
    assert (iv["krocc"].low, iv["krocc"].high) == pytest.approx((1.0, 1.0))
    assert (iv["srocc"].low, iv["srocc"].high) == pytest.approx((1.0, 1.0))


def test_large_n_interval_matches_the_normal_approximation_of_kendalls_tau():
    """Independent proxy and truth: var(tau) = 2(2n+5) / (9n(n-1)) (Kendall 1938). The bootstrap
    half-width must match 1.96 sd within 10%: the percentile endpoints of 2000 resamples carry ~3%
    Monte Carlo error, and the bootstrap's own approximation a few % at n = 2000."""
    n = 2000
    rng = np.random.default_rng(7)
    proxy, truth = rng.normal(size=n), rng.normal(size=n)
    iv = rank_interval(proxy, truth, seed=1)["krocc"]
    sd = np.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    half = (iv.high - iv.low) / 2
    assert half == pytest.approx(1.96 * sd, rel=0.10)
    assert iv.low < iv.estimate < iv.high


def test_intervals_cover_the_true_tau_about_95_percent_of_the_time():
    """Bivariate normal with rho 0.6: tau = (2/pi) arcsin(0.6). 120 experiments of n = 60: the
    count covering tau is Binomial(120, ~0.95); [104, 120] holds it with probability > 0.999 (a
    coverage of 80% or less would fail it with probability > 0.95)."""
    rho, n = 0.6, 60
    tau = 2 / np.pi * np.arcsin(rho)
    cov = np.array([[1, rho], [rho, 1]])
    rng = np.random.default_rng(11)
    hits = 0
    for k in range(120):
        x, y = rng.multivariate_normal([0, 0], cov, size=n).T
        iv = rank_interval(x, y, seed=k, resamples=500)["krocc"]
        hits += iv.low <= tau <= iv.high
    assert 104 <= hits <= 120


def test_paired_difference_calls_a_clear_winner_and_no_winner_between_equals():
    rng = np.random.default_rng(5)
    truth = rng.normal(size=80)
    good, bad = truth + 0.2 * rng.normal(size=80), truth + 3.0 * rng.normal(size=80)
    d = paired_rank_difference(good, bad, truth, seed=0)
    assert d.krocc.low > 0 and d.krocc_p < 0.01
    assert verdict("good", "bad", d.krocc, d.n).startswith("good better than bad")
    assert verdict("bad", "good", Interval(-d.krocc.estimate, -d.krocc.high, -d.krocc.low), d.n).startswith(
        "good better than bad")



def test_equally_good_proxies_are_rarely_called_different():
    """Two proxies with the same noise: a 95% interval excludes 0 in about 5% of experiments. Of 20,
    at most 4 may (P(>= 5 | Binomial(20, 0.05)) = 0.003); a test calling noise significant fails."""
    calls = 0
    for k in range(20):
        rng = np.random.default_rng(100 + k)
        truth = rng.normal(size=40)
        d = paired_rank_difference(truth + rng.normal(size=40), truth + rng.normal(size=40), truth, seed=k,
                                   resamples=500)
        calls += d.krocc.excludes_zero()
    assert calls <= 4


def test_paired_is_narrower_than_unpaired_when_proxies_share_their_errors():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=100)
    shared = rng.normal(size=100)
    a = truth + shared + 0.3 * rng.normal(size=100)
    b = truth + shared + 0.3 * rng.normal(size=100)
    d = paired_rank_difference(a, b, truth, seed=0)
    ia, ib = rank_interval(a, truth)["krocc"], rank_interval(b, truth)["krocc"]
    unpaired = np.hypot(ia.high - ia.low, ib.high - ib.low)  # the width if the two were independent
    assert d.krocc.high - d.krocc.low < 0.85 * unpaired


def test_intervals_are_seeded_and_reproducible():
    a, truth = _noisy(30, 1.0, 4)
    assert rank_interval(a, truth, seed=9) == rank_interval(a, truth, seed=9)
    assert rank_interval(a, truth, seed=9) != rank_interval(a, truth, seed=10)


def test_too_few_observations_give_no_interval():
    iv = rank_interval([1, 2, 3], [1, 3, 2])["krocc"]
    assert np.isnan(iv.low) and np.isnan(iv.high) and iv.estimate == pytest.approx(1 / 3)
    assert verdict("a", "b", iv, 3) == "no interval (n = 3)"
    assert np.isnan(mean_interval([93.0, 94.0]).low)


def test_mean_interval_and_difference_of_seeds():
    rng = np.random.default_rng(0)
    high, low = 94 + 0.3 * rng.normal(size=10), 93 + 0.3 * rng.normal(size=10)
    iv = mean_interval(high)
    assert iv.low < high.mean() < iv.high and iv.high - iv.low < 0.6
    d = mean_difference(high, low)
    assert d.diff.low > 0 and d.p < 0.01 and (d.n_a, d.n_b) == (10, 10)
    assert verdict("rea", "random", d.diff, 10).startswith("rea better than random")
    same = mean_difference(high, high + 0.0)
    assert same.diff.low < 0 < same.diff.high and same.p > 0.5
    const = mean_difference([94.0] * 5, [94.0] * 5)
    assert (const.diff.low, const.diff.high, const.p) == (0.0, 0.0, 1.0)


def test_lower_is_better_flips_the_verdict():
    assert verdict("a", "b", Interval(-2.0, -3.0, -1.0), 10, higher_is_better=False).startswith("a better than b")


def test_mean_band_is_the_mean_interval_of_every_point():
    rng = np.random.default_rng(2)
    curves = np.maximum.accumulate(90 + rng.normal(size=(8, 30)), axis=1)  # best-so-far curves of 8 seeds
    mean, lo, hi = mean_band(curves, seed=4)
    for j in (0, 11, 29):
        iv = mean_interval(curves[:, j], seed=4)
        assert (mean[j], lo[j], hi[j]) == pytest.approx((iv.estimate, iv.low, iv.high), abs=1e-12)
    assert np.all(lo <= mean) and np.all(mean <= hi)
    few = mean_band(curves[:4])
    assert np.isnan(few[1]).all() and np.isnan(few[2]).all()  # under 5 seeds: no band
    with pytest.raises(ValueError, match="complete"):
        mean_band(np.array([[1.0, np.nan]] * 6))


def _blocks(n: int = 12, seed: int = 0) -> np.ndarray:
    """n blocks of a shared difficulty (as datasets differ) plus small per-method noise."""
    rng = np.random.default_rng(seed)
    return 90 + 5 * rng.normal(size=(n, 1)) + 0.1 * rng.normal(size=(n, 3))


def test_rank_test_puts_a_method_that_wins_every_block_first_and_rejects_equality():
    x = _blocks()
    x[:, 2] = x.max(axis=1) + 0.5  # method c wins every block, by a little
    t = rank_test(x, ["a", "b", "c"])
    assert t.order()[0] == "c" and t.rank("c") == 1.0
    assert t.rejects() and t.p < 0.01
    assert t.differ("c", "a") and t.differ("c", "b")
    assert rank_test(-x, ["a", "b", "c"], higher_is_better=False).rank("c") == 1.0  # regret: lower is better


def test_identical_methods_are_not_separated():
    x = np.repeat(_blocks()[:, :1], 3, axis=1)
    t = rank_test(x, ["a", "b", "c"])
    assert t.mean_ranks == (2.0, 2.0, 2.0) and t.statistic == 0.0 and t.p == 1.0
    assert not t.rejects() and not t.differ("a", "b") and t.cliques() == [("a", "b", "c")]
    x[:, 2] += 1.0  # c now dominates two identical methods: it is separated from both, they are not
    t = rank_test(x, ["a", "b", "c"])
    assert t.rejects() and t.rank("a") == t.rank("b") == 2.5
    assert t.differ("c", "a") and t.differ("c", "b") and not t.differ("a", "b")
    assert t.cliques() == [("a", "b")]


def test_rank_test_equals_scipy_friedman_and_demsars_critical_differences():
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=(15, 4)), 1)  # ties within blocks
    t = rank_test(x, "abcd")
    ref = friedmanchisquare(*x.T)
    assert t.statistic == pytest.approx(ref.statistic, rel=1e-12) and t.p == pytest.approx(ref.pvalue, rel=1e-12)
    # Demšar (2006), Table 5(a): q_0.05 / sqrt(2) for k = 2..5 methods; CD = q sqrt(k(k+1) / 6N)
    for k, q in ((2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728)):
        n = 10
        cd = rank_test(rng.normal(size=(n, k)), list("abcde"[:k])).cd
        assert cd / np.sqrt(k * (k + 1) / (6 * n)) == pytest.approx(q, abs=1e-3)
    with pytest.raises(ValueError, match="complete blocks"):
        rank_test(np.array([[1.0, np.nan], [2.0, 1.0]]), "ab")
