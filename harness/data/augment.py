"""Batches from a device-resident uint8 split, with NB201's augmentation as batched tensor ops.

In the style of airbench (Keller Jordan): the whole split already sits on the training device
as uint8, so a batch is an index, a gather and a few elementwise ops; no DataLoader workers.
The train transform is NB201's: random horizontal flip, random crop with ``pad`` pixels of
zero padding (black, before normalisation, as torchvision's ``RandomCrop(padding=pad)``),
normalisation, then optional Cutout (a ``length`` square zeroed after normalisation, centre
uniform over the image and clipped at its border, as NB201's ``CUTOUT``).

All randomness is drawn from the given CPU ``torch.Generator``: a seed gives identical batches,
and the same order, crops, flips and holes whatever the training device.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from harness.data.datasets import Split


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch: the last partial batch is kept (NB201 does not drop it)."""
    return math.ceil(n / batch_size)


def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Per image of ``x`` (B, C, H, W): mirror left-right with probability 1/2 and take a random
    H x W window of the image zero-padded by ``pad`` on each side.

    One ``gather`` does both (a mirrored window reads the padded columns right to left), which
    is several times faster on CPU than advanced indexing followed by a ``where`` for the flip.
    """
    b, c, h, w = x.shape
    dev = x.device
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    cols = torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]  # (B, W)
    rows = torch.arange(h, device=dev) + dy[:, None]  # (B, H)
    wp = w + 2 * pad
    where = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    padded = F.pad(x, (pad, pad, pad, pad)).reshape(b, c, -1)
    return padded.gather(2, where).reshape(b, c, h, w)


def random_cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``length`` x ``length`` square per image (clipped at the border), as NB201's CUTOUT."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b,), generator=generator).to(x.device)
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    half = length // 2
    in_rows = (r >= (cy - half)[:, None]) & (r < (cy + half)[:, None])  # (B, H)
    in_cols = (c >= (cx - half)[:, None]) & (c < (cx + half)[:, None])  # (B, W)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return x.masked_fill(hole[:, None], 0.0)


def normalise(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 ``x * scale - shift``, i.e. ``(x / 255 - mean) / std`` per channel."""
    return x.float().mul_(scale).sub_(shift)


def batches(split: Split, batch_size: int, *, train: bool, mean: Sequence[float],
            std: Sequence[float], pad: int = 0, cutout: int = 0,
            generator: "torch.Generator | None" = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(float32 normalised NCHW images, int64 labels)`` for one pass over ``split``.

    ``train=True``: shuffled by ``torch.randperm(generator=...)``, flipped, randomly cropped
    (``pad``) and, if ``cutout > 0``, cut out; the last partial batch is kept.
    ``train=False``: in order, normalised only, every image exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if train and generator is None:
        raise ValueError("training batches need a torch.Generator for reproducible shuffling")
    device = split.x.device
    m = torch.tensor(mean, dtype=torch.float64)[:, None, None]
    s = torch.tensor(std, dtype=torch.float64)[:, None, None]
    scale = (1 / (255 * s)).float().to(device)
    shift = (m / s).float().to(device)
    n = len(split)
    order = torch.randperm(n, generator=generator).to(device) if train else None
    for start in range(0, n, batch_size):
        if order is None:
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            x, y = split.x.index_select(0, idx), split.y.index_select(0, idx)
        if train:
            x = random_crop_flip(x, pad, generator)
        x = normalise(x, scale, shift)
        if train and cutout > 0:
            x = random_cutout(x, cutout, generator)
        yield x, y
