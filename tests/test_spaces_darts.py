"""The DARTS space: genotypes, the evaluation network, the supernet and its DARTS+PT hooks."""
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import HarnessError
from harness.measure.counting import count_params
from harness.spaces import get_space
from harness.spaces.darts import genotype as gt
from harness.spaces.darts.network import NetworkCIFAR
from harness.spaces.darts.ops import GENOTYPE_OPS, PRIMITIVES
from harness.spaces.darts.supernet import EDGES, DartsSupernet, node_edges

DARTS = get_space("darts")
FAST = settings(max_examples=60, deadline=None)


def test_darts_v2_parameter_counts_match_the_reference():
    """DARTS_V2, C=36, 20 layers, 10 classes: 3,349,342 parameters outside the auxiliary head,
    476,426 in it (the reference ``NetworkCIFAR``)."""
    net = DARTS.build_network(gt.DARTS_V2, num_classes=10, C=36, layers=20, auxiliary=True)
    aux = count_params(net.auxiliary_head)
    assert (count_params(net) - aux, aux) == (3_349_342, 476_426)
    assert count_params(DARTS.build_network(gt.DARTS_V2, auxiliary=False)) == 3_349_342


def test_evaluation_network_outputs_and_layout():
    torch.manual_seed(0)
    net = DARTS.build_network(gt.DARTS_V2, num_classes=7, C=8, layers=8)
    x = torch.randn(3, 3, 32, 32)
    logits, aux = net.train()(x)
    assert logits.shape == aux.shape == (3, 7)
    assert net.eval()(x).shape == (3, 7)  # eval: logits only, no auxiliary head
    feats = net.forward_features(x)
    # reductions at cells 2 and 5 (8 // 3, 16 // 3): 4C channels per stage, halved resolution
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 32, 32)] * 2 + [(64, 16, 16)] * 3 + [(128, 8, 8)] * 3
    assert [c.reduction for c in net.cells] == [False, False, True, False, False, True, False, False]


def test_drop_path_only_in_training_and_scales_kept_paths():
    torch.manual_seed(0)
    net = DARTS.build_network(gt.DARTS_V2, C=4, layers=5, auxiliary=False)
    x = torch.randn(8, 3, 16, 16)
    net.eval()
    ref = net(x)
    net.drop_path_prob = 0.5
    assert torch.equal(net(x), ref)  # eval: drop-path off
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(1)
    net.drop_path_prob = 0.0
    b = net(x)
    assert not torch.allclose(a, b)


# -- genotypes -----------------------------------------------------------------------------------

def test_genotype_text_round_trips_and_accepts_range_concat():
    for text in (gt.DARTS_V1, gt.DARTS_V2):
        assert gt.to_str(gt.parse(text)) == text
    ranged = gt.DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert gt.parse(ranged) == gt.parse(gt.DARTS_V2)
    spaced = "  " + gt.DARTS_V2.replace("'", '"').replace(", ", " ,  ") + "\n"
    assert gt.parse(spaced) == gt.parse(gt.DARTS_V2)


pairs = st.integers(2, 5).flatmap(lambda node: st.tuples(
    st.sampled_from(GENOTYPE_OPS), st.sampled_from(GENOTYPE_OPS),
    st.lists(st.integers(0, node - 1), min_size=2, max_size=2, unique=True)))
cells = st.tuples(*[st.tuples(st.sampled_from(GENOTYPE_OPS), st.sampled_from(GENOTYPE_OPS),
                              st.lists(st.integers(0, k - 1), min_size=2, max_size=2, unique=True))
                    for k in range(2, 6)])


def _cell(nodes) -> list:
    return [pair for op1, op2, (a, b) in nodes for pair in ((op1, a), (op2, b))]


@FAST
@given(normal=cells, reduce=cells)
def test_parse_format_round_trip_property(normal, reduce):
    g = gt.validate(_cell(normal), [2, 3, 4, 5], _cell(reduce), range(2, 6))
    text = gt.to_str(g)
    assert gt.parse(text) == g and gt.to_str(gt.parse(text)) == text
    assert DARTS.from_params(DARTS.to_params(g)) == g
    hash(g)


@pytest.mark.parametrize("text, match", [
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2, 3, 4, 5])",
     "normal cell: expected 8"),
    (gt.DARTS_V2.replace("('dil_conv_3x3', 2)", "('conv_9x9', 2)"), "normal cell, node 5: unknown op 'conv_9x9'"),
    (gt.DARTS_V2.replace("('dil_conv_3x3', 2)", "('none', 2)"), "normal cell, node 5: op 'none' is not allowed"),
    (gt.DARTS_V2.replace("('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2)",
                         "('max_pool_3x3', 0), ('max_pool_3x3', 2), ('skip_connect', 2)"),
     "reduce cell, node 2: input 2 is not an earlier node"),
    (gt.DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
                         "('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0)"),
     "normal cell, node 2: both inputs are node 0"),
    (gt.DARTS_V2.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 3]"), "reduce_concat"),
    (gt.DARTS_V2.replace("Genotype(", "__import__('os').system('true') or Genotype("), "expected Genotype"),
    (gt.DARTS_V2.replace("('sep_conv_3x3', 0)", "(open('x'), 0)", 1), "must be literals"),
    (gt.DARTS_V2.replace("normal=", "normall="), "field 'normall' is unknown"),
    ("Genotype(normal=[])", "missing field normal_concat, reduce, reduce_concat"),
    ("", "expected Genotype"), ("garbage", "expected Genotype"), ("Genotype(", "expected Genotype"),
])
def test_invalid_genotypes_name_the_problem(text, match):
    with pytest.raises(HarnessError, match=re.escape(match)):
        DARTS.parse(text)


def test_space_layout_and_mutation_modes(rng):
    dists = DARTS.distributions()
    assert len(dists) == 2 * 4 * 3
    assert dists["normal_node2_inputs"].choices == ("0,1", "1,0")
    assert len(dists["reduce_node5_inputs"].choices) == 5 * 4
    assert dists["normal_node3_op1"].choices == GENOTYPE_OPS and "none" not in GENOTYPE_OPS
    g = DARTS.parse(gt.DARTS_V2)
    assert DARTS.to_params(g)["normal_node4_inputs"] == "1,0"
    for _ in range(50):
        child = DARTS.mutate(g, rng, "input")
        diff = [(c, p) for c in gt.CELLS for p in range(8) if g.cell(c)[p] != child.cell(c)[p]]
        assert len(diff) == 1 and diff[0][1] >= 2  # node 2 has no other input to move to
        c, p = diff[0]
        assert child.cell(c)[p][0] == g.cell(c)[p][0] and child.cell(c)[p][1] != g.cell(c)[p][1]
        child = DARTS.mutate(g, rng, "op")
        diff = [(c, p) for c in gt.CELLS for p in range(8) if g.cell(c)[p] != child.cell(c)[p]]
        assert len(diff) == 1 and child.cell(diff[0][0])[diff[0][1]][1] == g.cell(diff[0][0])[diff[0][1]][1]


# -- supernet ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return DARTS.build_supernet(num_classes=10, C=4)


def test_supernet_shapes(supernet):
    assert (supernet.C, supernet.layers) == (4, 8)
    default = DARTS.build_supernet()
    assert (default.C, default.layers) == (16, 8)
    assert [c.reduction for c in default.cells] == [False, False, True, False, False, True, False, False]
    assert tuple(default.arch.alpha_normal.shape) == tuple(default.arch.alpha_reduce.shape) == (14, 8)
    assert len(EDGES) == 14 and all(len(c.edges) == 14 for c in default.cells)
    x = torch.randn(2, 3, 32, 32)
    assert supernet(x).shape == (2, 10)
    feats = supernet.forward_features(x)
    assert [f.shape[1] for f in feats] == [16, 16, 32, 32, 32, 64, 64, 64]
    with pytest.raises(HarnessError, match=r"\(2, 14, 8\)"):
        supernet(x, torch.zeros(14, 8))


def _set_alphas(arch, best: dict):
    """Hand-set logits: 0 everywhere, ``best[(cell, edge)] = (op, value)``."""
    with torch.no_grad():
        arch.alpha_normal.zero_()
        arch.alpha_reduce.zero_()
        for (cell, edge), (op, value) in best.items():
            (arch.alpha_normal if cell == "normal" else arch.alpha_reduce)[EDGES.index(edge), PRIMITIVES.index(op)] = value


def test_derivation_from_hand_set_alphas():
    net = DartsSupernet(C=2)
    _set_alphas(net.arch, {
        ("normal", (0, 2)): ("sep_conv_3x3", 3.0), ("normal", (1, 2)): ("none", 9.0),  # none never counts
        ("normal", (1, 3)): ("dil_conv_5x5", 2.0), ("normal", (2, 3)): ("skip_connect", 4.0),
        ("normal", (3, 4)): ("avg_pool_3x3", 1.0), ("normal", (0, 4)): ("max_pool_3x3", 5.0),
        ("normal", (4, 5)): ("sep_conv_5x5", 2.0), ("normal", (2, 5)): ("dil_conv_3x3", 3.0),
        ("reduce", (0, 2)): ("max_pool_3x3", 1.0), ("reduce", (1, 2)): ("skip_connect", 2.0),
    })
    g = net.genotype()
    # normal node 2: (0,2) strongest; (1,2)'s 'none' is ignored: its best other op ties at 0 -> first op
    assert g.normal[:2] == (("sep_conv_3x3", 0), ("max_pool_3x3", 1))
    assert g.normal[2:4] == (("skip_connect", 2), ("dil_conv_5x5", 1))
    assert g.normal[4:6] == (("max_pool_3x3", 0), ("avg_pool_3x3", 3))
    assert g.normal[6:] == (("dil_conv_3x3", 2), ("sep_conv_5x5", 4))
    assert g.reduce[:2] == (("skip_connect", 1), ("max_pool_3x3", 0))
    # masks and removals steer the derivation
    net.arch.mask_op("normal", (0, 4), "max_pool_3x3")
    net.arch.remove_edge("normal", (2, 5))
    g2 = net.genotype()
    assert g2.normal[4] == ("avg_pool_3x3", 3) and ("dil_conv_3x3", 2) not in g2.normal[6:]
    net.arch.project("normal", (1, 3), "sep_conv_3x3")
    assert ("sep_conv_3x3", 1) in net.genotype().normal[2:4]
    net.arch.project_node("reduce", 5, (3, 4))
    assert {src for _, src in net.genotype().reduce[6:]} == {3, 4}


def _nodes(feature: torch.Tensor) -> list[torch.Tensor]:
    """A cell output split into its 4 concatenated nodes (2..5)."""
    return list(feature.chunk(4, dim=1))


def test_hooks_change_the_weights_and_the_output_as_intended(supernet):
    arch = supernet.arch
    arch.reset()
    supernet.eval()
    x = torch.randn(2, 3, 32, 32)
    base, w = supernet.forward_features(x), arch.weights()
    sep = PRIMITIVES.index("sep_conv_3x3")
    arch.mask_op("normal", (1, 3), "sep_conv_3x3")
    w2 = arch.weights()
    assert (w2 != w).nonzero().tolist() == [[0, EDGES.index((1, 3)), sep]]  # others keep their softmax weight
    masked = supernet.forward_features(x)
    # first cell: node 2 untouched, node 3 (and what reads it) changed
    before, after = _nodes(base[0]), _nodes(masked[0])
    assert torch.equal(before[0], after[0]) and not torch.allclose(before[1], after[1], atol=1e-4)
    manual = w.clone()
    manual[0, EDGES.index((1, 3)), sep] = 0
    assert torch.allclose(supernet(x, manual), supernet(x))  # same as zeroing that weight by hand
    arch.reset()
    arch.remove_edge("reduce", (0, 5))
    w3 = arch.weights()
    assert torch.all(w3[1, EDGES.index((0, 5))] == 0) and torch.equal(w3[0], w[0]) and torch.equal(w3[1, :9], w[1, :9])
    removed = supernet.forward_features(x)
    assert torch.equal(removed[0], base[0]) and torch.equal(removed[1], base[1])  # normal cells before: same
    before, after = _nodes(base[2]), _nodes(removed[2])  # cell 2 is the first reduction cell
    assert all(torch.equal(before[k], after[k]) for k in range(3))
    assert not torch.allclose(before[3], after[3], atol=1e-4)  # only node 5 lost its edge from node 0
    with pytest.raises(HarnessError, match="node 2: only 2 incoming edges"):
        arch.remove_edge("normal", (0, 2))
    arch.project("normal", (1, 4), "skip_connect")
    assert arch.weights()[0, EDGES.index((1, 4))].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    with pytest.raises(HarnessError, match="already projected"):
        arch.project("normal", (1, 4), "sep_conv_3x3")
    with pytest.raises(HarnessError, match="cell 'middle'"):
        arch.mask_op("middle", 0, "skip_connect")
    arch.reset()
    assert all(torch.equal(a, b) for a, b in zip(supernet.forward_features(x), base))
    assert node_edges(5) == [EDGES.index((j, 5)) for j in range(5)]
    assert set(map(id, supernet.weight_parameters())).isdisjoint(map(id, supernet.arch_parameters))


def test_random_genotypes_build_and_run(rng):
    torch.manual_seed(0)
    for _ in range(3):
        g = DARTS.random(np.random.default_rng(rng.integers(1 << 30)))
        net = NetworkCIFAR(g, C=4, layers=5)
        assert net.eval()(torch.randn(1, 3, 16, 16)).shape == (1, 10)
