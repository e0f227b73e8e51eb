"""NB201 search supernet: shared alpha, explicit weights, masking, projection, discretisation."""
import pytest
import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.spaces.nb201.encoding import EDGES, OPS, to_ops
from harness.spaces.nb201.network import InferCell, NB201Network
from harness.spaces.nb201.supernet import NB201Supernet, SearchCell

ARCH = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def _one_hot(arch):
    return F.one_hot(torch.tensor([OPS.index(op) for op in to_ops(arch)]), len(OPS)).float()


def _small(**kw):
    torch.manual_seed(0)
    return NB201Supernet(C=8, N=1, **kw)


def test_structure_and_shared_alpha():
    net = NB201Supernet()
    assert len(net.cells) == 17
    assert sum(isinstance(c, SearchCell) for c in net.cells) == 15
    assert net.arch_parameters.shape == (6, 5) and net.arch_parameters.requires_grad
    assert [n for n, _ in net.named_parameters() if "alpha" in n] == ["arch.alpha"]
    assert all(p is not net.arch_parameters for p in net.weight_parameters())
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 1
    # Mixed-op BN: affine=False and no running stats by default.
    bn = net.cells[0].edges[0].ops[OPS.index("nor_conv_3x3") - 1][2]
    assert bn.weight is None and bn.running_mean is None
    assert NB201Supernet(track_running_stats=True).cells[0].edges[0].ops[1][2].running_mean is not None


def test_forward_default_uses_softmax_and_alpha_gets_gradients():
    net = _small()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    out = net(x)
    assert out.shape == (4, 10)
    assert torch.allclose(out, net(x, weights=F.softmax(net.arch_parameters, dim=-1)))
    F.cross_entropy(out, y).backward()
    assert net.arch_parameters.grad is not None and net.arch_parameters.grad.abs().sum() > 0


def test_explicit_one_hot_weights_equal_the_discrete_network():
    # With one-hot weights the supernet computes exactly the NB201 network of that arch (BN in
    # train mode with affine at its init = BN without affine; other ops are multiplied by 0).
    sup = _small().train()
    net = NB201Network(ARCH, C=8, N=1).train()
    for k, (cell_s, cell_n) in enumerate(zip(sup.cells, net.cells)):
        if isinstance(cell_n, InferCell):
            own = iter(cell_n.layers)
            for e, op in enumerate(to_ops(ARCH)):
                if op == "none":
                    continue
                src, dst = cell_s.edges[e].ops[OPS.index(op) - 1], next(own)
                dst_params = dict(dst.named_parameters())
                with torch.no_grad():
                    for name, p in src.named_parameters():
                        dst_params[name].copy_(p)
        else:
            cell_n.load_state_dict(cell_s.state_dict())
    for name in ("stem", "head"):
        getattr(net, name).load_state_dict(getattr(sup, name).state_dict())
    x = torch.randn(4, 3, 16, 16)
    assert torch.allclose(sup(x, weights=_one_hot(ARCH)), net(x), rtol=0, atol=1e-6)


def test_bad_weight_shape():
    net = _small()
    with pytest.raises(HarnessError, match=r"expected a \(6, 5\) tensor, got \(6, 4\)"):
        net(torch.randn(2, 3, 16, 16), weights=torch.ones(6, 4))


def test_genotype_is_argmax_of_alpha():
    net = _small()
    with torch.no_grad():
        net.arch_parameters.copy_(3.0 * _one_hot(ARCH))
    assert net.genotype() == ARCH


def test_masking_zeroes_one_op_and_genotype_avoids_it():
    net = _small()
    with torch.no_grad():
        net.arch_parameters.copy_(3.0 * _one_hot(ARCH))
    soft = F.softmax(net.arch_parameters, dim=-1).detach()
    net.mask_op(0, "nor_conv_3x3")  # edge 0->1's argmax
    w = net.arch.weights().detach()
    assert w[0, OPS.index("nor_conv_3x3")] == 0
    keep = torch.ones(6, 5, dtype=torch.bool)
    keep[0, OPS.index("nor_conv_3x3")] = False
    assert torch.equal(w[keep], soft[keep])  # the others keep their softmax weight (DARTS+PT)
    assert not net.mask[0, OPS.index("nor_conv_3x3")] and int(net.mask.sum()) == 29
    assert to_ops(net.genotype())[0] != "nor_conv_3x3"
    assert to_ops(net.genotype())[1:] == to_ops(ARCH)[1:]


def test_projection_fixes_an_edge():
    net = _small()
    net.project((2, 3), "avg_pool_3x3")
    e = EDGES.index((2, 3))
    w = net.arch.weights()
    assert torch.equal(w[e], F.one_hot(torch.tensor(OPS.index("avg_pool_3x3")), 5).float())
    assert net.mask[e].tolist() == [False, False, False, False, True]
    with torch.no_grad():  # alpha strongly prefers another op, projection still wins
        net.arch_parameters[e, OPS.index("nor_conv_3x3")] = 10.0
    assert to_ops(net.genotype())[e] == "avg_pool_3x3"
    net(torch.randn(2, 3, 16, 16)).sum().backward()  # forward works with a projected edge
    assert net.arch_parameters.grad[e].abs().sum() == 0  # a projected edge no longer learns


def test_projection_and_mask_errors():
    net = _small()
    net.project(0, 3)
    with pytest.raises(HarnessError, match=r"edge \(0, 1\) is already projected to 'nor_conv_3x3'"):
        net.project(0, 1)
    with pytest.raises(HarnessError, match="cannot mask its ops"):
        net.mask_op(0, "none")
    net.mask_op(1, "none")
    with pytest.raises(HarnessError, match="'none' is masked out and cannot be chosen"):
        net.project(1, "none")
    for op in OPS[:4]:
        net.mask_op(5, op)
    with pytest.raises(HarnessError, match="'avg_pool_3x3' is its last remaining op"):
        net.mask_op(5, "avg_pool_3x3")
    with pytest.raises(HarnessError, match="edge 6: expected 0..5"):
        net.project(6, "none")
    with pytest.raises(HarnessError, match="op 'conv': expected 0..4 or one of none"):
        net.mask_op(2, "conv")
    net.arch.reset()
    assert bool(net.mask.all()) and int((net.arch.projected >= 0).sum()) == 0
