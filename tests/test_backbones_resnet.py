"""CIFAR ResNet backbones (NB201 reference CifarResNet)."""
import pytest
import torch

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone, save_backbone
from harness.backbones.resnet import BACKBONES, BasicBlock, CifarResNet, build_backbone
from harness.measure.counting import count_params


def test_resnet32_parameter_count():
    assert count_params(build_backbone("resnet32", num_classes=10)) == 466_714


@pytest.mark.parametrize("name, n_blocks, widths", [
    ("resnet20", 9, (16, 32, 64)), ("resnet32", 15, (16, 32, 64)), ("resnet56", 27, (16, 32, 64)),
    ("resnet20-wide", 9, (64, 128, 256)),
])
def test_blocks_addressable_by_index(name, n_blocks, widths):
    net = build_backbone(name)
    assert len(net.blocks) == n_blocks
    per_stage = n_blocks // 3
    # Stride 2 on the first block of stages 2 and 3 (1-based block j = blocks[j - 1]).
    strides = [b.stride for b in net.blocks]
    assert [j + 1 for j, s in enumerate(strides) if s == 2] == [per_stage + 1, 2 * per_stage + 1]
    assert [b.out_dim for b in net.blocks] == [w for w in widths for _ in range(per_stage)]
    assert net.stem[0].out_channels == widths[0]


def test_block_structure_is_post_activation_with_avgpool_shortcut():
    net = build_backbone("resnet32")
    down = net.blocks[5]  # block 6: first of stage 2
    assert isinstance(down, BasicBlock) and down.stride == 2
    assert isinstance(down.downsample[0], torch.nn.AvgPool2d)
    assert down.downsample[1].kernel_size == (1, 1) and down.downsample[1].bias is None
    assert net.blocks[0].downsample is None
    # Post-activation: the block output is a ReLU output, so never negative.
    x = torch.randn(2, 16, 8, 8)
    assert (net.blocks[1](x) >= 0).all()


def test_forward_and_features():
    net = build_backbone("resnet20", num_classes=100).eval()
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 100)
    feats = net.forward_features(x)
    assert len(feats) == 9
    assert feats[2].shape == (2, 16, 32, 32) and feats[3].shape == (2, 32, 16, 16) and feats[8].shape == (2, 64, 8, 8)


def test_bad_inputs():
    with pytest.raises(HarnessError, match=r"backbone 'resnet18': unknown \(known: resnet20, resnet32"):
        build_backbone("resnet18")
    assert set(BACKBONES) == {"resnet20", "resnet32", "resnet56", "resnet20-wide"}
    with pytest.raises(HarnessError, match="depth 21"):
        CifarResNet(21)
    with pytest.raises(HarnessError, match="widths"):
        CifarResNet(20, widths=(16, 32))


@pytest.mark.parametrize("name, params", [("resnet20", 272_282), ("resnet32", 466_714), ("resnet56", 855_578)])
def test_downsampling_shortcut_variants_parameter_counts(name, params):
    """Two downsampling blocks (16->32 and 32->64 channels): conv_bn adds a BN (2 x C_out) to each 1x1
    conv; zero_pad has no shortcut parameters at all (16*32 + 32*64 = 2,560 fewer)."""
    assert count_params(build_backbone(name)) == params
    assert count_params(build_backbone(name, shortcut="conv_bn")) == params + 2 * (32 + 64)
    assert count_params(build_backbone(name, shortcut="zero_pad")) == params - (16 * 32 + 32 * 64)


def test_zero_pad_shortcut_is_subsample_then_zero_channels():
    block = build_backbone("resnet20", shortcut="zero_pad").blocks[3]  # first block of stage 2
    x = torch.randn(2, 16, 8, 8)
    out = block.downsample(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()


@pytest.mark.parametrize("shortcut", ["conv_bn", "zero_pad"])
def test_shortcut_survives_a_checkpoint_round_trip(shortcut, tmp_path):
    model = build_backbone("resnet20", shortcut=shortcut)
    save_backbone(tmp_path / "b.pt", model, "resnet20", {})
    loaded, _ = load_backbone(tmp_path / "b.pt")
    assert loaded.shortcut == shortcut
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(loaded(x), model(x))


def test_unknown_shortcut():
    with pytest.raises(HarnessError, match="shortcut 'option_b': unknown"):
        build_backbone("resnet20", shortcut="option_b")
