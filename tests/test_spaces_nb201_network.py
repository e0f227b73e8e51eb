"""NB201 inference network: fidelity to the benchmark (params, FLOPs) and to the reference cell."""
import copy

import pytest
import torch
from torch import nn

from harness import HarnessError
from harness.measure.counting import count_flops, count_params
from harness.spaces.nb201.encoding import EDGES, from_index
from harness.spaces.nb201.network import InferCell, NB201Network, search_cell_position
from harness.spaces.nb201.ops import ResNetBasicblock

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_arch0_parameter_counts_match_the_benchmark():
    assert from_index(0) == NB201Network(ARCH0).ops
    assert count_params(NB201Network(0, num_classes=10)) == 129_306
    assert count_params(NB201Network(0, num_classes=120)) == 136_456


def test_arch0_flops_match_the_benchmark():
    assert count_flops(NB201Network(ARCH0, num_classes=10), (3, 32, 32)) == 15_647_370
    assert count_flops(NB201Network(ARCH0, num_classes=120), (3, 16, 16)) == 3_919_480


def test_count_flops_restores_mode_and_leaves_bn_stats():
    net = NB201Network(ARCH0).train()
    before = net.stem[1].running_mean.clone()
    count_flops(net)
    assert net.training
    assert torch.equal(net.stem[1].running_mean, before)


def test_body_layout_and_cell_positions():
    net = NB201Network(ARCH0)
    assert len(net.cells) == 17
    reductions = [k for k, m in enumerate(net.cells) if isinstance(m, ResNetBasicblock)]
    assert reductions == [5, 11]
    assert net.search_positions() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16]
    assert all(isinstance(net.cells[p], InferCell) for p in net.search_positions())
    assert [m.out_dim for m in net.cells] == [16] * 5 + [32] * 6 + [64] * 6
    with pytest.raises(HarnessError, match="search cell 16: must be in 1..15"):
        search_cell_position(16)


def test_forward_and_features_shapes():
    net = NB201Network(ARCH0, num_classes=7).eval()
    x = torch.randn(1, 3, 32, 32)
    assert net(x).shape == (1, 7)
    feats = net.forward_features(x)
    assert len(feats) == 17
    assert feats[0].shape == (1, 16, 32, 32) and feats[5].shape == (1, 32, 16, 16) and feats[-1].shape == (1, 64, 8, 8)
    assert torch.allclose(net.head(feats[-1]), net(x))


def test_bad_inputs():
    with pytest.raises(HarnessError, match="unknown op 'conv'"):
        NB201Network("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(HarnessError, match="out of range"):
        NB201Network(15625)
    with pytest.raises(HarnessError, match="num_classes=0"):
        NB201Network(0, num_classes=0)


# --- 'none' skipping vs the reference's x*0 sum -------------------------------------------------

class _Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)  # the reference Zero op (stride 1)


class _ReferenceCell(nn.Module):
    """The reference InferCell's forward: one module per edge (Zero for 'none'), node = sum(...)."""

    def __init__(self, cell: InferCell, ops):
        super().__init__()
        own = iter(cell.layers)
        self.edge_ops = nn.ModuleList(_Zero() if op == "none" else next(own) for op in ops)

    def forward(self, x):
        nodes = [x]
        for node in (1, 2, 3):
            nodes.append(sum(self.edge_ops[e](nodes[src]) for e, (src, dst) in enumerate(EDGES) if dst == node))
        return nodes[-1]


def _reference_copy(net: NB201Network) -> NB201Network:
    ref = copy.deepcopy(net)
    for k, cell in enumerate(ref.cells):
        if isinstance(cell, InferCell):
            ref.cells[k] = _ReferenceCell(cell, net.ops)
    return ref


@pytest.mark.parametrize("arch", [
    ARCH0,
    "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",  # node 1 all-none
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",  # node 2 all-none
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|none~2|",  # output node all-none
])
def test_none_skipping_is_identical_to_reference(arch):
    torch.manual_seed(0)
    net = NB201Network(arch, C=8, N=2)  # the identity holds for any width/depth; small keeps it fast
    # Non-trivial BN parameters so a zero node's BN output (its bias) is visible downstream.
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.2)
            nn.init.normal_(m.bias, 0.0, 0.2)
    ref = _reference_copy(net)
    x = torch.randn(4, 3, 16, 16)

    net.train(), ref.train()
    out, out_ref = net(x), ref(x)
    assert torch.equal(out, out_ref)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    for (name, p), p_ref in zip(net.named_parameters(), ref.parameters()):
        g_ref = p_ref.grad if p_ref.grad is not None else torch.zeros_like(p_ref)
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.equal(g, g_ref), name
    for b, b_ref in zip(net.buffers(), ref.buffers()):  # same BN statistics after the train step
        assert torch.equal(b, b_ref)

    net.eval(), ref.eval()
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_all_none_output_node_still_feeds_bn_bias():
    # The output node is all-'none': a zero tensor, so the next cell's conv->BN yields BN's bias;
    # the network output must depend on those biases (the node cannot just be dropped).
    net = NB201Network("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|none~2|", C=8, N=2).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        feats = net.forward_features(x)
        assert torch.count_nonzero(feats[0]) == 0
        before = net(x)
        net.head.lastact[0].bias.fill_(0.5)
        assert not torch.equal(net(x), before)
