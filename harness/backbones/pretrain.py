"""Backbone pre-training with the paper's Table 6 recipe, and its checkpoint.

SGD Nesterov (momentum 0.9), lr 0.1, cosine, weight decay 5e-4, batch 256, 200 epochs, on the
dataset's NB201 *train* split (so the backbone never sees the candidates' validation data).
"""
from __future__ import annotations

from pathlib import Path

import torch

from harness.data.datasets import Dataset
from harness.backbones.checkpoint import save_backbone
from harness.backbones.resnet import build_backbone
from harness.runinfo import run_record
from harness.train.loop import train
from harness.train.recipe import BACKBONE, TrainConfig


def default_checkpoint_path(results: "str | Path", name: str, dataset: str) -> Path:
    return Path(results) / "checkpoints" / f"{name}-{dataset}.pt"


def pretrain(name: str, data: Dataset, out: "str | Path", *, cfg: "TrainConfig | None" = None,
             seed: int = 0, progress: bool = True) -> dict:
    """Train backbone ``name`` on ``data`` and save it to ``out``; returns the metadata saved."""
    cfg = cfg or BACKBONE
    torch.manual_seed(seed)
    model = build_backbone(name, num_classes=data.num_classes)
    r = train(model, data, cfg, seed=seed, label=f"pretrain {name}", progress=progress)
    meta = {"architecture": name, "dataset": data.name, "split": "train", "data_source": data.source,
            "n_train": len(data.train), "epochs": cfg.epochs, "val_acc": r.val_acc, "test_acc": r.test_acc,
            "wall_s": r.wall_s, "config": cfg.as_dict(), **run_record(seed=seed, device=str(data.train.x.device))}
    save_backbone(out, model, name, meta)
    return meta
