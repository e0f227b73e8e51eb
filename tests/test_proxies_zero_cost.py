"""Zero-cost proxies: each against a hand value or an independent float64 computation, the
caller's network left untouched, clear errors, the rank kind end to end, the Proxies section."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.analysis.rank import correlations
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.data.datasets import load_dataset
from harness.measure.counting import count_flops, count_params
from harness.proxies import ProxyContext, make_proxy, proxy_family
from harness.proxies.zero_cost.joint import score_all
from harness.proxies.zero_cost.measures import (
    ZERO_COST,
    ZeroCostProxy,
    jacob_cov_score,
    nwot_kernel,
    probe_batch,
    score_network,
)
from harness.report.details import build_pages
from harness.report.proxies import pareto, plot_points, plot_proxies, proxies_section
from harness.spaces import get_space
from harness.store.results import ResultsStore


def _batch(n=6, c=3, hw=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, hw, hw, generator=g), torch.randint(0, classes, (n,), generator=g)


def _convnet(bn=True, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 4, 3, padding=1, bias=True)] + ([nn.BatchNorm2d(4)] if bn else []) + \
        [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)]
    return nn.Sequential(*layers)


def _loss64(net, x, y):
    """Cross-entropy of a float64 copy of ``net`` (training mode): an independent re-computation."""
    net64 = copy.deepcopy(net).double().train()
    weights = [m.weight for m in net64.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return F.cross_entropy(net64(x.double()), y), weights


# --------------------------------------------------------------------------- each proxy


def test_synflow_two_linear_layers_by_hand():
    # ones input, |W|: R = 1^T |W2| |W1| 1, dR/dW1_ij = a_i, dR/dW2_ki = b_i with a = colsum|W2|,
    # b = rowsum|W1| -> synflow = 2 sum_i a_i b_i. Negative weights make the sign handling matter.
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5, bias=False), nn.ReLU(), nn.Linear(5, 2, bias=False))
    x, y = _batch(n=4, c=3, hw=2, classes=2)
    w1, w2 = net[1].weight.detach().double().abs(), net[3].weight.detach().double().abs()
    a, b = w2.sum(0), w1.sum(1)
    expected = float(2 * (a * b).sum())
    assert score_network("synflow", net, x, y) == pytest.approx(expected, rel=1e-12)
    signed = float((net[3].weight.detach().double().sum(0) * net[1].weight.detach().double().sum(1)).sum())
    assert abs(expected - 2 * signed) > 1e-3  # without abs() the score would differ


def test_synflow_bypasses_bn_in_float64():
    net = _convnet(bn=True)
    with torch.no_grad():
        net[1].running_var.fill_(100.0)  # if BN ran (eval or train), this or batch stats would matter
        net[1].weight.fill_(-3.0)
    x, y = _batch()
    conv, lin = copy.deepcopy(net[0]).double(), copy.deepcopy(net[5]).double()
    for p in (*conv.parameters(), *lin.parameters()):
        p.data.abs_()
    ones = torch.ones(1, 3, 5, 5, dtype=torch.float64)
    r = lin(F.adaptive_avg_pool2d(F.relu(conv(ones)), 1).flatten(1)).sum()
    r.backward()
    with torch.no_grad():
        expected = float((conv.weight * conv.weight.grad).abs().sum() + (lin.weight * lin.weight.grad).abs().sum())
    assert score_network("synflow", net, x, y) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("bn", [False, True])
def test_grad_norm_and_snip_against_float64(bn):
    net, (x, y) = _convnet(bn=bn), _batch()
    loss, weights = _loss64(net, x, y)
    grads = torch.autograd.grad(loss, weights)
    assert score_network("grad_norm", net, x, y) == pytest.approx(float(sum(g.norm() for g in grads)), rel=1e-4)
    snip = float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads)))
    assert score_network("snip", net, x, y) == pytest.approx(snip, rel=1e-4)


def test_grasp_against_float64_hessian_vector_product():
    net, (x, y) = _convnet(bn=False), _batch()
    net64 = copy.deepcopy(net).double()
    names = [n for n, _ in net64.named_parameters()]
    params = {n: p.detach() for n, p in net64.named_parameters()}
    wnames = [n for n in names if n.endswith("weight")]

    def loss_of(*ws):
        return F.cross_entropy(torch.func.functional_call(net64, {**params, **dict(zip(wnames, ws))},
                                                          (x.double(),)), y)

    ws = tuple(params[n].clone().requires_grad_(True) for n in wnames)
    g = torch.autograd.grad(loss_of(*ws), ws)
    _, hg = torch.autograd.functional.hvp(loss_of, ws, g)
    expected = float(sum((-w.detach() * h).sum() for w, h in zip(ws, hg)))
    assert len(names) == 4 and abs(expected) > 0
    assert score_network("grasp", net, x, y) == pytest.approx(expected, rel=1e-3, abs=1e-7)


def test_fisher_against_float64_activations():
    net, (x, y) = _convnet(bn=False), _batch()
    conv, lin = copy.deepcopy(net[0]).double(), copy.deepcopy(net[-1]).double()
    a1 = conv(x.double())
    a2 = lin(F.adaptive_avg_pool2d(F.relu(a1), 1).flatten(1))
    g1, g2 = torch.autograd.grad(F.cross_entropy(a2, y), (a1, a2))
    fisher1 = 0.5 * (a1 * g1).sum(dim=(2, 3)).pow(2).mean(0)   # per output channel
    fisher2 = 0.5 * (a2 * g2).pow(2).mean(0)
    expected = float(fisher1.sum() * 3 * 3 * 3 + fisher2.sum() * 4)  # broadcast over each channel's weights
    assert score_network("fisher", net, x, y) == pytest.approx(expected, rel=1e-4)


class _DeadBranch(nn.Module):
    """A live conv + BN plus a conv on an all-zero input (an NB201 edge out of a node whose inputs
    are all 'none'), both into one ReLU -> pool -> Linear head."""

    def __init__(self, bias: bool):
        super().__init__()
        self.live = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.dead = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 4, 1, bias=bias), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.live(x) + self.dead(x.mul(0.0)))


def test_fisher_of_a_conv_on_zeros_is_zero_unless_it_has_a_bias():
    # The dead conv's output a is 0, so a * dL/da adds nothing and fisher equals the live network's.
    # The reference's nasbench2 cells give that conv a bias (BN affine=False): BN removes it from
    # the function (every other proxy is unchanged) but a = b meets dL/da ~ 1/sqrt(eps) of a
    # zero-variance channel, and fisher jumps (the published fisher's gap; module docstring).
    torch.manual_seed(0)
    net, (x, y) = _DeadBranch(bias=False), _batch()
    fisher = score_network("fisher", net, x, y)
    assert fisher == score_network("fisher", nn.Sequential(net.live, net.head), x, y) > 0
    biased = _DeadBranch(bias=True)
    biased.load_state_dict(net.state_dict(), strict=False)
    with torch.no_grad():
        biased.dead[1].bias.fill_(0.05)
    assert score_network("fisher", biased, x, y) > 10 * fisher
    for m in ("grad_norm", "snip", "grasp", "jacob_cov", "nwot"):
        assert score_network(m, biased, x, y) == pytest.approx(score_network(m, net, x, y), rel=1e-5), m


def test_jacob_cov_eigenvalue_formula():
    j = np.random.default_rng(0).normal(size=(5, 40))
    z = (j - j.mean(1, keepdims=True)) / j.std(1, keepdims=True)
    corr = z @ z.T / j.shape[1]
    v = np.linalg.eig(corr)[0].real   # the reference's general eigensolver
    expected = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert jacob_cov_score(j) == pytest.approx(expected, rel=1e-9)
    assert np.isnan(jacob_cov_score(np.vstack([j[:4], np.zeros(40)])))  # constant row: NaN as the reference


def test_jacob_cov_of_a_network_against_per_image_float64_gradients():
    net, (x, y) = _convnet(bn=False), _batch()
    net64 = copy.deepcopy(net).double()
    rows = []
    for i in range(len(x)):
        xi = x[i:i + 1].double().requires_grad_(True)
        rows.append(torch.autograd.grad(net64(xi).sum(), xi)[0].flatten().numpy())
    assert score_network("jacob_cov", net, x, y) == pytest.approx(jacob_cov_score(np.stack(rows)), rel=1e-3)


def test_nwot_kernel_is_units_minus_hamming():
    rng = np.random.default_rng(0)
    codes = [torch.from_numpy(rng.random((4, 7)) > 0.5), torch.from_numpy(rng.random((4, 2, 3)) > 0.5)]
    flat = np.hstack([c.reshape(4, -1).numpy() for c in codes]).astype(int)
    expected = np.array([[flat.shape[1] - np.sum(flat[i] != flat[j]) for j in range(4)] for i in range(4)])
    np.testing.assert_array_equal(nwot_kernel(codes), expected)


def test_nwot_of_a_network_counts_relu_inputs():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(75, 20), nn.ReLU(), nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3))
    x, y = _batch()
    with torch.no_grad():
        h1 = net[1](net[0](x))
        h2 = net[3](F.relu(h1))
    c = np.hstack([(h1 > 0).numpy(), (h2 > 0).numpy()]).astype(int)
    k = np.array([[c.shape[1] - np.sum(c[i] != c[j]) for j in range(len(c))] for i in range(len(c))], float)
    assert score_network("nwot", net, x, y) == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-9)


def test_counts_and_zen():
    net, (x, y) = _convnet(), _batch()
    assert score_network("params", net, x, y) == count_params(net)
    assert score_network("flops", net, x, y) == count_flops(net, input_size=(3, 5, 5))
    z = score_network("zen", net, x, y, seed=1)
    assert np.isfinite(z) and z == score_network("zen", net, x, y, seed=1) != score_network("zen", net, x, y, seed=2)


# --------------------------------------------------------------------------- NB201, state, joint


@pytest.fixture(scope="module")
def nb201_batch():
    data = load_dataset("cifar10-valid", limit=64)
    return probe_batch(data, batch_size=8, seed=0)


def test_proxies_leave_weights_and_bn_statistics_untouched(nb201_batch):
    x, y = nb201_batch
    torch.manual_seed(0)
    net = get_space("nb201").build_network("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|"
                                           "nor_conv_3x3~1|skip_connect~2|", C=4, N=1)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for m in ZERO_COST:
        score_network(m, net, x, y)
    score_all(net, x, y)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a proxy changed weights or BN statistics"
    assert not net.training and all(p.grad is None for p in net.parameters())


def test_joint_equals_one_at_a_time(nb201_batch):
    x, y = nb201_batch
    torch.manual_seed(0)
    net = get_space("nb201").build_network(1234, C=4, N=1)
    joint = score_all(net, x, y)
    for m in ZERO_COST:
        assert joint[m] == pytest.approx(score_network(m, net, x, y), rel=1e-4, abs=1e-6, nan_ok=True), m


def test_joint_inplace_consumes_only_its_own_network(nb201_batch):
    # inplace skips the copies: same values, and zen still sees the entry BN running statistics
    # (the shared training-mode pass moves them; score_all restores them before zen).
    x, y = nb201_batch
    torch.manual_seed(0)
    net = get_space("nb201").build_network("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|"
                                           "nor_conv_3x3~1|skip_connect~2|", C=4, N=1)
    kept = score_all(net, x, y)
    consumed = score_all(copy.deepcopy(net), x, y, inplace=True)
    assert all(np.isfinite(v) for v in kept.values())
    assert kept.keys() == consumed.keys() == set(ZERO_COST)
    for m in ZERO_COST:
        assert consumed[m] == pytest.approx(kept[m], rel=1e-6, nan_ok=True), m
    assert consumed["zen"] == pytest.approx(score_network("zen", net, x, y), rel=1e-5)


def test_disconnected_cell_scores_nonfinite_where_the_reference_does(nb201_batch):
    x, y = nb201_batch
    net = get_space("nb201").build_network("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", C=4, N=1)
    vals = score_all(net, x, y, ["jacob_cov", "grad_norm", "synflow"])
    assert np.isnan(vals["jacob_cov"]) and vals["grad_norm"] == 0.0 and vals["synflow"] == 0.0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("x, y, match", [
    (torch.zeros(6, 3, 5), torch.zeros(6, dtype=torch.long), "must be a float tensor"),
    (torch.zeros(6, 1, 5, 5), torch.zeros(6, dtype=torch.long), "1 channels"),
    (torch.zeros(6, 3, 5, 5), torch.zeros(5, dtype=torch.long), "6 integer class indices"),
    (torch.zeros(1, 3, 5, 5), torch.zeros(1, dtype=torch.long), "needs >= 2"),
])
def test_bad_batch_is_a_clear_error(x, y, match):
    with pytest.raises(HarnessError, match=match):
        score_network("snip", _convnet(), x, y)


def test_network_without_classifier_is_a_clear_error():
    x, y = _batch()
    with pytest.raises(HarnessError, match="classifier"):
        score_network("grad_norm", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), x, y)
    with pytest.raises(HarnessError, match="global average pooling"):
        score_network("zen", nn.Sequential(nn.Flatten(), nn.Linear(75, 3)), x, y)


def test_names_and_dataset_checks():
    assert proxy_family("zc:synflow").zero_cost
    with pytest.raises(HarnessError, match="zero-cost proxy 'nope'"):
        proxy_family("zc:nope")
    data = load_dataset("cifar10-valid", limit=16)
    with pytest.raises(HarnessError, match="cannot score cifar100"):
        ZeroCostProxy(get_space("nb201"), "snip", data, table_dataset="cifar100")
    with pytest.raises(HarnessError, match="no embedded data"):
        make_proxy("zc:snip", ProxyContext(space=get_space("nb201"), dataset="cifar100"))
    with pytest.raises(HarnessError, match="key 'sample' is needed"):
        build_definition({"name": "x", "kind": "rank", "datasets": ["cifar10"], "proxies": ["zc:snip"]}, "t")
    with pytest.raises(HarnessError, match="key 'zc_top_k' must be in 2..sample"):
        build_definition({"name": "x", "kind": "rank", "datasets": ["cifar10"], "proxies": ["zc:snip"],
                          "sample": 10, "zc_top_k": 11}, "t")


# --------------------------------------------------------------------------- rank kind, report


def test_rank_kind_end_to_end(tmp_path, capsys):
    defn = build_definition({"name": "zc-e2e", "kind": "rank", "datasets": ["cifar10", "cifar100"],
                             "proxies": ["nb201-12ep-val", "zc:synflow", "zc:params"], "sample": 10, "draws": 2,
                             "zc_timed": 3, "zc_top_k": 5, "train": {"limit": 128}}, "test")
    df = run_benchmark(defn, tmp_path, progress=False)
    assert "skipping zero-cost proxies zc:synflow, zc:params on cifar100" in capsys.readouterr().err
    top = df[df["selection"] == "top-5-of-random-10"].set_index("proxy")
    assert set(top.index) == {"zc:synflow", "zc:params"} and (top["n"] == 5).all()
    df = df[df["selection"] != "top-5-of-random-10"]
    zc = df[df["proxy"].str.startswith("zc:")].set_index("proxy")
    assert set(zc.index) == {"zc:synflow", "zc:params"} and set(zc["dataset"]) == {"cifar10"}
    assert (zc["n"] == 10).all() and (zc["selection"] == "random-10").all() and (zc["timed"] == 3).all()
    assert (zc["wall_s"] > 0).all() and np.allclose(zc["total_s"], zc["wall_s"] * 10)
    assert zc.loc["zc:params", "srocc"] > 0.3  # #params ranks NB201 networks well (about 0.75 in the paper)
    rows = ResultsStore(tmp_path).read("zero_cost")
    assert len(rows) == 20 and rows["wall_s"].notna().sum() == 6
    params = rows[rows["proxy"] == "zc:params"]
    space = get_space("nb201")
    for r in params.itertuples():
        assert r.value == count_params(space.build_network(r.arch_str))
    # the top-5 row ranks the 5 best of the 10 scored architectures by ground truth
    best = params.nlargest(5, "ground_truth")
    tau, rho = correlations(best["value"].to_numpy(), best["ground_truth"].to_numpy())
    assert top.loc["zc:params", "krocc"] == pytest.approx(tau) and top.loc["zc:params", "srocc"] == pytest.approx(rho)
    board = "\n".join(build_pages(tmp_path).values())
    assert "## Proxies" in board and "| zc:synflow | random-10 | 10 |" in board


def test_proxies_section_and_plot(tmp_path):
    rank = pd.DataFrame([
        {"benchmark": "b", "batch_id": "b-20250101T000000-aaaaaa", "dataset": "cifar10", "proxy": p,
         "selection": sel, "n": 100, "draws": d, "krocc": k, "krocc_std": 0.01, "srocc": s, "srocc_std": 0.02,
         "wall_s": w, "total_s": w * 100 if w else None, "device": dev}
        for p, sel, d, k, s, w, dev in [("zc:synflow", "random-100", 1, 0.6, 0.8, 0.1, "cpu"),
                                        ("zc:snip", "random-100", 1, 0.4, 0.6, 0.5, "cpu"),
                                        ("zc:params", "random-100", 1, 0.55, 0.75, 0.01, "cpu"),
                                        ("nb201-12ep-val", "random-100", 20, 0.6, 0.8, 1e-5, None),
                                        ("nb201-12ep-val", "top-1000", 1, 0.4, 0.6, 1e-5, None)]])
    md = proxies_section(rank)
    assert "| zc:synflow | random-100 | 100 | 0.600 | 0.800 | 100.00 ms | 10.0 s | cpu | 0.737 |" in md
    assert "0.800 ± 0.020" in md and "table look-up" in md and "top-1000" not in md
    assert proxies_section(None) == ""
    assert list(pareto(np.array([0.1, 0.5, 0.01]), np.array([0.8, 0.6, 0.75]))) == [2, 0]
    assert plot_proxies(rank, tmp_path / "p.png").stat().st_size > 1000
    bigger = rank.iloc[:1].assign(benchmark="c", batch_id="c-20250101T000000-bbbbbb", n=1000, srocc=0.81)
    points = plot_points(pd.concat([rank, bigger])).set_index("proxy")
    assert len(points) == 3 and points.loc["zc:synflow", "n"] == 1000 and points.loc["zc:synflow", "srocc"] == 0.81
