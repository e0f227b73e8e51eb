"""DARTS+PT: the PT selection rule, the seeded edge order, projections through tuning, the frozen
prefix, the exact Hessian, and first- / second-order DARTS steps against hand computations."""
import pytest
import torch
from torch import nn

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition
from harness.methods.oneshot.bilevel import (
    SearchConfig,
    alpha_grad_first,
    alpha_grad_second,
    search_halves,
    search_step,
)
from harness.methods.oneshot.dartspt import config_from_table, dartspt_search, parse_supernet
from harness.methods.oneshot.decision import KINDS, Decisions
from harness.methods.oneshot.hessian import alpha_hessian_eigen, dominant_eigenvalue, exact_hessian, power_iteration
from harness.methods.oneshot.pt import edge_order, project_next, select_op
from harness.spaces import get_space, space_names
from harness.spaces.nb201.encoding import OPS
from harness.spaces.nb201.supernet import ArchitectureWeights, NB201Supernet
from harness.transfer.splice import build_tr_supernet


class FakeSupernet(nn.Module):
    """An architecture state whose 'accuracy' is a known function of the op weights: removing op k
    from edge e costs ``harm[e, k]`` points."""

    def __init__(self, harm: torch.Tensor):
        super().__init__()
        self.arch = ArchitectureWeights()
        self.harm = harm

    def accuracy(self, weights: torch.Tensor) -> float:
        removed = (weights == 0) & self.arch.mask
        return 90.0 - float((self.harm * removed).sum())

    def project(self, edge, op):
        self.arch.project(edge, op)


def test_pt_keeps_the_op_whose_removal_hurts_most():
    harm = torch.zeros(6, 5)
    harm[2] = torch.tensor([0.0, 3.0, 7.0, 1.0, 7.0])  # op 2 and op 4 tie: the lower index wins
    harm[4] = torch.tensor([0.0, 5.0, 1.0, 9.0, 2.0])
    net = FakeSupernet(harm)
    op, values = select_op(net, 4, net.accuracy)
    assert op == 3 and values == [90.0, 85.0, 89.0, 81.0, 88.0]
    assert select_op(net, 2, net.accuracy)[0] == 2
    net.arch.mask_op(4, 3)  # a masked op is never measured nor chosen
    op, values = select_op(net, 4, net.accuracy)
    assert op == 1 and values[3] != values[3]


def test_edge_order_is_seeded_and_projection_follows_it():
    assert edge_order(6, 3) == edge_order(6, 3)
    assert sorted(edge_order(6, 3)) == list(range(6))
    assert len({tuple(edge_order(6, s)) for s in range(8)}) > 1
    net = FakeSupernet(torch.rand(6, 5, generator=torch.Generator().manual_seed(0)))
    order = edge_order(6, 3)
    chosen = [project_next(net, order, net.accuracy)["edge"] for _ in range(6)]
    assert chosen == order and project_next(net, order, net.accuracy) is None
    assert net.arch.genotype().count("~") == 6


def test_exact_hessian_of_a_quadratic():
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a = q @ torch.diag(torch.tensor([5.0, 2.0, -1.0, 0.5], dtype=torch.float64)) @ q.T
    x = nn.Parameter(torch.randn(4, dtype=torch.float64))
    h = exact_hessian(0.5 * x @ a @ x + (x ** 3).sum() * 0, [x])
    torch.testing.assert_close(h, a)
    assert dominant_eigenvalue(h) == pytest.approx(5.0)
    assert power_iteration(lambda v: a @ v, 4, iters=200) == pytest.approx(5.0, rel=1e-6)


class Tiny(nn.Module):
    """w, alpha scalars; the 'loss' is given by the test through ``loss(model, x, y)``."""

    def __init__(self, w: float, alpha: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w], dtype=torch.float64))
        self.alpha = nn.Parameter(torch.tensor([alpha], dtype=torch.float64))

    @property
    def arch_parameters(self):
        return self.alpha

    def weight_parameters(self):
        return [self.w]


C, T = 2.0, 3.0


def tiny_loss(model, x, y):
    """Train batches (x = 0): 0.5 (w - C alpha)^2; valid batches (x = 1): 0.5 (w alpha - T)^2."""
    w, a = model.w, model.alpha
    return (0.5 * (w - C * a) ** 2).sum() if float(x) == 0 else (0.5 * (w * a - T) ** 2).sum()


TRAIN, VALID = (torch.tensor(0.0), None), (torch.tensor(1.0), None)


def test_first_order_step_is_the_valid_gradient():
    m = Tiny(1.5, 0.7)
    (g,) = alpha_grad_first(m, VALID, tiny_loss)
    assert float(g) == pytest.approx((1.5 * 0.7 - T) * 1.5)


def test_second_order_step_matches_the_hand_computation():
    w, a, xi, wd = 1.5, 0.7, 0.1, 0.01
    m = Tiny(w, a)
    opt = torch.optim.SGD(m.weight_parameters(), lr=xi, momentum=0.9, weight_decay=wd)
    (g,) = alpha_grad_second(m, TRAIN, VALID, opt, tiny_loss)
    w1 = w - xi * ((w - C * a) + wd * w)  # DARTS's virtual step (no momentum buffer yet)
    # d/dalpha L_val(w'(alpha), alpha) = (w' a - T)(w' + a dw'/dalpha), dw'/dalpha = xi C
    assert float(g) == pytest.approx((w1 * a - T) * (w1 + xi * C * a), rel=1e-9)
    assert float(m.w.detach()) == w  # the weights are restored
    # with a momentum buffer the virtual step includes it
    m.w.grad = torch.tensor([0.4], dtype=torch.float64)
    opt.step()
    w, buf = float(m.w.detach()), 0.4 + wd * 1.5
    (g,) = alpha_grad_second(m, TRAIN, VALID, opt, tiny_loss)
    w1 = w - xi * (0.9 * buf + (w - C * a) + wd * w)
    assert float(g) == pytest.approx((w1 * a - T) * (w1 + xi * C * a), rel=1e-9)


def test_search_step_trains_alpha_on_valid_and_weights_on_train():
    m = Tiny(1.5, 0.7)
    cfg = SearchConfig(grad_clip=1e9)
    w_opt = torch.optim.SGD(m.weight_parameters(), lr=0.1)
    a_opt = torch.optim.SGD([m.alpha], lr=1.0)
    search_step(m, TRAIN, VALID, w_opt, a_opt, cfg, tiny_loss)
    a1 = 0.7 - (1.5 * 0.7 - T) * 1.5
    assert float(m.alpha.detach()) == pytest.approx(a1)
    assert float(m.w.detach()) == pytest.approx(1.5 - 0.1 * (1.5 - C * a1))


def test_hessian_eigen_of_the_supernet_agrees_with_power_iteration():
    torch.manual_seed(0)
    net = NB201Supernet(num_classes=10, C=4, N=1)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    eig = alpha_hessian_eigen(net.train(), x, y, weight_decay=1e-3, power_iters=300)
    assert eig["eig"] == pytest.approx(eig["eig_power"], rel=1e-3)


def _tr_supernet():
    torch.manual_seed(0)
    backbone = build_backbone("resnet32", 10)
    return build_tr_supernet(NB201Supernet(num_classes=10, C=16, N=1), backbone, i=1, j=1)


def test_search_keeps_the_prefix_and_projected_edges_one_hot(tiny_data):
    data = tiny_data(32)
    model = _tr_supernet()
    prefix = {k: v.clone() for k, v in model.prefix.state_dict().items()}
    cfg = SearchConfig(epochs=1, warmup_epochs=1, tune_epochs=3, project_every=1, batch_size=16,
                       hessian_every=0, power_iters=0)
    res = dartspt_search(model, data, cfg, seed=0)
    for k, v in model.prefix.state_dict().items():
        assert torch.equal(v, prefix[k]), k  # weights and BN statistics of the frozen prefix
    assert model.training and not model.prefix.training  # searched in train mode, the prefix in eval
    weights = model.arch.weights()
    assert bool((model.arch.projected >= 0).all())
    torch.testing.assert_close(weights, torch.nn.functional.one_hot(model.arch.projected, 5).float())
    # tuning epochs after the first projections kept those edges one-hot: 3 projections during
    # tuning (epochs 0, 1, 2), the rest after it
    assert [p["tune_epoch"] for p in res.projections][:3] == [0, 1, 2] and len(res.projections) == 6
    assert [p["edge"] for p in res.projections] == edge_order(6, 0)
    assert res.arch == model.genotype()


def test_projected_edge_stays_one_hot_while_alpha_trains(tiny_data):
    data = tiny_data(32)
    torch.manual_seed(0)
    model = NB201Supernet(num_classes=10, C=4, N=1)
    model.project(2, 3)
    before = model.arch.weights()[2].clone()
    dartspt_search(model, data, SearchConfig(epochs=2, tune_epochs=0, batch_size=16, hessian_every=0), seed=1)
    torch.testing.assert_close(model.arch.weights()[2], before)
    assert model.genotype().split("+")[1].split("|")[2] == f"{OPS[3]}~1"  # edge 2 is 1->2


def test_search_halves_are_the_cifar10_valid_halves(tiny_data):
    data = tiny_data(32)
    w, a = search_halves(data, 0.5)
    assert w is data.train and a is data.valid
    w, a = search_halves(data, 0.25)
    assert len(w) == 16 and len(a) == 48


def test_definitions_check_oneshot_settings():
    base = {"name": "o", "kind": "oneshot"}
    d = build_definition({**base, "warmups": [1, 5], "search": {"epochs": 6, "warmup": {"original": 2}}}, "t")
    assert config_from_table(d["search"], "original", 5).warmup_epochs == 2  # the axis is the Tr-Supernets'
    assert config_from_table(d["search"], "tr-supernet-5-5", 5).warmup_epochs == 5
    assert parse_supernet("tr-supernet-10-10") == (10, 10)
    for bad, msg in (({"supernets": ["tr-net-5-5"]}, "supernets"), ({"search": {"order": "third"}}, "order"),
                     ({"warmups": [9], "search": {"epochs": 4}}, "warmup_epochs"), ({"cutouts": ["x"]}, "cutouts")):
        with pytest.raises(HarnessError, match=msg):
            build_definition({**base, **bad}, "t")


@pytest.mark.parametrize("name", space_names())
def test_every_supernet_offers_pt_the_decision_interface(name):
    """The supernets (in harness.spaces, below the methods) implement DARTS+PT's decision interface
    by its shape and name its kinds by value: both checked here against the method's definition."""
    arch = get_space(name).build_supernet(num_classes=10).arch
    assert isinstance(arch, Decisions)
    lanes = [(kind, keys) for phase in arch.pt_lanes() for kind, keys in phase]
    assert lanes and {kind for kind, _ in lanes} <= set(KINDS)
    for kind, keys in lanes:
        for key in keys:
            assert not arch.decided(kind, key) and len(arch.candidates(kind, key)) >= 2
            assert isinstance(arch.describe(kind, key), dict)
