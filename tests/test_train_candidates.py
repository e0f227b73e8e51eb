"""Real training on the embedded CIFAR-10 images, tiny: a few hundred images, 1-2 epochs."""
import math

import pandas as pd
import pytest
import torch

from harness import HarnessError
from harness.data.datasets import load_dataset
from harness.backbones.checkpoint import load_backbone
from harness.proxies.training import parse_method, train_candidate
from harness.train.loop import TrainingDiverged, train
from harness.backbones.pretrain import pretrain
from harness.train.recipe import TrainConfig

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
TINY = TrainConfig(epochs=2, warmup_epochs=0, batch_size=32)


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10-valid", limit=320)


@pytest.fixture(scope="module")
def backbone(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "resnet32.pt"
    meta = pretrain("resnet32", data, path, cfg=TrainConfig(epochs=2, batch_size=32), seed=0, progress=False)
    return path, meta


def test_pretrain_checkpoint_records_metadata(backbone):
    path, meta = backbone
    model, loaded = load_backbone(path, expect="resnet32")
    assert loaded["architecture"] == "resnet32" and loaded["epochs"] == 2 and loaded["dataset"] == "cifar10-valid"
    assert loaded["split"] == "train" and "commit" in loaded and loaded["val_acc"] == meta["val_acc"]


def test_original_and_trnet_train_above_chance_and_report_cost(data, backbone):
    orig = train_candidate(ARCH, "original", data, cfg=TINY, seed=0, progress=False)
    tr = train_candidate(ARCH, "tr-net-5-5", data, cfg=TINY.with_(warmup_epochs=1), backbone=backbone[0],
                         seed=0, progress=False)
    for row in (orig, tr):
        # 10 classes: chance is 10%; 320 images x 2 epochs already clear it on held-out data.
        assert row["val_acc"] > 12.0 and row["test_acc"] > 12.0, row
        assert row["wall_s"] > 0 and row["images_per_s"] > 0 and row["saved_bytes"] > 0 and row["peak_rss_bytes"] > 0
        assert row["seed"] == 0 and row["commit"] and row["version_torch"] == torch.__version__
    assert tr["trainable_params"] < tr["params"]
    assert orig["trainable_params"] == orig["params"]
    assert tr["saved_bytes"] * 1.8 < orig["saved_bytes"]  # the frozen prefix keeps no activations
    assert tr["backbone"] == str(backbone[0])


def test_same_seed_same_accuracy(data):
    a = train_candidate(ARCH, "original", data, cfg=TINY.with_(epochs=1), seed=3, progress=False)
    b = train_candidate(ARCH, "original", data, cfg=TINY.with_(epochs=1), seed=3, progress=False)
    assert (a["val_acc"], a["test_acc"], a["train_loss"]) == (b["val_acc"], b["test_acc"], b["train_loss"])


def test_trnet_without_checkpoint_says_how_to_make_one(data):
    with pytest.raises(HarnessError, match="harness pretrain resnet32"):
        train_candidate(ARCH, "tr-net-5-5", data, cfg=TINY, progress=False)


def test_checkpoint_for_the_wrong_architecture(data, tmp_path):
    from harness.backbones.checkpoint import save_backbone
    from harness.backbones.resnet import build_backbone

    path = tmp_path / "r20.pt"
    save_backbone(path, build_backbone("resnet20-wide", 10), "resnet20-wide", {})
    # ResNet-20-wide has 64 channels after block 5's stage: it cannot feed NB201 cell 6 (16 channels).
    with pytest.raises(HarnessError, match="shape"):
        train_candidate(ARCH, "tr-net-5-5", data, cfg=TINY, backbone=path, progress=False)


def test_nan_loss_stops_with_arch_epoch_step(data):
    from harness.spaces.nb201.network import NB201Network

    model = NB201Network(ARCH)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"my-arch: loss is nan at epoch 1, step 1"):
        train(model, data, TINY, seed=0, label="my-arch", progress=False)


def test_diverging_search_evaluation_writes_no_row(data, tmp_path):
    from harness.proxies.evaluators import TrainEvaluator

    record = tmp_path / "train.parquet"
    ev = TrainEvaluator("original", data, cfg=TINY.with_(lr=1e30), record_path=record)
    with pytest.raises(TrainingDiverged, match=r"original \|nor_conv_3x3~0\|.*at epoch 1, step \d"):
        ev(("nor_conv_3x3",) * 6)
    assert not record.exists()


def test_bad_method():
    with pytest.raises(HarnessError, match="method 'trnet'"):
        parse_method("trnet")
