"""Decode ../shared/data/cifar10_jpeg.npz into a generic npz for ``load_dataset(..., npz=PATH)``.

    python scripts/build_cifar10_npz.py --out data/cifar10_full.npz [--jpeg ../shared/data/cifar10_jpeg.npz]

The output holds all 60,000 CIFAR-10 images (uint8 NHWC ``x_train`` 50000x32x32x3 in the
official order, ``y_train``, ``x_test``, ``y_test``, ``train_index``, ``test_index``), so the
NB201 split files index it correctly. The source is JPEG (quality 75, about 30 dB PSNR):
images are LOSSY, so accuracies differ slightly from official CIFAR-10. Use it for experiments
on this machine, never as a claim about official CIFAR-10 numbers.

Test images 0..999 are in official order; the source groups the other 9,000 by class, so their
official positions are unknown and written as -1 in ``test_index`` (the full test set is still
used by cifar10 / cifar10-valid, which take all 10k). As a check, the script compares the
decoded images with the lossless embedded 5k (same positions): labels must agree exactly and
PSNR should be about 30 dB.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.sources import EMBEDDED_NPZ
from harness.store.files import write_atomic

ROOT = Path(__file__).resolve().parents[1]


def decode(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Decode JPEG k = ``buf[offsets[k]:offsets[k+1]]`` for every k into (N, 32, 32, 3) uint8."""
    raw = buf.tobytes()
    out = np.empty((len(offsets) - 1, 32, 32, 3), dtype=np.uint8)
    for k in range(len(out)):
        img = Image.open(io.BytesIO(raw[offsets[k]:offsets[k + 1]])).convert("RGB")
        out[k] = np.asarray(img)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def build(jpeg: Path) -> dict[str, np.ndarray]:
    with np.load(jpeg, allow_pickle=False) as src:
        x_train = decode(src["train_jpeg"], src["train_offsets"])
        x_test = decode(src["test_jpeg"], src["test_offsets"])
        y_train = src["y_train"].astype(np.int64)
        y_test = src["y_test"].astype(np.int64)
        class_names = src["class_names"]
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    test_index = np.full(len(x_test), -1, dtype=np.int64)
    test_index[:1000] = np.arange(1000)  # only these are in official order
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "train_index": np.arange(len(x_train), dtype=np.int64), "test_index": test_index,
            "class_names": class_names}


def check_against_lossless(arrays: dict[str, np.ndarray]) -> None:
    with np.load(EMBEDDED_NPZ, allow_pickle=False) as ref:
        for part, n in (("train", 4000), ("test", 1000)):
            assert (arrays[f"y_{part}"][:n] == ref[f"y_{part}"]).all(), f"{part} labels disagree"
            print(f"{part} 0..{n - 1}: labels agree, PSNR vs lossless "
                  f"{psnr(arrays[f'x_{part}'][:n], ref[f'x_{part}']):.2f} dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="npz file to write")
    ap.add_argument("--jpeg", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10_jpeg.npz")
    args = ap.parse_args()
    arrays = build(args.jpeg)
    check_against_lossless(arrays)
    # np.savez adds ".npz" to names lacking it, so write through a file object
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(args.out, write)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.0f} MB, JPEG-lossy CIFAR-10)")


if __name__ == "__main__":
    main()
