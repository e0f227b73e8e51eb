"""Device-resident batches: coverage, determinism, and crop / flip / cutout on hand-made images."""
import pytest
import torch
import torch.nn.functional as F

from harness.data import batches, load_dataset, steps_per_epoch
from harness.data.augment import random_crop_flip, random_cutout
from harness.data.datasets import Split

ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def _split(n=10, hw=8):
    x = torch.arange(n * 3 * hw * hw).reshape(n, 3, hw, hw).remainder(251).to(torch.uint8)
    return Split(x, torch.arange(n))


def test_eval_batches_in_order_with_last_partial_and_normalised():
    s = _split(10)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    out = list(batches(s, 4, train=False, mean=mean, std=std))
    assert [len(y) for _, y in out] == [4, 4, 2] == [len(x) for x, _ in out]
    assert torch.equal(torch.cat([y for _, y in out]), torch.arange(10))
    x = torch.cat([x for x, _ in out])
    m, sd = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    assert x.dtype == torch.float32 and x.shape == (10, 3, 8, 8)
    assert torch.allclose(x, (s.x.float() / 255 - m) / sd, rtol=0, atol=1e-5)
    assert steps_per_epoch(10, 4) == 3 == len(out)


def test_train_batches_cover_every_image_once_and_repeat_with_seed():
    s = _split(10)

    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        return list(batches(s, 4, train=True, mean=ZERO, std=ONE, pad=2, cutout=3, generator=g))

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert [len(y) for _, y in a] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in a]).tolist()) == list(range(10))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in c]))
    with pytest.raises(ValueError, match="Generator"):
        next(batches(s, 4, train=True, mean=ZERO, std=ONE))


def test_random_crop_flip_is_a_window_of_the_zero_padded_image():
    img = torch.arange(1, 3 * 5 * 5 + 1).reshape(1, 3, 5, 5).to(torch.uint8)  # no zeros inside
    pad = 2
    padded = F.pad(img, (pad,) * 4)
    windows = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            w = padded[0, :, dy:dy + 5, dx:dx + 5]
            windows[(dy, dx, False)], windows[(dy, dx, True)] = w, w.flip(2)
    out = random_crop_flip(img.expand(1000, -1, -1, -1), pad, torch.Generator().manual_seed(0))
    assert out.shape == (1000, 3, 5, 5) and out.dtype == torch.uint8
    seen = []
    for o in out:
        match = [k for k, w in windows.items() if torch.equal(o, w)]
        assert len(match) == 1
        seen.append(match[0])
    assert len(set(seen)) == 50  # every offset 0..2*pad both ways, mirrored and not
    assert 400 < sum(k[2] for k in seen) < 600


def test_random_flip_without_padding_mirrors_about_half_the_images():
    img = torch.arange(2 * 3 * 4).reshape(2, 1, 3, 4).to(torch.uint8)
    x = img.repeat(200, 1, 1, 1)
    out = random_crop_flip(x, 0, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # each image is exactly one of the two
    assert 150 < int(flipped.sum()) < 250
    assert out[flipped][:, 0, 0].tolist() == x[flipped][:, 0, 0].flip(-1).tolist()


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(300, 3, 10, 10)
    out = random_cutout(x, 4, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])  # same hole per channel
    for img in out[:, 0]:
        rows = (img == 0).any(1).nonzero().flatten()
        cols = (img == 0).any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert int((img == 0).sum()) == len(rows) * len(cols)  # a solid rectangle
    assert int((out[:, 0] == 0).sum((1, 2)).max()) == 16  # unclipped holes are length x length


def test_real_embedded_batch_has_nb201_statistics():
    d = load_dataset("cifar10", limit=512)
    x, y = next(batches(d.train, 512, train=False, mean=d.mean, std=d.std))
    # NB201's constants are CIFAR-10's statistics: normalised real images are roughly standard
    assert x.mean().abs() < 0.15 and 0.85 < x.std() < 1.15
    g = torch.Generator().manual_seed(0)
    xt, yt = next(batches(d.train, 256, train=True, mean=d.mean, std=d.std, pad=d.pad, generator=g))
    assert xt.shape == (256, 3, 32, 32) and yt.dtype == torch.int64
