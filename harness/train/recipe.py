"""Hyperparameters in one place: the NB201 recipe, the paper's Tr-Net variant, and Table 6.

NB201 (Dong & Yang 2020): SGD, momentum 0.9, Nesterov, lr 0.1, weight decay 5e-4 on every
parameter (BN included), batch 256, cross-entropy, cosine schedule. "Original" trains 12 epochs;
TR-NAS's Tr-Net trains 18 epochs of which 13 are linear LR warmup from 0 (paper Sec. 4.1, 4.4.1).
Backbones use the paper's Table 6 (the same recipe, 200 epochs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from harness import HarnessError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    warmup_epochs: int = 0
    t_max: "int | None" = None  # cosine period; None = epochs, as the NB201 reference does
    lr: float = 0.1
    eta_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    cutout: int = 0  # Cutout length in pixels, 0 = off
    amp: bool = False  # bf16 autocast, CUDA only; off so numbers compare with the paper
    channels_last: bool = False  # CUDA only
    eval_every_epoch: bool = False

    def __post_init__(self):
        checks = [(self.epochs >= 1, "epochs must be >= 1"),
                  (0 <= self.warmup_epochs <= self.epochs, "warmup_epochs must be in 0..epochs"),
                  (self.t_max is None or self.t_max >= 1, "t_max must be >= 1"),
                  (self.lr > 0, "lr must be > 0"), (self.batch_size >= 1, "batch_size must be >= 1"),
                  (self.weight_decay >= 0, "weight_decay must be >= 0"), (self.cutout >= 0, "cutout must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise HarnessError(f"training config: {msg} (got {self})")

    def with_(self, **changes) -> "TrainConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)


ORIGINAL = TrainConfig(epochs=12, warmup_epochs=0)
TR_NET = TrainConfig(epochs=18, warmup_epochs=13)
BACKBONE = TrainConfig(epochs=200, warmup_epochs=0)


def lr_at(cfg: TrainConfig, epoch: int, fraction: float) -> float:
    """Learning rate at ``epoch`` (0-based) after ``fraction`` (0..1) of its iterations.

    As the NB201 reference scheduler computes it: during the ``W`` warmup epochs the rate rises
    linearly per iteration, lr * (epoch + fraction) / W; afterwards it is cosine and constant within
    an epoch, eta_min + (lr - eta_min) * (1 + cos(pi * (epoch - W) / T_max)) / 2 with T_max = the
    total number of epochs by default -- so a short run after a long warmup ends well above 0.
    """
    w = cfg.warmup_epochs
    if epoch < w:
        return cfg.lr * (epoch + fraction) / w
    if epoch >= cfg.epochs:
        return cfg.eta_min
    t_max = cfg.t_max or cfg.epochs
    return cfg.eta_min + (cfg.lr - cfg.eta_min) * (1 + math.cos(math.pi * (epoch - w) / t_max)) / 2
