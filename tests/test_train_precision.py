"""Precision / memory-format modes, the deferred divergence check, the bf16 frozen prefix and the
prefix feature cache (exactness)."""
import json

import pytest
import torch

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.definition.schema import Definition
from harness.proxies import TrainSettings
from harness.proxies.training import train_candidate
from harness.sections.context import run_meta
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.train import recipe
from harness.train.loop import TrainingDiverged, evaluate, train
from harness.train.recipe import MODES, ORIGINAL, TR_NET, TrainConfig, default_mode, parse_mode
from harness.transfer.cache import PrefixFeatureCache
from harness.transfer.splice import FrozenPrefix, build_tr_net

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = TrainConfig(epochs=1, batch_size=16)


def test_modes_round_trip_and_bad_input():
    for mode in MODES:
        assert TrainConfig().with_mode(mode).mode == mode
    assert parse_mode("bf16+channels_last") == ("bf16", True)
    with pytest.raises(HarnessError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(HarnessError, match="mode 'int8'"):
        parse_mode("int8")


def test_config_records_the_mode_and_fp32_as_before():
    assert TrainConfig().as_dict()["amp"] is False and "precision" not in TrainConfig().as_dict()
    fast = TrainConfig(precision="bf16", channels_last=True).as_dict()
    assert fast["precision"] == "bf16" and fast["channels_last"] is True and "amp" not in fast


@pytest.mark.parametrize("mode", ["channels_last", "bf16", "bf16+channels_last"])
def test_fast_modes_train_on_cpu(tiny_data, mode):
    data = tiny_data(32)
    space = get_space("nb201")
    cfg = TINY.with_mode(mode)
    torch.manual_seed(0)
    model = space.build_network(space.parse(ALL_CONV))
    r = train(model, data, cfg, seed=0, progress=False)
    assert r.steps == 2 and r.train_loss == r.train_loss and 0 <= r.test_acc <= 100
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    if cfg.channels_last:
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


class _NanAt(torch.nn.Module):
    """Wraps a network; its ``k``-th forward (0-based, counting training calls) returns NaN logits."""

    def __init__(self, net, k):
        super().__init__()
        self.net, self.k, self.calls = net, k, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls - 1 == self.k:
                out = out * float("nan")
        return out


@pytest.mark.parametrize("check_every", [1, 4, 100])
def test_divergence_named_at_the_first_nan_step_with_deferred_checks(tiny_data, check_every):
    data = tiny_data(64)  # 4 steps per epoch at batch 16; NaN at global step 5 = epoch 2, step 2
    space = get_space("nb201")
    model = _NanAt(space.build_network(space.parse(ALL_CONV)), k=5)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, step 2;"):
        train(model, data, TINY.with_(epochs=3), seed=0, progress=False, check_every=check_every)
    # checked at epoch end at the latest: never runs the third epoch
    assert model.calls <= 8


def test_bf16_prefix_within_bf16_tolerance_of_fp32():
    torch.manual_seed(0)
    prefix = FrozenPrefix(build_backbone("resnet32"), 5)
    x = torch.randn(16, 3, 32, 32)
    ref = prefix(x)
    with torch.autocast("cpu", torch.bfloat16):
        fast = prefix(x.contiguous(memory_format=torch.channels_last))
    assert fast.dtype == torch.bfloat16
    rel = (fast.float() - ref).norm() / ref.norm()
    assert rel < 2 ** -6  # bf16 keeps 8 significant bits (unit roundoff 2^-8); a few layers' worth
    assert rel > 0  # it really ran in bf16


@pytest.mark.parametrize("mode", ["fp32", "bf16+channels_last"])
@pytest.mark.parametrize("bn", ["running", "batch"])
def test_feature_cache_gives_identical_accuracies(tiny_data, mode, bn):
    data = tiny_data(64)
    space = get_space("nb201")
    cfg = TR_NET.with_mode(mode)
    cache = PrefixFeatureCache()
    backbone = build_backbone("resnet32")
    for seed, arch in enumerate([ALL_CONV, "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"]):
        torch.manual_seed(seed)
        net = build_tr_net(space.build_network(space.parse(arch)), backbone, 5, 5, prefix_bn=bn)
        for split in ("valid", "test"):
            plain = evaluate(net, getattr(data, split), data, cfg=cfg)
            assert cache.evaluate(net, data, split, cfg, "sha-a") == plain
    assert len(cache) == 2 and cache.hits == 2 and cache.misses == 2  # shared across candidates
    cache.evaluate(net, data, "valid", cfg, "sha-b")
    assert len(cache) == 3  # another checkpoint never reuses the features


def test_train_candidate_with_cache_matches_without(tiny_data, pretrained):
    data = tiny_data(64)
    ckpt, _ = pretrained("resnet32", data, TrainConfig(epochs=2, batch_size=32))
    space = get_space("nb201")
    cfg = TR_NET.with_(epochs=1, warmup_epochs=1, batch_size=32)
    cache = PrefixFeatureCache()
    rows = [train_candidate(space, ALL_CONV, "tr-net-5-5", data, cfg=cfg, backbone=ckpt, progress=False,
                            allow_overlap=True, feature_cache=c) for c in (None, cache)]
    assert rows[0]["val_acc"] == rows[1]["val_acc"] and rows[0]["test_acc"] == rows[1]["test_acc"]
    assert cache.misses == 2 and json.loads(rows[1]["config"])["amp"] is False


def test_original_default_is_recorded(tiny_data):
    assert ORIGINAL.mode in MODES and TR_NET.mode == ORIGINAL.mode


NATIVE_BF16, NO_BF16 = frozenset({"avx512f", "avx512_bf16"}), frozenset({"avx512f", "avx2"})


def test_default_mode_follows_the_devices_bf16_capability():
    assert default_mode("cpu", NATIVE_BF16) == "bf16+channels_last"
    assert default_mode("cpu", frozenset({"amx_bf16"})) == "bf16+channels_last"
    assert default_mode("cpu", NO_BF16) == "channels_last" and default_mode("cpu", frozenset()) == "channels_last"
    assert default_mode("meta") == "fp32"
    if not torch.cuda.is_available():
        assert default_mode("cuda") == "fp32"
    with pytest.raises(HarnessError, match="device 'gpu0': not a torch device"):
        default_mode("gpu0")


@pytest.mark.parametrize("flags,want", [(NATIVE_BF16, ("bf16", True)), (NO_BF16, ("fp32", True))])
def test_settings_resolve_the_default_mode_and_keep_what_is_forced(monkeypatch, flags, want):
    monkeypatch.setattr(recipe, "cpu_flags", lambda: flags)  # this CPU's capability, injected
    settings = TrainSettings(device="cpu", epochs={"original": 2})
    assert settings.mode() == want
    assert (settings.config("original").precision, settings.config("original").channels_last) == want
    assert settings.config("tr-net-5-5").mode == TR_NET.with_mode(settings.config("original").mode).mode
    forced = TrainSettings(device="cpu", precision="fp32", channels_last=False)
    assert forced.config("original") == ORIGINAL and forced.config("tr-net-5-5") == TR_NET  # the fp32 recipes
    assert TrainSettings(device="cpu", precision="fp32").mode() == ("fp32", want[1])  # each option on its own


def _train_definition(train: dict) -> Definition:
    return build_definition({"name": "mode-test", "kind": "train", "arch_list": [ALL_CONV], "proxies": ["train:original"],
                             "train": {"limit": 32, "batch_size": 16, "epochs": {"original": 1}, "device": "cpu",
                                       **train}}, "test")


def test_rows_record_the_concrete_mode_and_a_definition_can_force_fp32(monkeypatch, tmp_path):
    monkeypatch.setattr(recipe, "cpu_flags", lambda: NATIVE_BF16)
    default, forced = _train_definition({}), _train_definition({"precision": "fp32", "channels_last": False})
    run_benchmark(default, tmp_path, progress=False)
    run_benchmark(forced, tmp_path, progress=False)
    first, second = [json.loads(c) for c in ResultsStore(tmp_path).read("train")["config"]]
    assert (first["precision"], first["channels_last"]) == ("bf16", True)
    assert "amp" not in first  # never "auto"; fp32 is recorded as amp = false, as before the option existed
    assert second["amp"] is False and second["channels_last"] is False and "precision" not in second
    meta = json.loads(run_meta(default, "b")["config"])["train"]
    assert (meta["precision"], meta["channels_last"]) == ("bf16", True)
    assert "precision" not in json.loads(run_meta(build_definition({"name": "t", "kind": "rank", "datasets": ["cifar10"]},
                                                                   "test"), "b")["config"])["train"]  # trains nothing
