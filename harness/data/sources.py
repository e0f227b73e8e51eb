"""Raw image sources: the embedded CIFAR-10 subset, a generic ``.npz``, the official archives.

Every reader returns :class:`RawData`: uint8 NHWC train/test images, int64 labels, and each
image's *official position* (``train_index`` / ``test_index``) so the NB201 split files, which
index the official order, still apply to a subset. A position of -1 means "unknown" (such an
image is used when a whole official set is used, never picked by a split file).

The official CIFAR archives and the NB201 ImageNet16 batches are Python pickles. They are read
with :class:`RestrictedUnpickler`, which admits only what those files contain (numpy array
reconstruction and byte decoding); anything else, e.g. ``os.system``, is refused before it runs.
"""
from __future__ import annotations

import codecs
import importlib
import io
import pickle
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from harness import HarnessError

EMBEDDED_NPZ = Path(__file__).with_name("cifar10_5k.npz")
#: All 60,000 CIFAR-10 images as JPEG (quality 75, about 30 dB PSNR; see docs/training.md), training
#: images in the official order: the full data for CPU experiments, data source ``cifar10-jpeg``.
#: Lossy: accuracies on it are never claims about official CIFAR-10 numbers.
JPEG_NPZ = Path(__file__).with_name("cifar10_jpeg.npz")
#: Data sources by name (``train.data``), besides a path to an .npz file or a folder of official archives.
NAMED_SOURCES = {"embedded": EMBEDDED_NPZ, "cifar10-jpeg": JPEG_NPZ}


@dataclass
class RawData:
    """One dataset as loaded, before the NB201 splits are applied."""

    x_train: np.ndarray  # (N, H, W, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray  # (N,) int64 official positions, -1 = unknown
    test_index: np.ndarray
    source: str  # 'embedded' or the path read


# --------------------------------------------------------------------------- restricted pickles

def _numpy_attr(module: str, name: str):
    """numpy.core.<module>.<name>; numpy >= 2 moved it to numpy._core, pickles name either."""
    try:
        mod = importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # pragma: no cover - numpy 1.x
        mod = importlib.import_module(f"numpy.core.{module}")
    return getattr(mod, name)


# (module, name) as written in the pickle -> the object it may resolve to. CIFAR's Python-2
# pickles name numpy.core.*; pickles written by numpy 2 name numpy._core.* (protocol 5 arrays
# go through numeric._frombuffer); Python-3 protocol-2 pickles encode bytes via _codecs.encode.
# Each of these only builds arrays, dtypes or bytes; none runs arbitrary code.
_ALLOWED: dict[tuple[str, str], Callable[[], object]] = {
    **{(f"numpy.{core}.{module}", name): (lambda m=module, n=name: _numpy_attr(m, n))
       for core in ("core", "_core")
       for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                            ("numeric", "_frombuffer"))},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals listed in ``_ALLOWED``."""

    def find_class(self, module: str, name: str):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return make()


def safe_unpickle(data: bytes, what: str) -> object:
    """Unpickle ``data`` (bytes of a file named ``what``) with :class:`RestrictedUnpickler`."""
    try:
        # latin1 turns Python-2 str payloads into str that numpy decodes back to raw bytes
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # any malformed or refused pickle is bad input
        raise HarnessError(f"{what}: cannot read pickle ({type(e).__name__}: {e})") from None


def _batch(data: bytes, what: str, label_key: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 rows of 3 * size * size channel-major pixels, labels) of one official batch dict."""
    obj = safe_unpickle(data, what)
    if not isinstance(obj, dict):
        raise HarnessError(f"{what}: expected a dict batch, got {type(obj).__name__}")
    obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
    if "data" not in obj or label_key not in obj:
        raise HarnessError(f"{what}: batch lacks 'data' or '{label_key}' (has {sorted(obj)})")
    x = np.asarray(obj["data"])
    y = np.asarray(obj[label_key], dtype=np.int64)
    if x.dtype != np.uint8 or x.shape != (len(y), 3 * size * size):
        raise HarnessError(f"{what}: 'data' must be uint8 ({len(y)}, {3 * size * size}) for "
                           f"{len(y)} labels of {size}x{size} images, got {x.dtype} {x.shape}")
    return x, y


def _to_nhwc(flat: np.ndarray, size: int) -> np.ndarray:
    # official rows are channel-major: 1024 R, 1024 G, 1024 B for CIFAR
    return flat.reshape(-1, 3, size, size).transpose(0, 2, 3, 1)


# --------------------------------------------------------------------------- official archives

@dataclass(frozen=True)
class _Layout:
    folder: str  # folder inside the archive / data dir
    archive: str  # official .tar.gz name
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: str
    download_hint: str


CIFAR_LAYOUTS = {
    "cifar10": _Layout("cifar-10-batches-py", "cifar-10-python.tar.gz",
                       tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels",
                       "harness data download cifar10"),
    "cifar100": _Layout("cifar-100-python", "cifar-100-python.tar.gz", ("train",), ("test",),
                        "fine_labels", "harness data download cifar100"),
}
IMAGENET16_LAYOUT = _Layout("ImageNet16", "", tuple(f"train_data_batch_{i}" for i in range(1, 11)),
                            ("val_data",), "labels", "")


def _check_dir(data_dir: Path) -> None:
    if not data_dir.exists():
        raise HarnessError(f"data dir {data_dir} does not exist")
    if not data_dir.is_dir():
        raise HarnessError(f"data dir {data_dir} is not a folder")


def _dir_reader(folder: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = folder / name
        if not path.is_file():
            raise HarnessError(f"missing data file {path}")
        return path.read_bytes()

    return read


@contextmanager
def _tar_reader(archive: Path, folder: str) -> Iterator[Callable[[str], bytes]]:
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise HarnessError(f"{archive} is not a readable tar archive ({e})") from None

    def read(name: str) -> bytes:
        member = f"{folder}/{name}"
        try:
            f = tar.extractfile(member)
            if f is None:
                raise HarnessError(f"archive {archive}: {member} is not a regular file")
            return f.read()
        except KeyError:
            raise HarnessError(f"archive {archive} lacks {member}") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise HarnessError(f"archive {archive} is corrupt ({e})") from None

    with tar:
        yield read


@contextmanager
def _open_source(data_dir: Path, layout: _Layout, what: str) -> Iterator[tuple[Callable[[str], bytes], str]]:
    """(reader of the layout's files, source name): the extracted folder, ``data_dir`` itself, or
    the official archive read in place."""
    _check_dir(data_dir)
    if (data_dir / layout.folder).is_dir():
        yield _dir_reader(data_dir / layout.folder), str(data_dir / layout.folder)
    elif (data_dir / layout.train[0]).is_file() or data_dir.name == layout.folder:
        yield _dir_reader(data_dir), str(data_dir)
    elif layout.archive and (data_dir / layout.archive).is_file():
        with _tar_reader(data_dir / layout.archive, layout.folder) as read:
            yield read, str(data_dir / layout.archive)
    else:
        expected = f"{layout.folder}/" + (f" or {layout.archive}" if layout.archive else "")
        hint = f" (get it with `{layout.download_hint} --root DIR`)" if layout.download_hint else ""
        raise HarnessError(f"no {what} data in {data_dir}: expected {expected}{hint}")


def read_cifar_dir(data_dir: "str | Path", family: str) -> RawData:
    """CIFAR-10 (``family='cifar10'``) or CIFAR-100 from the official python archive or its folder."""
    layout = CIFAR_LAYOUTS[family]
    what = family.upper().replace("CIFAR", "CIFAR-")
    with _open_source(Path(data_dir), layout, what) as (read, source):
        def load(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
            parts = [_batch(read(n), f"{source}/{n}", layout.label_key, 32) for n in names]
            x = np.concatenate([p[0] for p in parts])
            return _to_nhwc(x, 32), np.concatenate([p[1] for p in parts])

        x_train, y_train = load(layout.train)
        x_test, y_test = load(layout.test)
    return RawData(x_train, y_train, x_test, y_test, np.arange(len(x_train)),
                   np.arange(len(x_test)), source)


def read_imagenet16_dir(data_dir: "str | Path", num_classes: int = 120) -> RawData:
    """NB201's ImageNet16-N: the 16x16 down-sampled ImageNet batches, labels 1..N -> 0..N-1.

    As in NB201's ``ImageNet16`` dataset, only images with label <= N are kept, in file order, so
    the positions of the kept validation images are what imagenet-16-120-test-split.txt indexes.
    """
    layout = IMAGENET16_LAYOUT
    with _open_source(Path(data_dir), layout, "ImageNet16") as (read, source):
        def load(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
            xs, ys = [], []
            for n in names:  # filter per batch: the full 1.28M-image train set would need ~1 GB
                x, y = _batch(read(n), f"{source}/{n}", layout.label_key, 16)
                keep = (y >= 1) & (y <= num_classes)
                xs.append(x[keep])
                ys.append(y[keep] - 1)
            return _to_nhwc(np.concatenate(xs), 16), np.concatenate(ys)

        x_train, y_train = load(layout.train)
        x_test, y_test = load(layout.test)
    return RawData(x_train, y_train, x_test, y_test, np.arange(len(x_train)),
                   np.arange(len(x_test)), source)


# --------------------------------------------------------------------------- generic npz

def decode_jpegs(buf: np.ndarray, offsets: np.ndarray, what: str) -> np.ndarray:
    """JPEG k = ``buf[offsets[k]:offsets[k+1]]`` for every k -> (N, H, W, 3) uint8 (Pillow)."""
    raw = buf.tobytes()
    images = []
    for k in range(len(offsets) - 1):
        try:
            images.append(np.asarray(Image.open(io.BytesIO(raw[offsets[k]:offsets[k + 1]])).convert("RGB")))
        except (OSError, ValueError) as e:
            raise HarnessError(f"{what}: image {k} is not a readable JPEG ({e})") from None
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), dtype=np.uint8)


def _from_jpeg(arrays: dict, path: Path) -> dict:
    """A JPEG-packed npz (``{part}_jpeg`` + ``{part}_offsets``) -> decoded ``x_{part}``; training images
    are in official order (positions 0..N-1), test images 0..999 only (the rest are grouped by class)."""
    out = dict(arrays)
    for part in ("train", "test"):
        out[f"x_{part}"] = decode_jpegs(out.pop(f"{part}_jpeg"), out.pop(f"{part}_offsets"), f"npz file {path}")
    out.setdefault("train_index", np.arange(len(out["x_train"]), dtype=np.int64))
    if "test_index" not in out:
        test_index = np.full(len(out["x_test"]), -1, dtype=np.int64)
        test_index[:1000] = np.arange(min(1000, len(test_index)))
        out["test_index"] = test_index
    return out


@lru_cache(maxsize=2)
def _read_jpeg_npz(path: Path, mtime_ns: int) -> dict:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "class_names"}
    return _from_jpeg(arrays, path)


def read_npz(path: "str | Path", source: "str | None" = None) -> RawData:
    """A generic ``.npz``: uint8 NHWC ``x_train``/``x_test``, integer ``y_train``/``y_test``,
    optional ``train_index``/``test_index`` (official positions, -1 = unknown; default 0..N-1).
    A JPEG-packed one (``train_jpeg``/``train_offsets``, ``test_jpeg``/``test_offsets``, as
    :data:`JPEG_NPZ`) is decoded (and kept decoded for the next read of the same file)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"npz file {path} does not exist")
    source = source or next((name for name, p in NAMED_SOURCES.items() if p.resolve() == path.resolve()), None)
    try:
        with np.load(path, allow_pickle=False) as f:
            jpeg = "train_jpeg" in f.files
            arrays = None if jpeg else {k: f[k] for k in f.files if k != "class_names"}
        if jpeg:
            arrays = _read_jpeg_npz(path.resolve(), path.stat().st_mtime_ns)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise HarnessError(f"npz file {path} cannot be read ({e})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise HarnessError(f"npz file {path} lacks {', '.join(missing)} (has {sorted(arrays)})")
    out = {}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise HarnessError(f"npz file {path}: x_{part} must be uint8 (N, H, W, 3), "
                               f"got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise HarnessError(f"npz file {path}: y_{part} must be {len(x)} integer labels, "
                               f"got {y.dtype} {y.shape}")
        index = arrays.get(f"{part}_index")
        if index is None:
            index = np.arange(len(x))
        if index.shape != (len(x),) or not np.issubdtype(index.dtype, np.integer):
            raise HarnessError(f"npz file {path}: {part}_index must be {len(x)} integers, "
                               f"got {index.dtype} {index.shape}")
        known = index[index >= 0]
        if len(np.unique(known)) != len(known):
            raise HarnessError(f"npz file {path}: {part}_index repeats an official position")
        out[part] = (x, y.astype(np.int64), index.astype(np.int64))
    (xtr, ytr, itr), (xte, yte, ite) = out["train"], out["test"]
    return RawData(xtr, ytr, xte, yte, itr, ite, source or str(path))


def read_embedded() -> RawData:
    """The shipped 5,000 real CIFAR-10 images: official train 0..3999 and test 0..999, lossless."""
    return read_npz(EMBEDDED_NPZ, source="embedded")
