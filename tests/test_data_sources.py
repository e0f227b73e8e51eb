"""Restricted unpickling and NB201's ImageNet16-120 batches (built here in their format)."""
import os
import pickle

import numpy as np
import pytest

from harness import HarnessError
from harness.data import load_dataset
from harness.data.datasets import split_indices
from harness.data.sources import safe_unpickle


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _CallsEval:
    def __reduce__(self):
        return eval, ("1 + 1",)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_restricted_unpickler_refuses_code(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _RunsCommand(marker)}, protocol=protocol)
    assert pickle.loads(pickle.dumps(1)) == 1  # sanity: plain pickle works in this process
    with pytest.raises(HarnessError, match=r"evil_batch: .*refusing to load global (posix|os)\.system"):
        safe_unpickle(payload, "evil_batch")
    assert not marker.exists()
    with pytest.raises(HarnessError, match=r"(builtins|__builtin__)\.eval"):
        safe_unpickle(pickle.dumps(_CallsEval(), protocol=protocol), "evil")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_restricted_unpickler_admits_numpy_batches(protocol):
    batch = {"data": np.arange(24, dtype=np.uint8).reshape(2, 12), "labels": [3, 7], "mean": np.ones(3)}
    out = safe_unpickle(pickle.dumps(batch, protocol=protocol), "batch")
    assert np.array_equal(out["data"], batch["data"]) and out["labels"] == [3, 7]


def test_truncated_pickle_is_a_clear_error():
    blob = pickle.dumps({"data": np.zeros(100, np.uint8)}, protocol=2)
    with pytest.raises(HarnessError, match="val_data: cannot read pickle"):
        safe_unpickle(blob[:40], "val_data")


def _imagenet16_dir(root, n_val_kept=6000, n_val_other=500, train_sizes=(30,) * 10):
    """Down-sampled-ImageNet batch files: dict(data=(N, 768) uint8 channel-major, labels=1..1000).

    Kept validation image k (label <= 120) carries k in channel 0 pixels (0,0) and (0,1);
    every image's channel c plane is filled with 10 * c elsewhere, to check the NCHW layout.
    """
    rng = np.random.default_rng(1)
    root.mkdir()

    def images(n):
        x = np.zeros((n, 3, 16, 16), np.uint8)
        for c in range(3):
            x[:, c] = 10 * c
        return x

    labels = np.concatenate([rng.integers(1, 121, n_val_kept), rng.integers(121, 1001, n_val_other)])
    order = rng.permutation(len(labels))
    labels = labels[order]
    x = images(len(labels))
    kept_pos = np.cumsum(labels <= 120) - 1
    x[labels <= 120, 0, 0, 0] = kept_pos[labels <= 120] // 256
    x[labels <= 120, 0, 0, 1] = kept_pos[labels <= 120] % 256
    with open(root / "val_data", "wb") as f:
        pickle.dump({"data": x.reshape(len(x), -1), "labels": labels.tolist()}, f, protocol=4)
    train_labels = []
    for i, n in enumerate(train_sizes, start=1):
        y = rng.integers(1, 1001, n)
        y[:5] = [1, 120, 121, 1000, 60]
        train_labels.append(y)
        with open(root / f"train_data_batch_{i}", "wb") as f:
            pickle.dump({"data": images(n).reshape(n, -1), "labels": y.tolist(),
                         "mean": np.zeros(768)}, f, protocol=2)
    return labels, np.concatenate(train_labels)


def test_imagenet16_120_from_batches(tmp_path):
    val_labels, train_labels = _imagenet16_dir(tmp_path / "in16")
    d = load_dataset("ImageNet16-120", data_dir=tmp_path / "in16")
    kept = train_labels[train_labels <= 120]
    assert len(d.train) == len(kept) and np.array_equal(d.train.y.numpy(), kept - 1)
    assert d.train.y.min() >= 0 and d.train.y.max() <= 119
    assert d.train.x.shape[1:] == (3, 16, 16)
    assert (d.train.x[:, 2, 5, 5] == 20).all() and (d.train.x[:, 1, 15, 0] == 10).all()
    assert (len(d.valid), len(d.test)) == (3000, 3000)
    for split, key in ((d.valid, "xvalid"), (d.test, "xtest")):
        pos = split.x[:, 0, 0, 0].long() * 256 + split.x[:, 0, 0, 1].long()
        assert np.array_equal(pos.numpy(), split_indices("imagenet-16-120-test-split.txt", key))
        assert np.array_equal(split.y.numpy(), val_labels[val_labels <= 120][pos.numpy()] - 1)


def test_imagenet16_subfolder_and_missing_batch(tmp_path):
    _imagenet16_dir(tmp_path / "ImageNet16", n_val_kept=10, n_val_other=2, train_sizes=(6,) * 10)
    d = load_dataset("ImageNet16-120", data_dir=tmp_path)  # finds the ImageNet16/ subfolder
    assert d.source == str(tmp_path / "ImageNet16")
    xvalid = split_indices("imagenet-16-120-test-split.txt", "xvalid")
    assert len(d.valid) + len(d.test) == 10 and len(d.valid) == int((xvalid < 10).sum())
    os.remove(tmp_path / "ImageNet16" / "train_data_batch_7")
    with pytest.raises(HarnessError, match=r"missing data file .*train_data_batch_7"):
        load_dataset("ImageNet16-120", data_dir=tmp_path)


def test_data_dir_errors_name_the_path(tmp_path):
    with pytest.raises(HarnessError, match=f"data dir {tmp_path / 'absent'} does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="is not a folder"):
        load_dataset("cifar100", data_dir=tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"no CIFAR-100 data in .*empty: expected cifar-100-python/ "
                                           r"or cifar-100-python.tar.gz"):
        load_dataset("cifar100", data_dir=tmp_path / "empty")
    with pytest.raises(HarnessError, match="no ImageNet16 data"):
        load_dataset("ImageNet16-120", data_dir=tmp_path / "empty")


def test_cifar_batch_of_wrong_shape_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 768), np.uint8), "labels": [0, 1]}))
    with pytest.raises(HarnessError, match=r"data_batch_1: 'data' must be uint8 \(2, 3072\)"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "data_batch_1").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(HarnessError, match="expected a dict batch"):
        load_dataset("cifar10", data_dir=tmp_path)
