"""Every default of real-training proxies, in one place (definitions and the CLI build these).

Training methods: ``original`` (the candidate network trained conventionally, NB201 recipe, 12
epochs) and ``tr-net-<i>-<j>`` (paper Sec. 3.2: its first i cells replaced by the first j blocks
of a frozen pre-trained backbone; 18 epochs of which 13 linear warmup, Sec. 4.1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness import HarnessError
from harness.runinfo import default_device
from harness.train.recipe import ORIGINAL, SPACE_RECIPES, TR_NET, TrainConfig, default_mode, parse_mode

ON_MISS = ("train", "error")

#: Table dataset -> the training dataset whose validation accuracy is its proxy (NB201: CIFAR-10
#: candidates are validated on the "cifar10-valid" 25k/25k split).
TRAIN_DATASET = {"cifar10": "cifar10-valid", "cifar100": "cifar100", "ImageNet16-120": "ImageNet16-120"}


def parse_transfer(name: str, prefix: str = "tr-net", what: str = "method") -> "tuple[int, int] | None":
    """``original`` -> None; ``<prefix>-i-j`` (e.g. ``tr-net-5-5``, ``tr-supernet-5-5``) -> (i, j)."""
    if name == "original":
        return None
    m = re.match(rf"^{re.escape(prefix)}-(\d+)-(\d+)$", name) if isinstance(name, str) else None
    if not m:
        raise HarnessError(f"{what} {name!r}: expected 'original' or '{prefix}-<i>-<j>' (e.g. {prefix}-5-5)")
    return int(m.group(1)), int(m.group(2))


def parse_method(method: str) -> "tuple[int, int] | None":
    """``original`` -> None; ``tr-net-i-j`` -> (i, j)."""
    return parse_transfer(method)


@dataclass(frozen=True)
class TrainSettings:
    """How real-training proxies train. ``None`` = the method's recipe default."""

    data: str = "embedded"         # "embedded", a .npz file, or a folder of official archives
    dataset: "str | None" = None   # training dataset; None = TRAIN_DATASET of the table dataset
    device: "str | None" = None    # None = CUDA when available, else CPU
    limit: "int | None" = None     # first N images of each split (None = all)
    limits: dict = field(default_factory=dict)    # split -> first N images of it, over ``limit``

    def split_limits(self) -> "dict | None":
        """The images to keep per split, for :func:`harness.data.datasets.load_dataset` (None = all)."""
        out = {**(dict.fromkeys(("train", "valid", "test"), self.limit) if self.limit else {}), **self.limits}
        return out or None
    batch_size: "int | None" = None
    cutout: "int | None" = None
    epochs: dict = field(default_factory=dict)    # method -> epochs
    warmup: dict = field(default_factory=dict)    # method -> warmup epochs
    cosine_period: "str | None" = None   # recipe.COSINE_PERIODS; None = the recipe's (after_warmup)
    on_miss: str = "train"         # recorded proxies: train a candidate never trained before, or error
    network: dict = field(default_factory=dict)  # options for space.build_network (e.g. DARTS C, layers)
    precision: "str | None" = None       # recipe.PRECISIONS; None = the device's (recipe.default_mode)
    channels_last: "bool | None" = None  # None = the device's (recipe.default_mode)
    compile: bool = False          # train through torch.compile (recorded per row, not part of the recipe)
    seed: int = 0

    def __post_init__(self):
        if self.on_miss not in ON_MISS:
            raise HarnessError(f"on_miss {self.on_miss!r}: expected one of {', '.join(ON_MISS)}")

    def mode(self) -> tuple[str, bool]:
        """(precision, channels_last) of training: each as given, else the device's default
        (:func:`harness.train.recipe.default_mode`), so a config is always concrete."""
        precision, channels_last = parse_mode(default_mode(self.device or default_device()))
        return self.precision or precision, channels_last if self.channels_last is None else self.channels_last

    def resolve(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` in :meth:`mode`'s precision and memory format."""
        precision, channels_last = self.mode()
        return cfg.with_(precision=precision, channels_last=channels_last)

    def config(self, method: str, space: str = "nb201") -> TrainConfig:
        """The method's recipe (``original``: the space's own, e.g. DARTS_EVAL for darts) with overrides,
        in :meth:`mode`'s precision and memory format."""
        base = SPACE_RECIPES.get(space, ORIGINAL) if parse_method(method) is None else TR_NET
        return self.resolve(base.with_(epochs=self.epochs.get(method), warmup_epochs=self.warmup.get(method),
                                       batch_size=self.batch_size, cutout=self.cutout,
                                       cosine_period=self.cosine_period))
