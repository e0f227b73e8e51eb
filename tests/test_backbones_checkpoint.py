"""Backbone checkpoints: round trip, and one clear error per way a file can be wrong."""
import pytest
import torch

from harness import HarnessError
from harness.backbones.checkpoint import FORMAT, load_backbone, save_backbone
from harness.backbones.resnet import build_backbone


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = build_backbone("resnet20", num_classes=10)
    with torch.no_grad():  # non-default BN statistics must survive the round trip too
        net.stem[1].running_mean.normal_()
    path = save_backbone(tmp_path / "r20.pt", net, "resnet20", {"val_acc": 91.5, "epochs": 200, "note": None})
    return path, net


def _payload(path):
    return torch.load(path, weights_only=True)


def test_round_trip(saved):
    path, net = saved
    loaded, meta = load_backbone(path, expect="resnet20")
    assert meta == {"val_acc": 91.5, "epochs": 200, "note": None}
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))
    assert not list(path.parent.glob(".*.tmp"))  # written via temp + rename, nothing left behind


def test_missing_file(tmp_path):
    with pytest.raises(HarnessError, match="nope.pt: no such file"):
        load_backbone(tmp_path / "nope.pt")


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(HarnessError, match="junk.pt: not a readable torch checkpoint"):
        load_backbone(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(HarnessError, match="other.pt: not a harness backbone checkpoint"):
        load_backbone(other)


def test_wrong_backbone_name(saved):
    path, _ = saved
    with pytest.raises(HarnessError, match="holds 'resnet20', expected 'resnet32'"):
        load_backbone(path, expect="resnet32")


def test_missing_and_unexpected_keys(saved, tmp_path):
    path, _ = saved
    payload = _payload(path)
    payload["state_dict"].pop("classifier.bias")
    payload["state_dict"]["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "keys.pt"
    torch.save(payload, bad)
    with pytest.raises(HarnessError, match=r"keys.pt does not fit resnet20: missing keys: classifier.bias; "
                                           r"unexpected keys: extra.weight"):
        load_backbone(bad)


def test_wrong_shapes(saved, tmp_path):
    path, _ = saved
    payload = _payload(path)
    payload["state_dict"]["blocks.0.conv_a.0.weight"] = torch.zeros(16, 16, 1, 1)
    bad = tmp_path / "shapes.pt"
    torch.save(payload, bad)
    with pytest.raises(HarnessError, match=r"wrong shapes: blocks.0.conv_a.0.weight \(16, 16, 1, 1\) "
                                           r"\(expected \(16, 16, 3, 3\)\)"):
        load_backbone(bad)


def test_state_of_another_backbone_under_this_name(tmp_path):
    # A ResNet-32 saved under the name resnet20: many unexpected keys, listed a few at a time.
    path = save_backbone(tmp_path / "mislabelled.pt", build_backbone("resnet32"), "resnet20")
    with pytest.raises(HarnessError, match=r"unexpected keys: .*blocks\.9\.conv_a.*\(\+\d+ more\)"):
        load_backbone(path)


def test_bad_save_inputs(tmp_path):
    net = build_backbone("resnet20")
    with pytest.raises(HarnessError, match="backbone 'resnet99': unknown"):
        save_backbone(tmp_path / "x.pt", net, "resnet99")
    with pytest.raises(HarnessError, match="JSON-serialisable"):
        save_backbone(tmp_path / "x.pt", net, "resnet20", {"tensor": torch.zeros(1)})
    assert not (tmp_path / "x.pt").exists()
    assert _payload(save_backbone(tmp_path / "ok.pt", net, "resnet20"))["format"] == FORMAT
