"""harness.stats against cases with known answers."""
import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from harness import stats
from harness.stats import (
    Interval,
    mean_difference,
    mean_interval,
    paired_rank_difference,
    rank_interval,
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
