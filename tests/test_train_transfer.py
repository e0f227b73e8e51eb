"""``--transfer auto``: (i, j) from CKA, checked against the real splice, and a
real Tr-Net run recording it. Tiny: 64 embedded images, 1 epoch, a ResNet-20 pre-trained 1 epoch."""
import json

import numpy as np
import pytest

from harness import HarnessError
from harness.analysis.autotransfer import auto_transfer, method_for, splice_compatible, splice_shapes
from harness.backbones.checkpoint import load_backbone
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.proxies import TrainSettings, train_candidate
from harness.spaces import get_space
from harness.spaces.nb201.network import NB201Network
from harness.store.results import ResultsStore
from harness.train.recipe import TrainConfig
from harness.transfer.depth import CKA_ESTIMATORS, DEFAULT_THRESHOLDS
from harness.transfer.splice import build_tr_net

pytestmark = pytest.mark.slow  # real training: see `make test-fast`

TINY = TrainConfig(epochs=1, batch_size=32)
ARCH = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
RECORD_KEYS = {"transfer", "transfer_i", "transfer_j", "transfer_threshold", "transfer_estimator", "transfer_cka",
               "transfer_min_cka",
               "transfer_path", "transfer_source"}


@pytest.fixture(scope="module")
def data(tiny_data):
    return tiny_data(64)


@pytest.fixture(scope="module")
def backbone(data, pretrained):
    return pretrained("resnet20", data, TINY)[0]


def diagonal(cells: int = 15, blocks: int = 9, step: float = 0.03) -> np.ndarray:
    """Fig. 1's shape: similarity falls with depth and away from the (stretched) diagonal."""
    i, j = np.meshgrid(np.arange(cells) / cells, np.arange(blocks) / blocks, indexing="ij")
    return np.clip(1.0 - step * 15 * np.maximum(i, j) - np.abs(i - j), 0.0, 1.0)


def test_method_for():
    assert method_for(5, 5) == "tr-net-5-5" and method_for(10, 6) == "tr-net-10-6"
    for bad in [(0, 5), (5, -1), (True, 5), (2.5, 3)]:
        with pytest.raises(HarnessError, match="positive integer"):
            method_for(*bad)


def test_compatible_pairs_are_exactly_the_splices_build_tr_net_accepts():
    resnet32 = build_backbone("resnet32")
    compatible = splice_compatible(resnet32)
    cells, blocks = splice_shapes(resnet32)
    assert cells[4] == blocks[4] == (16, 32, 32) and cells[9] == blocks[9] == (32, 16, 16)
    for i in range(1, 16):
        for j in range(1, 16):
            try:
                build_tr_net(NB201Network(ARCH), resnet32, i, j)
                accepted = True
            except HarnessError:
                accepted = False
            assert compatible(i, j) == accepted, (i, j)
    assert compatible(5, 5) and compatible(10, 10) and compatible(3, 1)
    assert not compatible(5, 6) and not compatible(15, 15) and not compatible(6, 5)
    wide = splice_compatible(build_backbone("resnet20-wide"))  # 64 channels from block 1: never fits NB201
    assert not any(wide(i, j) for i in range(1, 16) for j in range(1, 10))


def test_choice_from_a_matrix_is_spliceable_and_recorded(data, backbone):
    i, j, record = auto_transfer(backbone, data, threshold=0.7, cka=diagonal())
    assert (i, j) == (record["transfer_i"], record["transfer_j"])
    resnet20, _ = load_backbone(backbone)
    assert splice_compatible(resnet20)(i, j)
    net = build_tr_net(NB201Network(ARCH), resnet20, i, j)
    assert net.i == i and net.j == j
    assert set(record) >= RECORD_KEYS and record["transfer_source"] == "matrix" and record["transfer"] == "auto"
    path = json.loads(record["transfer_path"])
    assert [c for c, _, _ in path] == list(range(1, i + 1)) and path[-1][:2] == [i, j]
    assert min(v for _, _, v in path) >= 0.7 and record["transfer_cka"] == pytest.approx(diagonal()[i - 1, j - 1])
    # A stricter threshold cannot go deeper.
    assert auto_transfer(backbone, data, threshold=0.9, cka=diagonal())[0] <= i


def test_incompatible_best_pairs_are_skipped(data, backbone):
    from harness.transfer.depth import choose_transfer_depth

    m = np.full((15, 9), 0.2)
    m[:10, 6] = 0.99    # cells 1-10 (stages 1-2) look like block 7 (stage 3 of ResNet-20) ...
    m[:2, 0] = 0.95     # ... but only cells 1-2 / block 1 share a shape among the strong pairs
    unconstrained = choose_transfer_depth(m, 0.9)
    assert (unconstrained.i, unconstrained.j) == (10, 7)  # (32, 16, 16) into a (64, 8, 8) slot
    i, j, _ = auto_transfer(backbone, data, threshold=0.9, cka=m)
    assert (i, j) == (2, 1)


def test_small_cka_run_then_choice(data, backbone, tmp_path):
    out = tmp_path / "cka"
    i, j, record = auto_transfer(backbone, data, threshold=0.05, n_archs=1, train_cfg=TINY, seed=0,
                                 out_dir=out, n_eval=64, batch_size=32)
    resnet20, _ = load_backbone(backbone)
    build_tr_net(NB201Network(ARCH), resnet20, i, j)
    assert record["transfer_source"] == str(out / "cka") and len(json.loads(record["transfer_cka_archs"])) == 1
    # Reusing the table gives the same answer without training anything.
    assert auto_transfer(backbone, data, threshold=0.05, cka=out / "cka")[:2] == (i, j)
    df = ResultsStore(out).read("cka")
    mean = df.pivot_table(index="cell", columns="block", values="cka").to_numpy()
    assert record["transfer_cka"] == pytest.approx(mean[i - 1, j - 1])


def cka_table(root, matrix: np.ndarray, estimator: str = "eq1"):
    """``matrix`` (cells x blocks) as the ``cka`` table of a store under ``root``; its folder."""
    rows = [{"network": "net-1", "kind": "nb201", "cell": c + 1, "block": b + 1, "cka": float(v),
             "estimator": estimator} for (c, b), v in np.ndenumerate(matrix)]
    ResultsStore(root).append("cka", rows)
    return root / "cka"


def test_tr_net_run_records_the_chosen_depth(data, backbone, tmp_path, capsys):
    """A ``train`` definition with ``train:tr-net-auto`` (``harness train --transfer auto``)."""
    tiny = {"limit": 64, "batch_size": 32, "epochs": {"tr-net-auto": 1}, "warmup": {"tr-net-auto": 0}}
    raw = {"name": "auto", "kind": "train", "arch_list": [ARCH], "proxies": ["train:tr-net-auto"], "train": tiny,
           "backbone": {"checkpoint": str(backbone)},
           "transfer": {"threshold": 0.7, "cka": str(cka_table(tmp_path / "table", diagonal()))}}
    [row] = run_benchmark(build_definition(raw, "test"), tmp_path / "results", progress=False).to_dict("records")
    assert row["method"] == method_for(row["transfer_i"], row["transfer_j"])
    assert f"transfer auto: chose {row['method']} (eq1 CKA " in capsys.readouterr().out
    assert row["trainable_params"] < row["params"] and row["backbone"] == str(backbone)
    assert set(row) >= RECORD_KEYS and row["batch_id"].startswith("auto-")
    [stored] = ResultsStore(tmp_path / "results").read("train").to_dict("records")
    assert {k: stored[k] for k in RECORD_KEYS} == {k: row[k] for k in RECORD_KEYS}
    # The auto path is exactly a Tr-Net-i-j training run with the chosen i, j and the same seed.
    method = row["method"]
    cfg = TrainSettings(limit=64, batch_size=32, epochs={method: 1}, warmup={method: 0}).config(method)
    direct = train_candidate(get_space("nb201"), ARCH, method, data, cfg=cfg, backbone=backbone, seed=0,
                             progress=False)
    assert (row["val_acc"], row["test_acc"], row["train_loss"]) == (direct["val_acc"], direct["test_acc"],
                                                                   direct["train_loss"])


@pytest.mark.parametrize("threshold", [0, 0.0, -0.1, 1.5, float("nan"), "high", True])
def test_threshold_outside_0_1_is_refused(threshold, data, backbone):
    with pytest.raises(HarnessError, match=r"threshold: must be a number in \(0, 1\]"):
        auto_transfer(backbone, data, threshold=threshold, cka=diagonal())


def test_default_threshold_is_the_estimators_and_a_table_keeps_its_own(data, backbone, tmp_path):
    for estimator in CKA_ESTIMATORS:
        _, _, record = auto_transfer(backbone, data, cka=diagonal(step=0.01), estimator=estimator)
        assert record["transfer_estimator"] == estimator
        assert record["transfer_threshold"] == DEFAULT_THRESHOLDS[estimator]
    cka_table(tmp_path, diagonal(step=0.01), "unbiased_minibatch")
    _, _, record = auto_transfer(backbone, data, cka=tmp_path / "cka")
    assert record["transfer_estimator"] == "unbiased_minibatch"
    assert record["transfer_threshold"] == DEFAULT_THRESHOLDS["unbiased_minibatch"]
    with pytest.raises(HarnessError, match="holds 'unbiased_minibatch' values, not 'eq1'"):
        auto_transfer(backbone, data, cka=tmp_path / "cka", estimator="eq1")


def test_bad_inputs_fail_before_any_training(data, backbone, tmp_path):
    with pytest.raises(HarnessError, match="no such file"):
        auto_transfer(tmp_path / "missing.pt", data, cka=diagonal())
    with pytest.raises(HarnessError, match="no such file"):
        auto_transfer(tmp_path / "missing.pt", data, n_archs=1, train_cfg=TINY)
    for n in (0, -1):
        with pytest.raises(HarnessError, match="at least 1"):
            auto_transfer(backbone, data, n_archs=n, train_cfg=TINY, out_dir=tmp_path / "out")
    with pytest.raises(HarnessError, match=r"expected \(15, 9\)"):
        auto_transfer(backbone, data, cka=np.ones((15, 15)))
    with pytest.raises(HarnessError, match="no such file"):
        auto_transfer(backbone, data, cka=tmp_path / "missing.parquet")
    with pytest.raises(HarnessError, match="lower the threshold"):
        auto_transfer(backbone, data, threshold=1.0, cka=diagonal() * 0.5)
    assert not (tmp_path / "out").exists()

