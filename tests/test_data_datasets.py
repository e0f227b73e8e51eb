"""NB201 datasets: split files, embedded data, npz sources with official positions, bad input."""
import hashlib

import numpy as np
import pytest
import torch

from harness import HarnessError
from harness.data import DATASETS, load_dataset
from harness.data.datasets import CIFAR10_MEAN, IMAGENET16_STD, split_indices
from harness.data.sources import EMBEDDED_NPZ, read_embedded

# sha256 of the arrays of the original cifar10_5k.npz (computed once from the source file)
X_TRAIN_SHA = "bac45b45504ed1289a3f437be4bfbefece248abbc094a428a0b4dfab00e776ae"
X_TEST_SHA = "da362006b99671213d1a5d856cab2bedf64d40bad4501630ee60f4ceb2d3ec7f"


@pytest.mark.parametrize("file,a,b,n", [("cifar-split.txt", "train", "valid", 50000),
                                        ("cifar100-test-split.txt", "xvalid", "xtest", 10000),
                                        ("imagenet-16-120-test-split.txt", "xvalid", "xtest", 6000)])
def test_split_files_halve_their_set(file, a, b, n):
    first, second = split_indices(file, a), split_indices(file, b)
    assert len(first) == len(second) == n // 2
    assert np.array_equal(np.sort(np.concatenate([first, second])), np.arange(n))


def test_embedded_cifar10_sizes_and_metadata():
    d = load_dataset("cifar10")
    assert (d.name, d.source, d.num_classes, d.pad) == ("cifar10", "embedded", 10, 4)
    assert d.valid is None
    assert d.train.x.shape == (4000, 3, 32, 32) and d.train.x.dtype == torch.uint8
    assert d.train.y.shape == (4000,) and d.train.y.dtype == torch.int64
    assert d.test.x.shape == (1000, 3, 32, 32)
    assert d.mean == pytest.approx(CIFAR10_MEAN) and d.mean[0] == pytest.approx(125.3 / 255)


def test_embedded_cifar10_valid_keeps_split_indices_below_4000():
    d = load_dataset("cifar10-valid")
    assert (len(d.train), len(d.valid), len(d.test)) == (2022, 1978, 1000)
    raw = read_embedded()
    for split, key in ((d.train, "train"), (d.valid, "valid")):
        pos = split_indices("cifar-split.txt", key)
        pos = pos[pos < 4000]
        assert np.array_equal(split.y.numpy(), raw.y_train[pos])
        assert np.array_equal(split.x.permute(0, 2, 3, 1).numpy(), raw.x_train[pos])


def test_embedded_images_are_the_real_lossless_cifar10():
    with np.load(EMBEDDED_NPZ, allow_pickle=False) as f:
        assert hashlib.sha256(f["x_train"].tobytes()).hexdigest() == X_TRAIN_SHA
        assert hashlib.sha256(f["x_test"].tobytes()).hexdigest() == X_TEST_SHA
    d = load_dataset("cifar10")
    # official CIFAR-10: first training image is a frog whose top-left pixel is (59, 62, 63)
    assert d.train.x[0, :, 0, 0].tolist() == [59, 62, 63]
    assert d.train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert d.test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert d.train.x[123, :, 5, 7].tolist() == [163, 154, 149]
    assert d.test.x[999, :, 31, 31].tolist() == [93, 110, 131]


def test_limit_caps_each_split_after_splitting():
    full = load_dataset("cifar10-valid")
    d = load_dataset("cifar10-valid", limit=50)
    assert (len(d.train), len(d.valid), len(d.test)) == (50, 50, 50)
    assert torch.equal(d.valid.x, full.valid.x[:50])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(HarnessError, match="limit"):
            load_dataset("cifar10", limit=bad)


def test_bad_device_is_a_clear_error():
    with pytest.raises(HarnessError, match="'gpu0' is not a torch device"):
        load_dataset("cifar10", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="CUDA is not available"):
            load_dataset("cifar10", device="cuda")


def test_names_unknown_and_case():
    assert load_dataset("CIFAR10", limit=1).name == "cifar10"
    with pytest.raises(HarnessError) as e:
        load_dataset("mnist")
    assert "mnist" in str(e.value) and all(n in str(e.value) for n in DATASETS)


@pytest.mark.parametrize("name,hint", [("cifar100", "harness data download cifar100"),
                                       ("ImageNet16-120", "--data-dir")])
def test_no_embedded_data_says_how_to_get_it(name, hint):
    with pytest.raises(HarnessError, match=hint):
        load_dataset(name)


def _write_npz(path, n_train, n_test, train_index=None, test_index=None, classes=10, hw=32):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train, hw, hw, 3), dtype=np.uint8),
              "y_train": rng.integers(0, classes, n_train),
              "x_test": rng.integers(0, 256, (n_test, hw, hw, 3), dtype=np.uint8),
              "y_test": rng.integers(0, classes, n_test)}
    if train_index is not None:
        arrays["train_index"] = np.asarray(train_index)
    if test_index is not None:
        arrays["test_index"] = np.asarray(test_index)
    np.savez(path, **arrays)
    return arrays


def test_npz_train_index_selects_split_positions_in_official_order(tmp_path):
    train_pos, valid_pos = split_indices("cifar-split.txt", "train"), split_indices("cifar-split.txt", "valid")
    # a shuffled subset of official positions: 3 train-half, 2 valid-half, plus one unknown (-1)
    index = [valid_pos[7], train_pos[100], -1, train_pos[3], valid_pos[2], train_pos[49]]
    a = _write_npz(tmp_path / "d.npz", 6, 4, train_index=index)
    d = load_dataset("cifar10-valid", npz=tmp_path / "d.npz")
    assert d.source == str(tmp_path / "d.npz")
    assert np.array_equal(d.train.y.numpy(), a["y_train"][[3, 5, 1]])  # official order 3 < 49 < 100
    assert np.array_equal(d.valid.y.numpy(), a["y_train"][[4, 0]])
    assert np.array_equal(d.train.x.permute(0, 2, 3, 1).numpy(), a["x_train"][[3, 5, 1]])
    assert len(d.test) == 4  # cifar10-valid tests on the whole official test set
    whole = load_dataset("cifar10", npz=tmp_path / "d.npz")
    assert len(whole.train) == 6  # unknown positions are still part of the whole train set


def test_npz_test_index_gives_cifar100_xvalid_xtest(tmp_path):
    xvalid, xtest = split_indices("cifar100-test-split.txt", "xvalid"), split_indices("cifar100-test-split.txt", "xtest")
    index = [xtest[0], xvalid[0], -1, xvalid[1], xtest[1]]
    a = _write_npz(tmp_path / "c100.npz", 8, 5, test_index=index, classes=100)
    d = load_dataset("cifar100", npz=tmp_path / "c100.npz")
    assert (len(d.train), d.num_classes) == (8, 100)
    assert np.array_equal(d.valid.y.numpy(), a["y_test"][[1, 3]])
    assert np.array_equal(d.test.y.numpy(), a["y_test"][[0, 4]])


def test_npz_without_index_means_first_positions(tmp_path):
    _write_npz(tmp_path / "d.npz", 12, 3, hw=16, classes=120)
    d = load_dataset("ImageNet16-120", npz=tmp_path / "d.npz")
    assert d.pad == 2 and d.std == pytest.approx(IMAGENET16_STD)
    xvalid = split_indices("imagenet-16-120-test-split.txt", "xvalid")
    assert len(d.valid) == int((xvalid < 3).sum())
    assert d.train.x.shape == (12, 3, 16, 16)


def test_npz_bad_inputs(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load_dataset("cifar10", npz=tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(HarnessError, match="junk.npz"):
        load_dataset("cifar10", npz=tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(HarnessError, match="lacks y_train"):
        load_dataset("cifar10", npz=tmp_path / "partial.npz")
    _write_npz(tmp_path / "c100.npz", 4, 4, classes=100)
    with pytest.raises(HarnessError, match="labels span"):  # CIFAR-100 labels given as cifar10
        load_dataset("cifar10", npz=tmp_path / "c100.npz")
    _write_npz(tmp_path / "far.npz", 4, 4, train_index=[60000, 60001, 60002, 60003])
    with pytest.raises(HarnessError, match="no images for the train split"):
        load_dataset("cifar10-valid", npz=tmp_path / "far.npz")
    _write_npz(tmp_path / "dup.npz", 2, 2, train_index=[5, 5])
    with pytest.raises(HarnessError, match="repeats"):
        load_dataset("cifar10", npz=tmp_path / "dup.npz")
    np.savez(tmp_path / "float.npz", x_train=np.zeros((2, 32, 32, 3)), y_train=np.zeros(2, int),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, int))
    with pytest.raises(HarnessError, match="x_train must be uint8"):
        load_dataset("cifar10", npz=tmp_path / "float.npz")
