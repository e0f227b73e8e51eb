"""Linear CKA (paper Eq. (1)), the minibatch estimator, feature collection and the heatmaps."""
import itertools
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from harness import HarnessError
from harness.analysis.cka import (
    MinibatchCKA,
    eq1_matrix,
    full_data_layer,
    linear_cka,
    linear_cka_features,
    linear_cka_gram,
    linear_cka_unbiased,
    unbiased_hsic,
)
from harness.analysis.cka_table import mean_matrix
from harness.analysis.features import cka_against_reference, cka_between, collect_features, output_shapes
from harness.report.heatmap import plot_cka_grid, plot_cka_heatmap

FULL_FORMS = [linear_cka_gram, linear_cka_features, linear_cka]


def reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Paper Eq. (1) written out in float64 numpy, with the centring matrix H formed explicitly."""
    x, y = x.reshape(len(x), -1).astype(np.float64), y.reshape(len(y), -1).astype(np.float64)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.dot((h @ a @ h).ravel(), (h @ b @ h).ravel()) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def reference_unbiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from the unbiased HSIC_1 (Song et al. 2012, Eq. 5), written out in float64 numpy:
    K~, L~ = Grams with zeroed diagonals, 1 = ones vector,
    HSIC_1 = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))."""
    x, y = x.reshape(len(x), -1).astype(np.float64), y.reshape(len(y), -1).astype(np.float64)
    n, ones = len(x), np.ones(len(x))

    def hsic1(a, b):
        a, b = a.copy(), b.copy()
        np.fill_diagonal(a, 0.0)
        np.fill_diagonal(b, 0.0)
        return (np.trace(a @ b) + (ones @ a @ ones) * (ones @ b @ ones) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (ones @ a @ b @ ones)) / (n * (n - 3))

    k, l = x @ x.T, y @ y.T
    return hsic1(k, l) / np.sqrt(hsic1(k, k) * hsic1(l, l))


def related(rng, n=60, p1=12, p2=9, noise=0.5):
    """X and a noisy non-linear function of it: CKA well inside (0, 1)."""
    x = rng.normal(size=(n, p1))
    y = np.tanh(x @ rng.normal(size=(p1, p2))) + noise * rng.normal(size=(n, p2))
    return x, y


def orthogonal(rng, p):
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return q


# --- Eq. (1) properties ----------------------------------------------------------------------

@pytest.mark.parametrize("cka", FULL_FORMS + [linear_cka_unbiased])
def test_cka_of_a_representation_with_itself_is_one(cka, rng):
    x = rng.normal(size=(40, 30))
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cka(x, 5.0 * x + 2.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("cka", FULL_FORMS + [linear_cka_unbiased])
def test_invariant_to_orthogonal_transforms_and_isotropic_scaling_of_either_side(cka, rng):
    x, y = related(rng)
    base = cka(x, y)
    assert 0.1 < base < 0.95  # a non-trivial value, so invariance is not vacuous
    qx, qy = orthogonal(rng, x.shape[1]), orthogonal(rng, y.shape[1])
    for xt, yt in [(x @ qx, y), (x, y @ qy), (x @ qx, y @ qy), (3.7 * x, y), (x, 0.01 * y)]:
        assert cka(xt, yt) == pytest.approx(base, abs=1e-10)
    # ...but not to anisotropic scaling: the test would notice a normalisation per feature.
    stretch = np.diag(np.linspace(0.1, 10.0, x.shape[1]))
    assert abs(cka(x @ stretch, y) - base) > 1e-3


@pytest.mark.parametrize("cka", FULL_FORMS + [linear_cka_unbiased])
def test_symmetric(cka, rng):
    x, y = related(rng)
    assert cka(x, y) == pytest.approx(cka(y, x), abs=1e-12)


@pytest.mark.parametrize("n,p1,p2", [(40, 30, 7), (20, 100, 64), (200, 3, 5)])
@pytest.mark.parametrize("cka", FULL_FORMS)
def test_agrees_with_a_float64_numpy_reference_of_eq1(cka, n, p1, p2, rng):
    x, y = related(rng, n, p1, p2)
    y = y + 4.0  # an uncentred side, as after a ReLU
    assert cka(x, y) == pytest.approx(reference_cka(x, y), abs=1e-6)
    # float32 torch input of conv-map shape gives the same number (accumulated in float64).
    x4 = torch.tensor(x, dtype=torch.float32).reshape(n, p1, 1, 1)
    assert cka(x4, torch.tensor(y, dtype=torch.float32)) == pytest.approx(
        reference_cka(x4.double().numpy(), y.astype(np.float32).astype(np.float64)), abs=1e-6)


@pytest.mark.parametrize("n,p1,p2", [(40, 100, 7), (40, 7, 100), (30, 30, 30)])
def test_full_data_layers_keep_the_cheaper_form_and_every_pairing_is_eq1(n, p1, p2, rng):
    """p >= n: the centred Gram; p < n: the centred features; mixed pairs meet as Grams."""
    x, y = related(rng, n, p1, p2)
    y = y + 4.0
    lx, ly = full_data_layer(x), full_data_layer(y)
    assert (lx.gram is not None) == (p1 >= n) and (ly.gram is not None) == (p2 >= n)
    assert eq1_matrix([lx], [ly])[0, 0] == pytest.approx(reference_cka(x, y), abs=1e-9)
    m = eq1_matrix([lx, ly], [ly, lx, full_data_layer(np.zeros((n, 3)))])
    assert m.shape == (2, 3) and m[0, 1] == pytest.approx(1.0) and m[1, 0] == pytest.approx(1.0)
    assert m[0, 0] == pytest.approx(m[1, 1]) and np.isnan(m[:, 2]).all()


def test_eq1_matrix_bad_inputs(rng):
    with pytest.raises(HarnessError, match="same examples"):
        eq1_matrix([full_data_layer(rng.normal(size=(10, 3)))], [full_data_layer(rng.normal(size=(11, 3)))])
    with pytest.raises(HarnessError, match="at least one layer"):
        eq1_matrix([], [full_data_layer(rng.normal(size=(10, 3)))])


@pytest.mark.parametrize("n,p1,p2", [(40, 30, 7), (20, 100, 64), (200, 3, 5)])
def test_unbiased_estimator_agrees_with_a_float64_numpy_reference(n, p1, p2, rng):
    x, y = related(rng, n, p1, p2)
    y = y + 4.0
    want = reference_unbiased_cka(x, y)
    assert linear_cka_unbiased(x, y) == pytest.approx(want, abs=1e-9)
    accumulator = MinibatchCKA(1, 1)  # one batch of all n = the same estimator
    accumulator.update([torch.tensor(x, dtype=torch.float32)], [torch.tensor(y, dtype=torch.float32)])
    assert accumulator.compute()[0, 0] == pytest.approx(want, abs=1e-6)


def _wide_random(n: int, p: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, p, generator=g, dtype=torch.float64), torch.randn(n, p, generator=g, dtype=torch.float64))


def test_the_two_estimators_are_on_different_scales_for_wide_features():
    """Independent features with p >> n: Eq. (1)'s biased HSIC makes them look alike, the unbiased
    one does not (measured: 0.9536 and -0.0076 for n = 200, p = 4,096, seed 0)."""
    x, y = _wide_random(200, 4096)
    assert linear_cka(x, y) > 0.9 and abs(linear_cka_unbiased(x, y)) < 0.05


@pytest.mark.slow  # ~5 s on one loaded core: two 500 x 500 x 16,384 float64 Gram products each
def test_the_issues_sanity_numbers_n500_p16384():
    """Measured (seed 0, float64): Eq. (1) 0.9706, unbiased 0.0055 -- the issue's ~0.97 and ~0.005."""
    x, y = _wide_random(500, 16_384)
    assert linear_cka(x, y) > 0.9 and abs(linear_cka_unbiased(x, y)) < 0.05


def test_unrelated_representations_score_low(rng):
    x, y = rng.normal(size=(2000, 5)), rng.normal(size=(2000, 5))
    assert linear_cka(x, y) < 0.02


def test_constant_representation_has_no_cka(rng):
    x = rng.normal(size=(30, 4))
    for cka in FULL_FORMS + [linear_cka_unbiased]:
        assert np.isnan(cka(np.zeros((30, 8)), x))
        assert np.isnan(cka(x, np.full((30, 3), 0.1)))


def test_bad_inputs_are_harness_errors(rng):
    with pytest.raises(HarnessError, match="same examples"):
        linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(11, 3)))
    with pytest.raises(HarnessError, match="expected"):
        linear_cka(rng.normal(size=10), rng.normal(size=10))
    with pytest.raises(HarnessError, match="at least 4"):
        linear_cka_unbiased(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))


# --- unbiased HSIC_1 and the minibatch estimator -----------------------------------------------

def brute_force_hsic_u(k: np.ndarray, l: np.ndarray) -> float:
    """HSIC as the U-statistic it estimates, averaged over all ordered 4-tuples of distinct examples:
    E[k_st l_st] + E[k_st l_uv] - 2 E[k_st l_su] (Gretton et al. 2005; Song et al. 2012)."""
    n = len(k)
    terms = [k[s, t] * l[s, t] + k[s, t] * l[u, v] - 2 * k[s, t] * l[s, u]
             for s, t, u, v in itertools.permutations(range(n), 4)]
    return float(np.mean(terms))


def test_unbiased_hsic_is_the_u_statistic(rng):
    x, y = related(rng, n=7, p1=3, p2=2)
    k, l = x @ x.T, y @ y.T
    value = unbiased_hsic(torch.tensor(k), torch.tensor(l)).item()
    assert value == pytest.approx(brute_force_hsic_u(k, l), rel=1e-10)


def test_unbiased_hsic_averaged_over_all_subsets_equals_full_set(rng):
    """Unbiasedness, exactly: the mean of HSIC_1 over every 5-example subset is HSIC_1 of all 9."""
    x, y = related(rng, n=9, p1=4, p2=3)
    k, l = torch.tensor(x @ x.T), torch.tensor(y @ y.T)
    subsets = [list(s) for s in itertools.combinations(range(9), 5)]
    mean = np.mean([unbiased_hsic(k[s][:, s], l[s][:, s]).item() for s in subsets])
    assert mean == pytest.approx(unbiased_hsic(k, l).item(), rel=1e-10)


def test_unbiased_hsic_is_translation_invariant(rng):
    # Why MinibatchCKA may centre each batch's features before forming Grams.
    x, y = related(rng, n=12)
    shifted = x + rng.normal(size=(1, x.shape[1])) * 10
    l = torch.tensor(y @ y.T)
    assert unbiased_hsic(torch.tensor(shifted @ shifted.T), l).item() == pytest.approx(
        unbiased_hsic(torch.tensor(x @ x.T), l).item(), rel=1e-8)


def test_minibatch_estimator_converges_to_eq1_as_batches_grow():
    """n >> p, where Eq. (1)'s bias is negligible: more minibatches, closer to the full value."""
    first, last = [], []
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(8192, 6, generator=g, dtype=torch.float64)
        y = torch.relu(x @ torch.randn(6, 4, generator=g, dtype=torch.float64))
        y = y + 0.5 * torch.randn(8192, 4, generator=g, dtype=torch.float64)
        full = linear_cka(x, y)
        accumulator = MinibatchCKA(1, 1)
        for count, (xb, yb) in enumerate(zip(x.split(128), y.split(128)), start=1):
            accumulator.update([xb], [yb])
            if count == 2:
                first.append(abs(accumulator.compute()[0, 0] - full))
        assert accumulator.n_batches == 64 and accumulator.n_examples == 8192
        last.append(abs(accumulator.compute()[0, 0] - full))
    assert max(last) < 0.005
    assert np.mean(last) < np.mean(first) / 3


def test_minibatch_estimator_is_unbiased_where_per_batch_cka_is_not():
    """Wide features (p >> batch): random minibatches of 32 converge to the full-data unbiased CKA,
    while averaging Eq. (1) per batch stays far off (Nguyen et al. 2021's reason for HSIC_1)."""
    g = torch.Generator().manual_seed(1)
    n = 128
    x = torch.randn(n, 500, generator=g, dtype=torch.float64)
    noise = 3 * torch.randn(n, 300, generator=g, dtype=torch.float64)
    y = x[:, :50] @ torch.randn(50, 300, generator=g, dtype=torch.float64) + noise
    target = linear_cka_unbiased(x, y)
    accumulator, per_batch = MinibatchCKA(1, 1), []
    for epoch in range(30):
        for index in torch.randperm(n, generator=g).split(32):
            accumulator.update([x[index]], [y[index]])
            if epoch < 5:
                per_batch.append(linear_cka(x[index], y[index]))
    assert accumulator.n_batches == 120
    assert accumulator.compute()[0, 0] == pytest.approx(target, abs=0.015)
    assert np.mean(per_batch) - target > 0.3


def test_minibatch_matrix_layout_and_float32_features(rng):
    x, y = related(rng, n=64)
    layers_a = [torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)]
    layers_b = [torch.tensor(y, dtype=torch.float32), torch.zeros(64, 5), torch.tensor(x, dtype=torch.float32)]
    accumulator = MinibatchCKA(2, 3)
    for rows in np.array_split(np.arange(64), 4):
        accumulator.update([a[rows] for a in layers_a], [b[rows] for b in layers_b])
    m = accumulator.compute()
    assert m.shape == (2, 3) and m.dtype == np.float64
    assert m[0, 2] == pytest.approx(1.0) and m[1, 0] == pytest.approx(1.0)
    assert m[0, 0] == pytest.approx(m[1, 2])  # CKA(x, y) = CKA(y, x)
    assert np.isnan(m[:, 1]).all()           # the constant layer


def test_minibatch_bad_updates_are_harness_errors():
    accumulator = MinibatchCKA(1, 2)
    with pytest.raises(HarnessError, match="no minibatches"):
        accumulator.compute()
    with pytest.raises(HarnessError, match="expected 1 and 2"):
        accumulator.update([torch.randn(8, 3)], [torch.randn(8, 3)])
    with pytest.raises(HarnessError, match="at least 4"):
        accumulator.update([torch.randn(3, 3)], [torch.randn(3, 3), torch.randn(3, 2)])
    with pytest.raises(HarnessError, match="has 7 examples"):
        accumulator.update([torch.randn(8, 3)], [torch.randn(8, 3), torch.randn(7, 2)])


# --- features from real modules --------------------------------------------------------------

def tiny_net(width: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))


def test_collect_features_shapes_mode_and_hooks():
    net = tiny_net(4, seed=0)
    net.train()
    x = torch.randn(10, 3, 8, 8)
    features = collect_features(net, [net[2], net[4], net[7]], x)
    assert [tuple(f.shape) for f in features] == [(10, 4 * 8 * 8), (10, 8 * 4 * 4), (10, 10)]
    assert all(not f.requires_grad for f in features)
    assert net.training                                           # mode restored
    assert all(not m._forward_hooks for m in net)                 # hooks removed
    # eval mode: BatchNorm used its running statistics, so the output equals net.eval()(x).
    expected = net.eval()(x)
    assert torch.allclose(features[2], expected)


def test_collect_features_rejects_foreign_and_shared_modules():
    net = tiny_net(4, seed=0)
    with pytest.raises(HarnessError, match="never ran"):
        collect_features(net, [net[2], nn.ReLU()], torch.randn(4, 3, 8, 8))
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 3, 1), relu)
    with pytest.raises(HarnessError, match="ran 2 times"):
        collect_features(shared, [relu], torch.randn(4, 3, 8, 8))
    assert not relu._forward_hooks


def test_cka_between_networks(rng):
    a, b = tiny_net(4, seed=0), tiny_net(6, seed=1)
    data = torch.randn(96, 3, 8, 8)
    batches = [(data[k:k + 32], torch.zeros(32)) for k in range(0, 96, 32)]  # DataLoader-style pairs
    modules_a, modules_b = [a[2], a[4]], [b[2], b[4], b[7]]
    m = cka_between(a, modules_a, b, modules_b, batches)
    assert m.shape == (2, 3) and np.isfinite(m).all()
    self_m = cka_between(a, modules_a, a, modules_a, [x for x, _ in batches])
    assert np.allclose(np.diag(self_m), 1.0) and np.allclose(self_m, self_m.T)
    # Many candidates against one reference give the same matrices as one at a time.
    many = cka_against_reference(b, modules_b, [(a, modules_a), (a, modules_a[::-1])], batches)
    assert np.allclose(many[0], m) and np.allclose(many[1], m[::-1])
    with pytest.raises(HarnessError, match="empty"):
        cka_between(a, modules_a, b, modules_b, [])


def test_estimator_option_between_networks(rng):
    """``eq1`` is Eq. (1) on all images whatever the batching; ``unbiased_minibatch`` sums per batch."""
    a, b = tiny_net(4, seed=0), tiny_net(6, seed=1)
    data = torch.randn(96, 3, 8, 8)
    modules_a, modules_b = [a[2], a[4]], [b[2], b[4], b[7]]
    by_32 = cka_between(a, modules_a, b, modules_b, list(data.split(32)), estimator="eq1")
    whole = cka_between(a, modules_a, b, modules_b, [data], estimator="eq1")
    np.testing.assert_allclose(by_32, whole, rtol=0, atol=1e-12)
    fa, fb = collect_features(a, modules_a, data), collect_features(b, modules_b, data)
    want = [[reference_cka(x.numpy(), y.numpy()) for y in fb] for x in fa]
    np.testing.assert_allclose(whole, want, rtol=0, atol=1e-6)
    unbiased = cka_between(a, modules_a, b, modules_b, [data], estimator="unbiased_minibatch")
    want = [[reference_unbiased_cka(x.numpy(), y.numpy()) for y in fb] for x in fa]
    np.testing.assert_allclose(unbiased, want, rtol=0, atol=1e-6)
    assert not np.allclose(unbiased, whole, atol=1e-3)  # another scale
    assert cka_between(a, modules_a, b, modules_b, [data]).tolist() == whole.tolist()  # eq1 is the default
    with pytest.raises(HarnessError, match="estimator 'biased'"):
        cka_between(a, modules_a, b, modules_b, [data], estimator="biased")
    assert output_shapes(a, modules_a, data) == [(4, 8, 8), (8, 4, 4)]


# --- heatmaps ---------------------------------------------------------------------------------

def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_heatmap_png_is_written(tmp_path, rng):
    matrix = np.clip(np.eye(5) * 0.6 + rng.uniform(0.2, 0.4, size=(5, 5)), 0, 1)
    matrix[2, 3] = np.nan
    path = plot_cka_heatmap(matrix, tmp_path / "cka.png", title="test", mark=(2, 2))
    width, height = _png_size(path)
    assert width > 300 and height > 300 and path.stat().st_size > 10_000
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # colours, text: not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cka.png"]  # no temp file left behind


def test_heatmap_grid_with_mean(tmp_path, rng):
    mats = [rng.uniform(size=(6, 4)) for _ in range(3)]
    path = plot_cka_grid(mats, tmp_path / "grid.png", titles=["a", "b", "c"], ncols=2, suptitle="grid")
    single = plot_cka_heatmap(mats[0], tmp_path / "one.png")
    assert _png_size(path)[0] > _png_size(single)[0]
    assert np.allclose(mean_matrix(mats), np.mean(mats, axis=0))
    with_nan = [np.full((2, 2), np.nan), np.ones((2, 2))]
    assert np.allclose(mean_matrix(with_nan), 1.0)


def test_heatmap_bad_inputs(tmp_path):
    with pytest.raises(HarnessError, match=".png"):
        plot_cka_heatmap(np.eye(3), tmp_path / "cka.jpg")
    with pytest.raises(HarnessError, match="2-D"):
        plot_cka_heatmap(np.ones(3), tmp_path / "cka.png")
    with pytest.raises(HarnessError, match="outside"):
        plot_cka_heatmap(np.eye(3), tmp_path / "cka.png", mark=(4, 1))
    with pytest.raises(HarnessError, match="different shapes"):
        plot_cka_grid([np.eye(3), np.eye(2)], tmp_path / "grid.png")
    assert not list(tmp_path.iterdir())
