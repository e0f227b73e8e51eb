"""Tr-Net-i-j / Tr-Supernet-i-j: frozen prefix, trainable suffix, shape checks."""
import pytest
import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone, save_backbone
from harness.backbones.resnet import build_backbone
from harness.measure.counting import count_params, trainable_parameters
from harness.spaces.nb201.network import InferCell, NB201Network
from harness.spaces.nb201.ops import ResNetBasicblock
from harness.spaces.nb201.supernet import NB201Supernet, SearchCell
from harness.transfer.splice import build_tr_net, build_tr_supernet

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SMALL = (3, 16, 16)  # the splice is resolution-agnostic; small inputs keep the tests fast


@pytest.fixture(scope="module")
def resnet32():
    torch.manual_seed(0)
    return build_backbone("resnet32")


def _prefix_state(model):
    return {k: v.clone() for k, v in model.prefix.state_dict().items()}


def test_tr_net_5_5_and_10_10_build(resnet32):
    t55 = build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=5)
    assert len(t55.prefix.blocks) == 5 and len(t55.tail.cells) == 12
    assert isinstance(t55.tail.cells[0], ResNetBasicblock)  # i multiple of 5: a reduction block follows
    t1010 = build_tr_net(NB201Network(ALL_CONV), resnet32, i=10, j=10)
    assert len(t1010.prefix.blocks) == 10 and len(t1010.tail.cells) == 6
    t33 = build_tr_net(NB201Network(ALL_CONV), resnet32, i=3, j=3)
    assert len(t33.tail.cells) == 14 and isinstance(t33.tail.cells[0], InferCell)
    x = torch.randn(2, 3, 32, 32)
    assert t55(x).shape == (2, 10) and t1010(x).shape == (2, 10)
    # The prefix shares the backbone's modules (one frozen prefix for every candidate, no copy).
    assert t55.prefix.blocks[4] is resnet32.blocks[4] and t55.prefix.stem is resnet32.stem
    feats = t55.forward_features(x)
    assert len(feats) == 5 + 12 and feats[4].shape == (2, 16, 32, 32) and feats[5].shape == (2, 32, 16, 16)


def test_gradients_only_reach_the_suffix(resnet32):
    torch.manual_seed(1)
    model = build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=5, input_size=SMALL)
    before = _prefix_state(model)
    suffix_bn = model.tail.cells[1].layers[0][2]
    suffix_stats = suffix_bn.running_mean.clone()
    model.train()
    assert model.training and not model.prefix.training
    assert not any(m.training for m in model.prefix.modules())
    loss = F.cross_entropy(model(torch.randn(4, *SMALL)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is None for p in model.prefix.parameters())
    for k, v in model.prefix.state_dict().items():  # BN running stats untouched
        assert torch.equal(v, before[k]), k
    assert not torch.equal(suffix_bn.running_mean, suffix_stats)  # the suffix really ran in train mode
    suffix = [(n, p) for n, p in model.named_parameters() if not n.startswith("prefix.")]
    assert suffix and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in suffix)


def test_prefix_is_not_in_the_optimizer(resnet32):
    model = build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=5, input_size=SMALL)
    trainable = trainable_parameters(model)
    prefix_ids = {id(p) for p in model.prefix.parameters()}
    assert prefix_ids and not prefix_ids & {id(p) for p in trainable}
    assert count_params(model, trainable_only=True) == count_params(model) - count_params(model.prefix)
    before = _prefix_state(model)
    opt = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=5e-4)
    F.cross_entropy(model(torch.randn(2, *SMALL)), torch.tensor([0, 1])).backward()
    opt.step()
    assert all(torch.equal(v, before[k]) for k, v in model.prefix.state_dict().items())


def test_prefix_uses_the_loaded_backbone_weights(resnet32, tmp_path):
    path = save_backbone(tmp_path / "r32.pt", resnet32, "resnet32", {"epochs": 1})
    backbone, _ = load_backbone(path, expect="resnet32")
    model = build_tr_net(NB201Network(ALL_CONV), backbone, i=5, j=5, input_size=SMALL).train()
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        want = resnet32.eval().forward_features(x)[4]
    assert torch.equal(model.prefix(x), want)
    assert model.forward_features(x)[4].equal(want)


def test_suffix_is_the_nb201_network_after_cell_i(resnet32):
    torch.manual_seed(2)
    model = build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=5, input_size=SMALL)
    torch.manual_seed(2)
    net = NB201Network(ALL_CONV)  # same seed, same construction order -> same weights
    model.eval(), net.eval()
    x = torch.randn(2, 16, *SMALL[1:])  # what a stage-1 prefix emits
    with torch.no_grad():
        feature = x
        for cell in net.cells[5:]:
            feature = cell(feature)
        want = net.head(feature)
        got = model.tail.cells[0](x)
        for cell in model.tail.cells[1:]:
            got = cell(got)
        assert torch.equal(model.tail.head(got), want)


def test_tr_supernet(resnet32):
    torch.manual_seed(3)
    model = build_tr_supernet(NB201Supernet(), resnet32, i=5, j=5, input_size=SMALL)
    assert len(model.tail.cells) == 12 and sum(isinstance(c, SearchCell) for c in model.tail.cells) == 10
    assert any(p is model.arch_parameters for p in trainable_parameters(model))
    assert all(p is not model.arch_parameters for p in model.weight_parameters())
    model.train()
    before = _prefix_state(model)
    x, y = torch.randn(2, *SMALL), torch.tensor([0, 1])
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is None for p in model.prefix.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.prefix.state_dict().items())
    assert model.arch_parameters.grad.abs().sum() > 0
    w = torch.softmax(model.arch_parameters, -1).detach()
    assert torch.allclose(model(x, weights=w), model(x))
    model.project(0, "nor_conv_3x3")
    assert model.genotype().startswith("|nor_conv_3x3~0|")
    assert len(model.forward_features(x)) == 5 + 12


def test_bad_inputs(resnet32):
    with pytest.raises(HarnessError, match="backbone 'resnet33': unknown"):
        build_tr_net(NB201Network(ALL_CONV), "resnet33")
    with pytest.raises(HarnessError, match=r"j=15: must be in 1..14 \(the backbone has 15 blocks\)"):
        build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=15)
    with pytest.raises(HarnessError, match="j=0: must be in 1..14"):
        build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=0)
    for i in (0, 15):
        with pytest.raises(HarnessError, match=rf"i={i}: must be in 1..14"):
            build_tr_net(NB201Network(ALL_CONV), resnet32, i=i, j=5)
    with pytest.raises(HarnessError, match=r"Tr-Net-5-6: backbone prefix output shape \(C, H, W\) = \(32, 16, 16\) "
                                           r"does not fit .* after cell 5, which expects shape \(16, 32, 32\)"):
        build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=6)
    with pytest.raises(HarnessError, match=r"= \(64, 8, 8\) does not fit .* expects shape \(32, 16, 16\)"):
        build_tr_supernet(NB201Supernet(), resnet32, i=10, j=11)
    with pytest.raises(HarnessError, match=r"= \(64, 32, 32\) does not fit .* expects shape \(16, 32, 32\)"):
        build_tr_net(NB201Network(ALL_CONV), build_backbone("resnet20-wide"), i=3, j=3)  # channels differ
    with pytest.raises(HarnessError, match="expected a CifarResNet"):
        build_tr_net(NB201Network(ALL_CONV), NB201Network(ALL_CONV))


def test_prefix_bn_batch_mode_uses_batch_statistics_and_never_moves_running_ones(resnet32):
    torch.manual_seed(0)
    running = build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=5, input_size=SMALL)
    batch = build_tr_net(NB201Network(ALL_CONV), resnet32, i=5, j=5, input_size=SMALL, prefix_bn="batch")
    before = _prefix_state(batch)
    x = torch.randn(8, *SMALL) * 3 + 1
    bn = resnet32.stem[1]
    want = torch.nn.functional.batch_norm(resnet32.stem[0](x), None, None, bn.weight, bn.bias, training=True)
    feats = []
    hook = bn.register_forward_hook(lambda m, i, o: feats.append(o))
    batch.prefix(x)
    hook.remove()
    assert torch.allclose(feats[0], torch.relu(want), atol=1e-5)  # batch statistics (the stem ReLU is in place)
    assert not torch.allclose(batch.prefix(x), running.prefix(x))  # the modes really differ
    assert all(torch.equal(v, before[k]) for k, v in batch.prefix.state_dict().items())  # nothing moved
    assert not any(m.training for m in batch.prefix.modules())  # and the mode is restored
    with pytest.raises(HarnessError, match="prefix BN mode 'frozen': unknown"):
        build_tr_net(NB201Network(ALL_CONV), resnet32, prefix_bn="frozen")
