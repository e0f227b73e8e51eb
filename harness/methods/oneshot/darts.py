"""DARTS supernet training (Liu et al., ICLR 2019): the one-shot seam.

First-order DARTS alternates one Adam step on the architecture weights (on a batch of the
validation split) with one SGD step on the network weights (on a batch of the training split).
Used by the CKA experiment's supernet panel (paper Fig. 2: NB201's supernet, or any space's
``build_supernet()``, e.g. the DARTS space's); DARTS+PT builds on it.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from harness.data.augment import batches, steps_per_epoch
from harness.data.datasets import Dataset
from harness.methods.oneshot.bilevel import arch_params
from harness.progress import bar as progress_bar
from harness.spaces.nb201.supernet import NB201Supernet
from harness.train.loop import TrainingDiverged, evaluate
from harness.train.recipe import TrainConfig

#: First-order DARTS on NB201 (Liu et al. 2019; NB201's DARTS-V1 settings): weights by SGD with a
#: cosine schedule and gradient clipping, alpha by Adam. Epochs and batch size come from train_cfg.
SUPERNET_RECIPE = {"w_lr": 0.025, "w_lr_min": 0.001, "w_momentum": 0.9, "w_weight_decay": 3e-4,
                   "grad_clip": 5.0, "a_lr": 3e-4, "a_betas": (0.5, 0.999), "a_weight_decay": 1e-3}


def train_supernet(data: Dataset, cfg: TrainConfig, *, seed: int, progress: bool = False,
                   model: Optional[nn.Module] = None) -> tuple[nn.Module, dict]:
    """First-order DARTS on a supernet for ``cfg.epochs`` (see ``SUPERNET_RECIPE``): NB201's, or
    ``model`` (any searchable supernet: ``arch_parameters`` and ``weight_parameters()``).

    Per training batch: one Adam step on alpha with the loss on a batch of the validation split
    (the training split when the dataset has none), then one SGD step on the weights. Returns the
    supernet and a summary (genotype, accuracies, which split trained alpha).
    """
    r = SUPERNET_RECIPE
    device = data.train.x.device
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = (NB201Supernet(data.num_classes) if model is None else model).to(device)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=r["w_lr"], momentum=r["w_momentum"],
                            weight_decay=r["w_weight_decay"])
    a_opt = torch.optim.Adam(arch_params(model), lr=r["a_lr"], betas=r["a_betas"], weight_decay=r["a_weight_decay"])
    arch_split, arch_name = (data.valid, "valid") if data.valid is not None else (data.train, "train")

    def arch_stream():
        while True:  # the alpha split is re-shuffled whenever it runs out
            yield from batches(arch_split, cfg.batch_size, train=True, mean=data.mean, std=data.std,
                               pad=data.pad, generator=gen)

    arch_batches = arch_stream()
    bar = progress_bar(cfg.epochs * steps_per_epoch(len(data.train), cfg.batch_size), "supernet (DARTS-1st)",
                       progress)
    model.train()
    loss_sum, seen = 0.0, 0
    for epoch in range(cfg.epochs):
        for group in w_opt.param_groups:  # cosine per epoch, as DARTS
            group["lr"] = r["w_lr_min"] + (r["w_lr"] - r["w_lr_min"]) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
        loss_sum, seen = 0.0, 0
        for step, (x, y) in enumerate(batches(data.train, cfg.batch_size, train=True, mean=data.mean,
                                              std=data.std, pad=data.pad, generator=gen)):
            xa, ya = next(arch_batches)
            a_opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xa), ya).backward()
            a_opt.step()
            w_opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"supernet: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.weight_parameters(), r["grad_clip"])
            w_opt.step()
            loss_sum, seen = loss_sum + loss.item() * len(y), seen + len(y)
            bar.update(1)
    bar.close()
    model.eval()
    return model, {"arch": model.genotype(), "train_loss": loss_sum / max(seen, 1), "alpha_split": arch_name,
                   "val_acc": evaluate(model, data.valid, data), "test_acc": evaluate(model, data.test, data)}
