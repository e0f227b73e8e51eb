"""Hyperparameters in one place: the NB201 recipe, the paper's Tr-Net variant, and Table 6.

NB201 (Dong & Yang 2020): SGD, momentum 0.9, Nesterov, lr 0.1, weight decay 5e-4 on every
parameter (BN included), batch 256, cross-entropy, cosine schedule. "Original" trains 12 epochs;
TR-NAS's Tr-Net trains 18 epochs of which 13 are linear LR warmup from 0 (paper Sec. 4.1, 4.4.1).
Backbones use the paper's Table 6 (the same recipe, 200 epochs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch

from harness import HarnessError

#: The cosine period after a warmup -- "18 epochs (including 13 warmup epochs)" (paper Sec. 4.1)
#: reads two ways: ``after_warmup`` (the default: T_max = the epochs after warmup, so the rate anneals
#: to about 0 at the last epoch, like Original's and like NB201's own cosine) or ``all_epochs``
#: (T_max = all epochs, counted from the end of warmup: a Tr-Net's last epoch still runs at 88% of
#: the peak). The NB201 reference (xautodl ``procedures/optimizers.py`` CosineAnnealingLR) computes
#: neither alone: its cosine uses T_max = ``epochs`` counted from the end of warmup and is cut at
#: epoch ``epochs``, and its training loops run ``warmup`` further epochs at ``eta_min`` (total =
#: epochs + warmup), which leave the weights in place but re-estimate BN statistics for them.
#: ``all_epochs`` is that cosine without the rate-0 epochs, so it scores a network still moving at a
#: high rate with BN statistics lagging its weights; ``after_warmup`` is what "the same
#: hyper-parameters as NB201" most plainly means: a cosine that ends at ~0.
COSINE_PERIODS = ("all_epochs", "after_warmup")
#: Arithmetic of the training step: ``fp32`` throughout, or ``bf16`` autocast (matmuls and
#: convolutions in bfloat16, weights, optimizer state and losses in fp32).
PRECISIONS = ("fp32", "bf16")
#: Precision x memory format, as one name ("fp32" = fp32 contiguous, "bf16+channels_last" = both).
MODES = ("fp32", "channels_last", "bf16", "bf16+channels_last")


def parse_mode(mode: str) -> tuple[str, bool]:
    """A :data:`MODES` name -> (precision, channels_last)."""
    if mode not in MODES:
        raise HarnessError(f"mode {mode!r}: unknown (known: {', '.join(MODES)})")
    parts = mode.split("+")
    return ("bf16" if "bf16" in parts else "fp32"), "channels_last" in parts


#: The default mode where bfloat16 arithmetic is native. Chosen from data on a 2-core AVX512-BF16
#: CPU (results/bench-train.md: 2.2-2.4x the images/s of fp32 contiguous at batch 256;
#: results/precision-ranking.md: Kendall tau 0.80 between fp32 and this mode on 20 architectures,
#: above the 0.45 between two fp32 seeds, so it disturbs rankings less than a seed does).
FAST_MODE = "bf16+channels_last"
#: /proc/cpuinfo flags of native bfloat16 arithmetic on x86 (AVX512-BF16, AMX-BF16); without them
#: bf16 autocast is emulated and much slower than fp32 (a 2-core AVX2-only AMD EPYC, one thread:
#: bf16+channels_last 0.12x fp32 on the all-conv architecture, 0.29x on random ones).
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: The CPU default without native bf16: fp32 in channels_last, faster than contiguous on every CPU
#: measured (batch 256: 1.39x all-conv / 2.30x random on the AVX2-only EPYC, 1.41x / 1.70x on the
#: AVX512-BF16 EPYC), with fp32 arithmetic.
CPU_FP32_MODE = "channels_last"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags (Linux /proc/cpuinfo; empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def default_mode(device: "str | torch.device", flags: "frozenset[str] | None" = None) -> str:
    """The :data:`MODES` name training uses on ``device`` unless told otherwise: :data:`FAST_MODE`
    where bf16 is native (a CUDA card with bf16 tensor cores, compute capability >= 8; a CPU with
    :data:`CPU_BF16_FLAGS` -- ``flags`` overrides this machine's, for tests), else
    :data:`CPU_FP32_MODE` on a CPU and fp32 contiguous elsewhere."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise HarnessError(f"device {str(device)!r}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        fast = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    elif dev.type == "cpu":
        return FAST_MODE if CPU_BF16_FLAGS & (cpu_flags() if flags is None else flags) else CPU_FP32_MODE
    else:
        fast = False
    return FAST_MODE if fast else "fp32"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    warmup_epochs: int = 0
    cosine_period: str = "after_warmup"  # see COSINE_PERIODS; the paper leaves it open
    lr: float = 0.1
    eta_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    cutout: int = 0  # Cutout length in pixels, 0 = off
    precision: str = "fp32"  # see PRECISIONS: "bf16" = bf16 autocast, fp32 master weights (any device)
    channels_last: bool = False  # NHWC memory format for the model and the batches (any device)
    eval_every_epoch: bool = False
    # DARTS evaluation options (Liu et al., ICLR 2019, reference ``cnn/train.py``); off by default.
    auxiliary_weight: float = 0.0  # weight of the auxiliary head's loss (models returning (logits, aux))
    drop_path_prob: float = 0.0  # final drop-path probability, ramped linearly from 0 over the epochs
    grad_clip: float = 0.0  # max global gradient norm, 0 = no clipping

    def __post_init__(self):
        checks = [(self.epochs >= 1, "epochs must be >= 1"),
                  (0 <= self.warmup_epochs <= self.epochs, "warmup_epochs must be in 0..epochs"),
                  (self.cosine_period in COSINE_PERIODS,
                   f"cosine_period must be one of {', '.join(COSINE_PERIODS)}"),
                  (self.lr > 0, "lr must be > 0"), (self.batch_size >= 1, "batch_size must be >= 1"),
                  (self.weight_decay >= 0, "weight_decay must be >= 0"), (self.cutout >= 0, "cutout must be >= 0"),
                  (self.auxiliary_weight >= 0, "auxiliary_weight must be >= 0"),
                  (0 <= self.drop_path_prob < 1, "drop_path_prob must be in [0, 1)"),
                  (self.grad_clip >= 0, "grad_clip must be >= 0"),
                  (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}")]
        for ok, msg in checks:
            if not ok:
                raise HarnessError(f"training config: {msg} (got {self})")

    @property
    def mode(self) -> str:
        """Precision and memory format as one :data:`MODES` name."""
        parts = [p for p, on in (("bf16", self.precision == "bf16"), ("channels_last", self.channels_last)) if on]
        return "+".join(parts) or "fp32"

    def with_mode(self, mode: str) -> "TrainConfig":
        precision, channels_last = parse_mode(mode)
        return replace(self, precision=precision, channels_last=channels_last)

    def with_(self, **changes) -> "TrainConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        """Every field; the DARTS options only when on, fp32 as ``amp: false``, and without warmup
        the cosine period as ``all_epochs`` (both periods are then one schedule, T_max = epochs), so
        configs recorded before they existed (and recorded proxies matching on them) stay the same."""
        d = asdict(self)
        if d["warmup_epochs"] == 0:
            d["cosine_period"] = "all_epochs"
        for key in _OFF_BY_DEFAULT:
            if d[key] == 0:
                del d[key]
        if d["precision"] == "fp32":  # recorded as configs before ``precision`` existed did (same meaning)
            del d["precision"]
            d["amp"] = False
        return d


_OFF_BY_DEFAULT = ("auxiliary_weight", "drop_path_prob", "grad_clip")


ORIGINAL = TrainConfig(epochs=12, warmup_epochs=0)
TR_NET = TrainConfig(epochs=18, warmup_epochs=13)
BACKBONE = TrainConfig(epochs=200, warmup_epochs=0)
#: DARTS / DARTS+PT evaluation of a genotype (Liu et al. 2019; Wang et al. 2021): 600 epochs, batch 96,
#: SGD lr 0.025 cosine to 0, momentum 0.9 (no Nesterov), weight decay 3e-4, Cutout 16, drop-path 0.2,
#: auxiliary weight 0.4, gradient clip 5.
DARTS_EVAL = TrainConfig(epochs=600, warmup_epochs=0, lr=0.025, eta_min=0.0, momentum=0.9, nesterov=False,
                         weight_decay=3e-4, batch_size=96, cutout=16, auxiliary_weight=0.4, drop_path_prob=0.2,
                         grad_clip=5.0)
#: Space name -> the recipe its "original" training uses (NB201's is ORIGINAL).
SPACE_RECIPES: dict[str, TrainConfig] = {"darts": DARTS_EVAL}


def lr_at(cfg: TrainConfig, epoch: int, fraction: float) -> float:
    """Learning rate at ``epoch`` (0-based) after ``fraction`` (0..1) of its iterations.

    As the NB201 reference scheduler's formulas: during the ``W`` warmup epochs the rate rises
    linearly per iteration, lr * (epoch + fraction) / W; afterwards it is cosine and constant within
    an epoch, eta_min + (lr - eta_min) * (1 + cos(pi * (epoch - W) / T_max)) / 2, with T_max from
    ``cfg.cosine_period`` (:data:`COSINE_PERIODS`, which says how the reference's own period differs).
    """
    w = cfg.warmup_epochs
    if epoch < w:
        return cfg.lr * (epoch + fraction) / w
    if epoch >= cfg.epochs:
        return cfg.eta_min
    t_max = cfg.epochs if cfg.cosine_period == "all_epochs" else max(cfg.epochs - w, 1)
    return cfg.eta_min + (cfg.lr - cfg.eta_min) * (1 + math.cos(math.pi * (epoch - w) / t_max)) / 2
