"""Train one NB201 candidate as "Original" or as "Tr-Net-i-j" and return a results row.

Original = the NB201 network trained 12 epochs conventionally; Tr-Net-i-j = its first i cells
replaced by the first j blocks of a pre-trained, frozen backbone, trained 18 epochs with 13 of
linear warmup (paper Sec. 3.2, 4.1). ``method`` strings: ``original``, ``tr-net-5-5``, ...
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from harness import HarnessError
from harness.data.datasets import Dataset
from harness.backbones.checkpoint import load_backbone
from harness.spaces.nb201.network import NB201Network
from harness.transfer.splice import build_tr_net
from harness.runinfo import run_record
from harness.spaces.nb201 import encoding as space
from harness.train.loop import train
from harness.train.recipe import ORIGINAL, TR_NET, TrainConfig

_TR_NET = re.compile(r"^tr-net-(\d+)-(\d+)$")
PRETRAIN_HINT = ("pre-train one first, e.g. `harness pretrain resnet32 --dataset cifar10-valid` "
                 "(writes results/checkpoints/resnet32-cifar10-valid.pt), then pass --backbone PATH")


def parse_method(method: str) -> "tuple[int, int] | None":
    """``original`` -> None; ``tr-net-i-j`` -> (i, j)."""
    if method == "original":
        return None
    m = _TR_NET.match(method)
    if not m:
        raise HarnessError(f"method {method!r}: expected 'original' or 'tr-net-<i>-<j>' (e.g. tr-net-5-5)")
    return int(m.group(1)), int(m.group(2))


def default_config(method: str) -> TrainConfig:
    return ORIGINAL if parse_method(method) is None else TR_NET


def build_candidate(arch, method: str, num_classes: int, backbone_path: "str | Path | None" = None
                    ) -> tuple[torch.nn.Module, dict]:
    """The network to train, and metadata about the backbone it borrows (empty for Original)."""
    ij = parse_method(method)
    if ij is None:
        return NB201Network(arch, num_classes=num_classes), {}
    if backbone_path is None:
        raise HarnessError(f"method {method!r} needs a pre-trained backbone checkpoint: {PRETRAIN_HINT}")
    backbone, meta = load_backbone(backbone_path)
    model = build_tr_net(arch, backbone, i=ij[0], j=ij[1], num_classes=num_classes)
    return model, {"backbone": str(backbone_path), "backbone_meta": json.dumps(meta, sort_keys=True)}


def train_candidate(arch, method: str, data: Dataset, *, cfg: "TrainConfig | None" = None,
                    backbone: "str | Path | None" = None, seed: int = 0, progress: bool = True) -> dict:
    """Train one candidate; returns a flat results row (accuracies, cost, provenance)."""
    ops = space.to_ops(arch)
    arch_str = space.to_str(ops)
    cfg = cfg or default_config(method)
    torch.manual_seed(seed)  # the initial weights are part of what a seed reproduces
    model, backbone_info = build_candidate(ops, method, data.num_classes, backbone)
    r = train(model, data, cfg, seed=seed, label=f"{method} {arch_str}", progress=progress)
    return {
        "arch_str": arch_str, "arch_index": space.index_of(ops), "method": method, "dataset": data.name,
        "data_source": data.source, "n_train": len(data.train),
        "n_valid": len(data.valid) if data.valid is not None else 0, "n_test": len(data.test),
        "val_acc": r.val_acc, "test_acc": r.test_acc, "train_loss": r.train_loss, "epochs": r.epochs,
        "warmup_epochs": cfg.warmup_epochs, "steps": r.steps, "wall_s": r.wall_s,
        "images_per_s": r.images_per_s, "saved_bytes": r.saved_bytes, "peak_cuda_bytes": r.peak_cuda_bytes,
        "peak_rss_bytes": r.peak_rss_bytes, "params": r.params, "trainable_params": r.trainable_params,
        "config": json.dumps(cfg.as_dict(), sort_keys=True), "history": json.dumps(r.history),
        **backbone_info, **run_record(seed=seed, device=str(data.train.x.device)),
    }
