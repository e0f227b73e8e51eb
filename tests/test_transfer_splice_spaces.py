"""The generic splice over both spaces: Tr-Net / Tr-Supernet on NB201 (ResNet-32, i=j=5) and on
DARTS (wide ResNet-20, Tr-Supernet-2-3: "the first two supernet cells are replaced with the first
three ResNet-20 blocks", paper Sec. 4.3.2)."""
import pytest
import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.measure.memory import saved_tensor_bytes
from harness.spaces import get_space
from harness.spaces.darts.genotype import DARTS_V2
from harness.spaces.darts.ops import FactorizedReduce, ReLUConvBN
from harness.transfer.splice import build_tr_net, build_tr_supernet

SMALL = (3, 16, 16)
NB201_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# space -> (backbone, i, j, arch, network options)
CASES = {"nb201": ("resnet32", 5, 5, NB201_CONV, {}),
         "darts": ("resnet20-wide", 2, 3, DARTS_V2, {"C": 16, "layers": 8, "auxiliary": False})}


@pytest.fixture(scope="module")
def backbones():
    torch.manual_seed(0)
    return {name: build_backbone(name) for name in ("resnet32", "resnet20-wide")}


def _build(space_name: str, backbones, supernet: bool):
    backbone, i, j, arch, options = CASES[space_name]
    space = get_space(space_name)
    torch.manual_seed(1)
    if supernet:
        net = space.build_supernet()
        return net, build_tr_supernet(net, backbones[backbone], i, j, input_size=SMALL)
    net = space.build_network(arch, **options)
    return net, build_tr_net(net, backbones[backbone], i, j, input_size=SMALL)


@pytest.mark.parametrize("supernet", [False, True], ids=["net", "supernet"])
@pytest.mark.parametrize("space_name", sorted(CASES))
def test_prefix_frozen_bn_still_gradients_only_in_the_tail(space_name, supernet, backbones):
    _, model = _build(space_name, backbones, supernet)
    before = {k: v.clone() for k, v in model.prefix.state_dict().items()}
    model.train()
    assert not any(m.training for m in model.prefix.modules())
    x, y = torch.randn(4, *SMALL), torch.tensor([0, 1, 2, 3])
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is None for p in model.prefix.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.prefix.state_dict().items())  # BN stats unchanged
    tail = [(n, p) for n, p in model.named_parameters() if not n.startswith("prefix.")]
    assert tail and all(p.grad is not None for _, p in tail)
    if supernet:
        alphas = model.arch_parameters  # NB201: one (6, 5) Parameter; DARTS: [alpha_normal, alpha_reduce]
        alphas = [alphas] if isinstance(alphas, torch.nn.Parameter) else alphas
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in alphas)


@pytest.mark.parametrize("supernet", [False, True], ids=["net", "supernet"])
@pytest.mark.parametrize("space_name", sorted(CASES))
def test_tr_models_save_fewer_bytes_for_backward(space_name, supernet, backbones):
    net, model = _build(space_name, backbones, supernet)
    x, y = torch.randn(4, *SMALL), torch.tensor([0, 1, 2, 3])
    original, spliced = saved_tensor_bytes(net, x, y), saved_tensor_bytes(model, x, y)
    assert 0 < spliced < original


def test_darts_tr_supernet_2_3_takes_blocks_2_and_3(backbones):
    """Tr-Supernet-2-3: the first kept cell (cell 2, the first reduction cell) reads ResNet blocks 2
    and 3 as its s0 and s1 -- the shapes of supernet cells 0 and 1 (64 x 32 x 32) -- so it keeps
    its own preprocessing, shared with the supernet."""
    supernet = get_space("darts").build_supernet()
    model = build_tr_supernet(supernet, backbones["resnet20-wide"], 2, 3)
    assert model.tail.cells[0] is supernet.cells[2] and model.tail.cells[0].reduction
    assert model.tail.pre0 is None and model.tail.arch is supernet.arch
    x = torch.randn(2, 3, 32, 32)
    b2, b3 = backbones["resnet20-wide"].forward_features(x)[1:3]
    model.eval()
    supernet.eval()
    with torch.no_grad():
        expected = supernet.classifier(supernet.global_pooling(
            _run_from(supernet, 2, b2, b3)).flatten(1))
        assert torch.allclose(model(x), expected, atol=1e-5)
    assert model.genotype() == supernet.genotype()
    model.project("normal", (0, 2), "sep_conv_3x3")  # one architecture state, shared
    assert int(supernet.arch.projected[0, 0]) == 4


def _run_from(supernet, start, s0, s1):
    w = supernet.arch.weights()
    for cell in supernet.cells[start:]:
        s0, s1 = s1, cell(s0, s1, w[int(cell.reduction)])
    return s1


def test_darts_first_kept_cell_adapts_its_first_input(backbones):
    wide = backbones["resnet20-wide"]
    net = get_space("darts").build_network(DARTS_V2, C=16, layers=8, auxiliary=False)
    # Tr-Net-3-4: cell 3 follows a reduction; block 3 (64 x 32 x 32) is what its FactorizedReduce expects.
    assert build_tr_net(net, wide, 3, 4).tail.pre0 is None
    # Tr-Net-3-6: blocks 5 and 6 are both 128 x 16 x 16: s0 needs a new 1x1 preprocessing, not the cell's.
    t36 = build_tr_net(net, wide, 3, 6)
    assert isinstance(t36.tail.pre0, ReLUConvBN) and t36.tail.pre0[1].in_channels == 128
    assert isinstance(net.cells[3].preprocess0, FactorizedReduce)  # the network's own is untouched
    # Tr-Net-1-1: one prefix output, used as both inputs (as the stem feeds cell 0 twice).
    t11 = build_tr_net(net, wide, 1, 1)
    assert t11(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # Tr-Net-6-7 on the supernet: cell 6 gets blocks 6 (128 x 16 x 16) and 7 (256 x 8 x 8).
    sup = get_space("darts").build_supernet()
    t67 = build_tr_supernet(sup, wide, 6, 7)
    assert t67.tail.pre0 is None and t67(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    t = build_tr_net(net, wide, 3, 6)
    assert sum(p.numel() for p in t.tail.pre0.parameters()) > 0 and t(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(HarnessError, match="does not fit"):
        build_tr_net(net, wide, 2, 4)  # block 4 is 128 x 16 x 16, cell 2 expects 64 x 32 x 32


def test_darts_tail_keeps_the_auxiliary_head(backbones):
    net = get_space("darts").build_network(DARTS_V2, C=16, layers=8)
    model = build_tr_net(net, backbones["resnet20-wide"], 2, 3).train()
    logits, aux = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    assert model.tail.auxiliary_head is net.auxiliary_head
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
