"""The DARTS evaluation recipe in the generic loop: auxiliary loss, drop-path schedule, gradient
clipping; training a genotype from definitions and the CLI."""
import json

import pytest
import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.cli import main
from harness.proxies.settings import TrainSettings
from harness.spaces import get_space
from harness.spaces.darts.genotype import DARTS_V2
from harness.store.results import ResultsStore
from harness.train.loop import clip_gradients, set_drop_path, train, training_loss
from harness.train.recipe import DARTS_EVAL, ORIGINAL, TR_NET, TrainConfig
from harness.transfer.splice import build_tr_net

DARTS = get_space("darts")


def test_darts_eval_recipe_and_config_records():
    assert (DARTS_EVAL.epochs, DARTS_EVAL.batch_size, DARTS_EVAL.lr, DARTS_EVAL.momentum, DARTS_EVAL.weight_decay,
            DARTS_EVAL.cutout, DARTS_EVAL.drop_path_prob, DARTS_EVAL.auxiliary_weight, DARTS_EVAL.grad_clip,
            DARTS_EVAL.eta_min, DARTS_EVAL.nesterov) == (600, 96, 0.025, 0.9, 3e-4, 16, 0.2, 0.4, 5.0, 0.0, False)
    # options that are off are left out of the recorded config: earlier runs keep matching
    assert not {"auxiliary_weight", "drop_path_prob", "grad_clip"} & set(ORIGINAL.as_dict())
    assert DARTS_EVAL.as_dict()["grad_clip"] == 5.0
    for bad in ({"drop_path_prob": 1.0}, {"auxiliary_weight": -1.0}, {"grad_clip": -0.1}):
        with pytest.raises(HarnessError, match=next(iter(bad))):
            TrainConfig(**bad)
    settings = TrainSettings(epochs={"original": 2}, precision="fp32", channels_last=False)  # the recipes' own mode
    assert settings.config("original", "darts") == DARTS_EVAL.with_(epochs=2)
    assert settings.config("original", "nb201") == ORIGINAL.with_(epochs=2)
    assert settings.config("tr-net-2-3", "darts") == TR_NET


def test_training_loss_adds_the_weighted_auxiliary_loss():
    torch.manual_seed(0)
    logits, aux, y = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    main_loss, aux_loss = F.cross_entropy(logits, y), F.cross_entropy(aux, y)
    assert torch.allclose(training_loss((logits, aux), y, DARTS_EVAL), main_loss + 0.4 * aux_loss)
    assert torch.allclose(training_loss((logits, aux), y, ORIGINAL), main_loss)
    assert torch.allclose(training_loss(logits, y, DARTS_EVAL), main_loss)


def test_drop_path_reaches_a_tr_net_tail_and_gradients_are_clipped():
    torch.manual_seed(0)
    net = DARTS.build_network(DARTS_V2, C=16, layers=8)
    model = build_tr_net(net, build_backbone("resnet20-wide"), 2, 3)
    set_drop_path(model, DARTS_EVAL.with_(epochs=4), 3)
    assert model.tail.drop_path_prob == pytest.approx(0.2 * 3 / 4)
    set_drop_path(model, ORIGINAL, 3)  # off in the recipe: nothing touched
    assert model.tail.drop_path_prob == pytest.approx(0.15)
    out = model.train()(torch.randn(2, 3, 32, 32))
    (training_loss(out, torch.tensor([0, 1]), DARTS_EVAL) * 1e4).backward()
    clip_gradients(model, DARTS_EVAL)
    norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert norm == pytest.approx(5.0, rel=1e-3)


@pytest.mark.slow
def test_train_a_genotype_with_the_darts_recipe(tiny_data):
    data = tiny_data(64)
    torch.manual_seed(0)
    net = DARTS.build_network(DARTS_V2, num_classes=data.num_classes, C=4, layers=5)
    cfg = DARTS_EVAL.with_(epochs=2, batch_size=32)
    result = train(net, data, cfg, seed=0, progress=False)
    assert result.steps == 4 and 0 <= result.test_acc <= 100 and result.saved_bytes > 0
    assert net.drop_path_prob == pytest.approx(0.1)  # the last epoch's 0.2 * 1 / 2


def test_network_options_are_checked_against_the_space():
    raw = {"name": "t", "kind": "train", "space": "darts", "arch_list": [DARTS_V2], "proxies": ["train:original"],
           "train": {"network": {"C": 4, "layers": 5}}}
    assert build_definition(raw, "test")["train"]["network"] == {"C": 4, "layers": 5}
    with pytest.raises(HarnessError, match="train.network"):
        build_definition({**raw, "train": {"network": {"width": 4}}}, "test")
    with pytest.raises(HarnessError, match="arch_list"):
        build_definition({**raw, "arch_list": [DARTS_V2.replace("sep_conv_3x3", "conv", 1)]}, "test")


@pytest.mark.slow
def test_cli_trains_a_darts_genotype(tmp_path, capsys):
    argv = ["train", "--space", "darts", "--arch", DARTS_V2, "--network", "C=4", "layers=5", "--limit", "64",
            "--epochs", "1", "--batch-size", "32", "--results", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    row = ResultsStore(tmp_path).read("train").iloc[-1]
    assert row["space"] == "darts" and row["arch_str"] == DARTS_V2
    config = json.loads(row["config"])
    assert config["network"] == {"C": 4, "layers": 5} and config["auxiliary_weight"] == 0.4
    assert main(argv[:-1] + ["--network", "C"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_memory_kind_compares_the_darts_supernet_with_tr_supernet_2_3(tmp_path):
    raw = {"name": "darts-memory-test", "kind": "memory", "space": "darts", "supernet": True, "batch_size": 2,
           "i": 2, "j": 3, "backbone": {"name": "resnet20-wide"}}
    df = run_benchmark(build_definition(raw, "test"), str(tmp_path), progress=False)
    row = df.iloc[0]
    assert row["arch_str"] == "supernet" and row["tr_method"] == "tr-supernet-2-3"
    assert row["original/saved_bytes"] > row["tr-supernet-2-3/saved_bytes"] > 0
    assert row["saved_ratio"] == pytest.approx(row["original/saved_bytes"] / row["tr-supernet-2-3/saved_bytes"])
    assert row["tr-supernet-2-3/trainable_params"] < row["tr-supernet-2-3/params"]
    assert len(ResultsStore(tmp_path).read("memory")) == 1
