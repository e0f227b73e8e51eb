"""Backbone pre-training with the paper's Table 6 recipe, and its checkpoint.

SGD Nesterov (momentum 0.9), lr 0.1, cosine, weight decay 5e-4, batch 256, 200 epochs, on the
dataset's NB201 *train* split (so the backbone never sees the candidates' validation data).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.backbones.checkpoint import save_backbone
from harness.backbones.resnet import build_backbone
from harness.data.datasets import Dataset
from harness.runinfo import run_record
from harness.train.loop import train
from harness.train.recipe import BACKBONE, TrainConfig


def default_checkpoint_path(results: "str | Path", name: str, dataset: str) -> Path:
    return Path(results) / "checkpoints" / f"{name}-{dataset}.pt"


@dataclass(frozen=True)
class BackboneSettings:
    """The backbone Tr-Net proxies borrow; pre-trained here when its checkpoint does not exist."""

    name: str = "resnet32"
    epochs: "int | None" = None       # None = Table 6's 200
    batch_size: "int | None" = None
    checkpoint: "str | None" = None   # an existing checkpoint instead of the default path
    shortcut: str = "avgpool_conv"    # downsampling shortcut (resnet.SHORTCUTS); the paper leaves it open
    allow_overlap: bool = False       # accept a backbone that has seen the candidates' valid/test images
    prefix_bn: str = "running"        # BN statistics of the frozen prefix (transfer.splice.PREFIX_BN)
    limit: "int | None" = None        # train images: None = the candidates' own, 0 = the whole train split, N = its first N

    def config(self) -> TrainConfig:
        return BACKBONE.with_(epochs=self.epochs, batch_size=self.batch_size)

    def path(self, results: "str | Path", data: Dataset) -> Path:
        """The checkpoint given, or one keyed by everything that produces it (backbone, shortcut,
        recipe, dataset, data source, training images, seed): a backbone pre-trained another way
        (a 3-epoch smoke run, other data) never stands in for this one."""
        if self.checkpoint:
            return Path(self.checkpoint)
        recipe = {"name": self.name, "shortcut": self.shortcut, "config": self.config().as_dict(),
                  "dataset": data.name, "data_source": data.source, "n_train": len(data.train), "seed": 0}
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
        return Path(results) / "checkpoints" / f"{self.name}-{data.name}-{key}.pt"


def pretrain(name: str, data: Dataset, out: "str | Path", *, cfg: "TrainConfig | None" = None,
             seed: int = 0, progress: bool = True, shortcut: str = "avgpool_conv") -> dict:
    """Train backbone ``name`` on ``data`` and save it to ``out``; returns the metadata saved."""
    cfg = cfg or BACKBONE
    torch.manual_seed(seed)
    model = build_backbone(name, num_classes=data.num_classes, shortcut=shortcut)
    r = train(model, data, cfg, seed=seed, label=f"pretrain {name}", progress=progress)
    meta = {"architecture": name, "shortcut": shortcut, "dataset": data.name, "split": "train", "data_source": data.source,
            "n_train": len(data.train), "epochs": cfg.epochs, "val_acc": r.val_acc, "test_acc": r.test_acc,
            "wall_s": r.wall_s, "config": cfg.as_dict(), **run_record(seed=seed, device=str(data.train.x.device))}
    save_backbone(out, model, name, meta)
    return meta


def ensure_backbone(settings: BackboneSettings, data: Dataset, results: "str | Path",
                    progress: bool = False) -> Path:
    """The checkpoint ``settings`` names; pre-trained on ``data`` (and kept) when it does not exist."""
    path = settings.path(results, data)
    if not path.exists():
        cfg = settings.config()
        meta = pretrain(settings.name, data, path, cfg=cfg, progress=progress, shortcut=settings.shortcut)
        print(f"pre-trained {settings.name} on {data.name} ({meta['n_train']} images, {cfg.epochs} epochs): "
              f"val {meta['val_acc']:.2f}% -> {path}")
    return path
