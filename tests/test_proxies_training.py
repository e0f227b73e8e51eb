"""Real training on the embedded CIFAR-10 images, tiny: a few hundred images, 1-2 epochs."""
import json

import pytest
import torch

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone
from harness.backbones.pretrain import pretrain
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.data.datasets import load_dataset, seen_in_training
from harness.proxies import RecordedProxy, TrainProxy
from harness.proxies.training import parse_method, train_candidate
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.tabular import get_table
from harness.train.loop import TrainingDiverged, train
from harness.train.recipe import TrainConfig

pytestmark = pytest.mark.slow  # real training: see `make test-fast`

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
TINY = TrainConfig(epochs=2, warmup_epochs=0, batch_size=32)
SPACE = get_space("nb201")


@pytest.fixture(scope="module")
def data(tiny_data):
    return tiny_data(320)


@pytest.fixture(scope="module")
def backbone(data, pretrained):
    return pretrained("resnet32", data, TrainConfig(epochs=2, batch_size=32))


def test_pretrain_checkpoint_records_metadata(backbone):
    path, meta = backbone
    model, loaded = load_backbone(path, expect="resnet32")
    assert loaded["architecture"] == "resnet32" and loaded["epochs"] == 2 and loaded["dataset"] == "cifar10-valid"
    assert loaded["split"] == "train" and "commit" in loaded and loaded["val_acc"] == meta["val_acc"]


def test_original_and_trnet_train_above_chance_and_report_cost(data, backbone):
    orig = train_candidate(SPACE, ARCH, "original", data, cfg=TINY, seed=0, progress=False)
    tr = train_candidate(SPACE, ARCH, "tr-net-5-5", data, cfg=TINY.with_(warmup_epochs=1), backbone=backbone[0],
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
    a = train_candidate(SPACE, ARCH, "original", data, cfg=TINY.with_(epochs=1), seed=3, progress=False)
    b = train_candidate(SPACE, ARCH, "original", data, cfg=TINY.with_(epochs=1), seed=3, progress=False)
    assert (a["val_acc"], a["test_acc"], a["train_loss"]) == (b["val_acc"], b["test_acc"], b["train_loss"])


def test_trnet_without_checkpoint_says_how_to_make_one(data):
    with pytest.raises(HarnessError, match="harness pretrain resnet32"):
        train_candidate(SPACE, ARCH, "tr-net-5-5", data, cfg=TINY, progress=False)


def test_checkpoint_for_the_wrong_architecture(data, tmp_path):
    from harness.backbones.checkpoint import save_backbone
    from harness.backbones.resnet import build_backbone

    path = tmp_path / "r20.pt"
    save_backbone(path, build_backbone("resnet20-wide", 10), "resnet20-wide", {"dataset": "cifar10-valid", "split": "train"})
    # ResNet-20-wide has 64 channels after block 5's stage: it cannot feed NB201 cell 6 (16 channels).
    with pytest.raises(HarnessError, match="shape"):
        train_candidate(SPACE, ARCH, "tr-net-5-5", data, cfg=TINY, backbone=path, progress=False)


def test_nan_loss_stops_with_arch_epoch_step(data):
    from harness.spaces.nb201.network import NB201Network

    model = NB201Network(ARCH)
    with torch.no_grad():
        model.head.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"my-arch: loss is nan at epoch 1, step 1"):
        train(model, data, TINY, seed=0, label="my-arch", progress=False)


def test_diverging_search_evaluation_writes_no_row(data, tmp_path):
    store = ResultsStore(tmp_path)
    proxy = TrainProxy(SPACE, "original", data, table_dataset="cifar10", cfg=TINY.with_(lr=1e30), store=store)
    with pytest.raises(TrainingDiverged, match=r"original \|nor_conv_3x3~0\|.*at epoch 1, step \d"):
        proxy(("nor_conv_3x3",) * 6)
    assert store.read("train") is None


def test_recorded_proxy_replays_matching_runs_and_trains_or_errors_on_a_miss(data, tmp_path):
    store = ResultsStore(tmp_path)
    cfg = TINY.with_(epochs=1)
    trainer = TrainProxy(SPACE, "original", data, table_dataset="cifar10", cfg=cfg, store=store)
    first = trainer(SPACE.canonical(ARCH))
    replay = RecordedProxy(trainer, on_miss="error")(SPACE.canonical(ARCH))
    assert replay.cached and not first.cached
    assert (replay.value, replay.ground_truth) == (first.value, first.ground_truth)
    assert first.ground_truth == get_table("nb201").lookup(ARCH, "cifar10", "test_acc", 200)
    other = SPACE.canonical(0)
    with pytest.raises(HarnessError, match="no original run of .* with this training config"):
        RecordedProxy(trainer, on_miss="error")(other)
    # Another training budget is another config: never mixed in.
    longer = TrainProxy(SPACE, "original", data, table_dataset="cifar10", cfg=cfg.with_(epochs=2), store=store)
    with pytest.raises(HarnessError, match="no original run"):
        RecordedProxy(longer, on_miss="error")(SPACE.canonical(ARCH))
    trained = RecordedProxy(trainer, on_miss="train")(other)  # a miss trains and records
    assert not trained.cached and len(store.read("train")) == 2


def test_recorded_proxy_matches_rows_from_before_a_data_column_was_written(data, tmp_path):
    """Every part has every declared column, so a column no row recorded reads back as all null:
    it must filter nothing, as when it was absent."""
    store = ResultsStore(tmp_path)
    trainer = TrainProxy(SPACE, "original", data, table_dataset="cifar10", cfg=TINY.with_(epochs=1), store=store)
    store.append("train", [{"space": "nb201", "arch_str": ARCH, "method": "original", "dataset": data.name,
                            "config": RecordedProxy(trainer).config, "val_acc": 50.0, "test_acc": 40.0,
                            "wall_s": 1.0, "saved_bytes": 10, "device": "cpu"}])  # no data_source, n_train, n_valid
    score = RecordedProxy(trainer, on_miss="error")(SPACE.canonical(ARCH))
    assert score.cached and score.value == 50.0


def test_rank_benchmark_with_a_real_trained_proxy(tmp_path):
    raw = {"name": "rank-trained", "kind": "rank", "datasets": ["cifar10"], "proxies": ["train:original"],
           "train": {"archs": 4, "limit": 128, "batch_size": 64, "epochs": {"original": 1}}}
    df = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    assert list(df["proxy"]) == ["train:original"] and df["n"].iloc[0] == 4
    assert -1 <= df["krocc"].iloc[0] <= 1 and df["wall_s"].iloc[0] > 0
    assert len(ResultsStore(tmp_path).read("train")) == 4  # every training run recorded


def test_search_with_trnet_proxy_pretrains_the_backbone_once(tmp_path):
    raw = {"name": "search-trnet", "kind": "search", "datasets": ["cifar10"], "samplers": ["rea"], "budget": 3,
           "proxies": ["train:tr-net-5-5"], "sampler_options": {"rea": {"population_size": 2, "sample_size": 1}},
           "train": {"limit": 128, "batch_size": 64, "epochs": {"tr-net-5-5": 2}, "warmup": {"tr-net-5-5": 1}},
           "backbone": {"epochs": 1, "batch_size": 64}}
    summary = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    (ckpt,) = (tmp_path / "checkpoints").glob("resnet32-cifar10-valid-*.pt")  # keyed by its recipe and data
    _, meta = load_backbone(ckpt)
    assert meta["epochs"] == 1 and meta["split"] == "train"
    runs = ResultsStore(tmp_path).read("runs")
    assert len(runs) == 3 and summary["trials"].iloc[0] == 3
    train_rows = ResultsStore(tmp_path).read("train")
    assert (train_rows["method"] == "tr-net-5-5").all() and (train_rows["backbone"] == str(ckpt)).all()
    assert (train_rows["batch_id"] == summary["batch_id"].iloc[0]).all()
    assert train_rows["backbone_sha256"].nunique() == 1 and len(train_rows["backbone_sha256"].iloc[0]) == 64
    # Another recipe (more epochs) gets its own checkpoint: the 1-epoch smoke backbone is not reused.
    raw["backbone"]["epochs"] = 2
    run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    assert len(list((tmp_path / "checkpoints").glob("resnet32-cifar10-valid-*.pt"))) == 2
    assert ResultsStore(tmp_path).read("train")["backbone_sha256"].nunique() == 2


def test_bad_method():
    with pytest.raises(HarnessError, match="method 'trnet'"):
        parse_method("trnet")


def test_seen_in_training_rules():
    assert seen_in_training("cifar10", "cifar10-valid") == ["valid"]  # all 50k include the valid half
    assert seen_in_training("cifar10-valid", "cifar10-valid") == []   # the split file's two halves
    assert seen_in_training("cifar10-valid", "cifar10") == []         # the official test set is never trained on
    assert seen_in_training("cifar100", "cifar100") == []             # x-valid / x-test come from the test set
    assert seen_in_training("cifar10", "cifar100") == []              # other images


def test_backbone_that_saw_the_validation_images_is_refused(data, tmp_path):
    full = load_dataset("cifar10", limit=128)  # the embedded images; its train split includes cifar10-valid's valid
    path = tmp_path / "leaky.pt"
    pretrain("resnet32", full, path, cfg=TrainConfig(epochs=1, batch_size=64), progress=False)
    with pytest.raises(HarnessError, match="trained on 'cifar10', whose train images include the valid split"):
        train_candidate(SPACE, ARCH, "tr-net-5-5", data, cfg=TINY.with_(epochs=1), backbone=path, progress=False)
    row = train_candidate(SPACE, ARCH, "tr-net-5-5", data, cfg=TINY.with_(epochs=1), backbone=path, progress=False,
                          allow_overlap=True)
    assert json.loads(row["backbone_meta"])["dataset"] == "cifar10"


def test_a_compiled_run_is_the_same_recipe_recorded_as_compiled(data, tmp_path):
    """``compiled`` trains through torch.compile: the row says so, the saved-for-backward bytes
    (counted on the eager first step) are the eager run's, the losses agree to rounding, and a
    recorded proxy replays it for an eager request (an execution option, not another recipe)."""
    store = ResultsStore(tmp_path)
    small = {"C": 4, "N": 1}  # a small graph: the compile takes seconds, not minutes
    rows = {c: TrainProxy(SPACE, "original", data, table_dataset="cifar10", cfg=TINY, store=store, network=small,
                          compiled=c).train_row(SPACE.canonical(ARCH)) for c in (False, True)}
    assert [rows[c]["compiled"] for c in (False, True)] == [False, True]
    assert rows[True]["config"] == rows[False]["config"] and rows[True]["saved_bytes"] == rows[False]["saved_bytes"]
    # Rounding differences compound over the steps: close, not equal.
    assert rows[True]["train_loss"] == pytest.approx(rows[False]["train_loss"], rel=1e-2)
    assert list(store.read("train")["compiled"]) == [False, True]
    eager = TrainProxy(SPACE, "original", data, table_dataset="cifar10", cfg=TINY, store=store, network=small)
    assert RecordedProxy(eager, on_miss="error")(SPACE.canonical(ARCH)).cached
