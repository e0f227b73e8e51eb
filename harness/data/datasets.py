"""NB201 datasets with NB201's splits, as uint8 tensors on the training device.

Semantics follow the NAS-Bench-201 reference code (``get_datasets`` and the split files it
ships, copied into ``splits/``):

* ``cifar10-valid``: train / valid = the two 25k halves of CIFAR-10's training set given by
  cifar-split.txt; test = the official 10k test set.
* ``cifar10``: train = all 50k, no valid, test = the official 10k.
* ``cifar100``: train = all 50k; valid / test = x-valid / x-test, 5k each of the official test
  set (cifar100-test-split.txt).
* ``ImageNet16-120``: the 16x16 down-sampled ImageNet batches restricted to labels 1..120
  (-> 0..119): train 151,700; valid / test = x-valid / x-test, 3k each of the 6,000 kept
  validation images (imagenet-16-120-test-split.txt).

Split indices are official positions. A source that holds a subset (the embedded 5k, an npz
with ``train_index``) keeps the split indices it has, so ``cifar10-valid`` on the embedded data
is the split indices < 4000: 2,022 train / 1,978 valid.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from harness import HarnessError
from harness.data import sources

SPLITS_DIR = Path(__file__).with_name("splits")

# NB201 normalisation (get_datasets in the NB201 reference code), on the 0..1 pixel scale.
CIFAR10_MEAN = tuple(v / 255 for v in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(v / 255 for v in (63.0, 62.1, 66.7))
CIFAR100_MEAN = tuple(v / 255 for v in (129.3, 124.1, 112.4))
CIFAR100_STD = tuple(v / 255 for v in (68.2, 65.4, 70.4))
IMAGENET16_MEAN = tuple(v / 255 for v in (122.68, 116.66, 104.01))
IMAGENET16_STD = tuple(v / 255 for v in (63.22, 61.26, 65.09))


@dataclass(frozen=True)
class _Spec:
    family: str  # which raw data: cifar10 | cifar100 | imagenet16
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int  # random-crop zero padding
    split_file: "str | None"  # None: train = official train, test = official test
    split_of: str  # 'train' (cifar10-valid) or 'test' (x-valid / x-test)
    split_keys: tuple[str, str]  # keys in the split file for (train or valid, valid or test)


SPECS = {
    "cifar10-valid": _Spec("cifar10", 10, CIFAR10_MEAN, CIFAR10_STD, 4, "cifar-split.txt", "train",
                           ("train", "valid")),
    "cifar10": _Spec("cifar10", 10, CIFAR10_MEAN, CIFAR10_STD, 4, None, "", ("", "")),
    "cifar100": _Spec("cifar100", 100, CIFAR100_MEAN, CIFAR100_STD, 4, "cifar100-test-split.txt",
                      "test", ("xvalid", "xtest")),
    "ImageNet16-120": _Spec("imagenet16", 120, IMAGENET16_MEAN, IMAGENET16_STD, 2,
                            "imagenet-16-120-test-split.txt", "test", ("xvalid", "xtest")),
}
DATASETS = tuple(SPECS)
#: Image side per raw data family (NB201's ImageNet16-120 is down-sampled to 16x16).
IMAGE_SIDE = {"cifar10": 32, "cifar100": 32, "imagenet16": 16}


def input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) of one image of dataset ``name``."""
    side = IMAGE_SIDE[SPECS[canonical_name(name)].family]
    return 3, side, side


@dataclass(frozen=True)
class Split:
    """Images ``x`` (uint8, N x 3 x H x W) and labels ``y`` (int64, N), on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int
    source: str  # 'embedded' or the path the images came from
    mean: tuple[float, ...]  # per channel, on the 0..1 pixel scale
    std: tuple[float, ...]
    pad: int  # random-crop zero padding (4 for CIFAR, 2 for ImageNet16)
    train: Split
    valid: "Split | None"
    test: Split


@lru_cache(maxsize=None)
def split_indices(file_name: str, key: str) -> np.ndarray:
    """Official positions listed under ``key`` in a shipped NB201 split file."""
    with open(SPLITS_DIR / file_name) as f:
        kind, values = json.load(f)[key]
    assert kind == "int", f"{file_name}:{key} has type {kind}"
    out = np.asarray(values, dtype=np.int64)
    out.setflags(write=False)
    return out


def seen_in_training(trained_on: str, evaluated_on: str) -> list[str]:
    """The splits of ``evaluated_on`` holding images that a model trained on ``trained_on``'s train
    split has seen (paper A.1: the backbone is trained on NB201's own training split, so that it
    never sees what candidates are validated or tested on). Train splits always come from the
    official train set and test splits from the test set; only a validation split cut from the
    train set (``cifar10-valid``) can overlap -- with any model trained on more of that train set
    than the split file's train half (e.g. on ``cifar10``, all 50k)."""
    a, b = SPECS[canonical_name(trained_on)], SPECS[canonical_name(evaluated_on)]
    if a.family != b.family or b.split_of != "train":
        return []
    same_half = a.split_file == b.split_file and a.split_of == "train"
    return [] if same_half else ["valid"]


def canonical_name(name: str) -> str:
    """The dataset's canonical name (case-insensitive); HarnessError listing the names otherwise."""
    for known in SPECS:
        if name.lower() == known.lower():
            return known
    raise HarnessError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _raw(spec: _Spec, name: str, data_dir, npz) -> sources.RawData:
    """The raw images, by precedence: ``npz``, then ``data_dir``, then the embedded CIFAR-10."""
    if npz is not None:
        return sources.read_npz(npz)
    if data_dir is not None:
        if spec.family == "imagenet16":
            return sources.read_imagenet16_dir(data_dir, spec.num_classes)
        return sources.read_cifar_dir(data_dir, spec.family)
    if spec.family == "cifar10":
        return sources.read_embedded()
    if spec.family == "cifar100":
        how = ("run `harness data download cifar100 --root DIR` and pass --data-dir DIR "
               "(or --npz FILE)")
    else:
        how = ("pass --data-dir DIR holding NB201's ImageNet16 batches (train_data_batch_1..10, "
               "val_data) or --npz FILE")
    raise HarnessError(f"dataset {name} has no embedded data: {how}")


def _device(device: "str | torch.device") -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise HarnessError(f"device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"device {device!r} requested but CUDA is not available here")
    return dev


def _pick(index: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows whose official position is in ``wanted``, in official order."""
    rows = np.flatnonzero(np.isin(index, wanted))
    return rows[np.argsort(index[rows], kind="stable")]


def _to_split(x: np.ndarray, y: np.ndarray, rows: "np.ndarray | None", limit, device) -> Split:
    if rows is not None:
        x, y = x[rows], y[rows]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    # NHWC -> NCHW once here (free when x is a view of the official channel-major rows)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    return Split(xt.to(device), torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device))


SPLIT_NAMES = ("train", "valid", "test")


def _split_limits(limit: "int | dict | None") -> dict[str, int]:
    if limit is None:
        return {}
    if not isinstance(limit, dict):
        limit = dict.fromkeys(SPLIT_NAMES, limit)
    for part, n in limit.items():
        if part not in SPLIT_NAMES:
            raise HarnessError(f"limit: unknown split {part!r} (known: {', '.join(SPLIT_NAMES)})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise HarnessError(f"limit must be a positive integer, got {n!r}"
                               + ("" if len(limit) == 3 else f" for the {part} split"))
    return dict(limit)


def load_dataset(name: str, data_dir: "str | Path | None" = None, npz: "str | Path | None" = None,
                 device: "str | torch.device" = "cpu", limit: "int | dict | None" = None) -> Dataset:
    """Load an NB201 dataset with its splits onto ``device``.

    Sources by precedence: ``npz`` (generic .npz, see :func:`sources.read_npz`), ``data_dir``
    (official archives or their extracted folders), else the embedded 5k CIFAR-10 (cifar10 and
    cifar10-valid only). ``limit`` keeps the first N images of each split (for tiny runs), or,
    as ``{"train": N, "valid": M, "test": K}``, a number per split (a split not named is whole).
    """
    name = canonical_name(name)
    spec = SPECS[name]
    device = _device(device)
    limits = _split_limits(limit)
    raw = _raw(spec, name, data_dir, npz)
    for part, y in (("train", raw.y_train), ("test", raw.y_test)):
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise HarnessError(f"{raw.source}: {part} labels span {y.min()}..{y.max()}, but {name} "
                               f"has classes 0..{spec.num_classes - 1}")

    if spec.split_file is None:
        rows = {"train": None, "valid": None, "test": None}
        have = {"train": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}
    else:
        first, second = (split_indices(spec.split_file, k) for k in spec.split_keys)
        if spec.split_of == "train":  # cifar10-valid: both halves come from the training set
            rows = {"train": _pick(raw.train_index, first), "valid": _pick(raw.train_index, second),
                    "test": None}
            have = {"train": (raw.x_train, raw.y_train), "valid": (raw.x_train, raw.y_train),
                    "test": (raw.x_test, raw.y_test)}
        else:  # x-valid / x-test halves of the official test set
            rows = {"train": None, "valid": _pick(raw.test_index, first),
                    "test": _pick(raw.test_index, second)}
            have = {"train": (raw.x_train, raw.y_train), "valid": (raw.x_test, raw.y_test),
                    "test": (raw.x_test, raw.y_test)}

    splits: dict[str, "Split | None"] = {"valid": None}
    for part, (x, y) in have.items():
        r = rows[part]
        if len(x) == 0 or (r is not None and len(r) == 0):
            raise HarnessError(f"{raw.source}: no images for the {part} split of {name} "
                               f"(the source lacks the official positions the split lists)")
        splits[part] = _to_split(x, y, r, limits.get(part), device)
    return Dataset(name=name, num_classes=spec.num_classes, source=raw.source, mean=spec.mean,
                   std=spec.std, pad=spec.pad, **splits)
