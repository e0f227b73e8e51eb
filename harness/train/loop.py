"""The training loop, airbench-style: data resident on the device, augmentation as tensor ops,
the whole loop on one screen. Used for candidates (Original, Tr-Net) and backbones alike."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.data.augment import batches, steps_per_epoch
from harness.data.datasets import Dataset, Split
from harness.measure.counting import count_params, trainable_parameters
from harness.measure.memory import SavedTensorCounter, peak_rss_bytes
from harness.progress import bar as progress_bar
from harness.progress import finished
from harness.train.recipe import TrainConfig, lr_at


class TrainingDiverged(HarnessError):
    """The loss became NaN or infinite; no result is recorded."""


@dataclass
class TrainResult:
    val_acc: "float | None"
    test_acc: float
    train_loss: float
    epochs: int
    steps: int
    wall_s: float
    images_per_s: float
    saved_bytes: int  # bytes saved for backward in one training step (first batch)
    peak_cuda_bytes: "int | None"  # torch.cuda.max_memory_allocated, on GPU
    peak_rss_bytes: int  # process peak resident set size
    params: int
    trainable_params: int
    history: list = field(default_factory=list)  # per-epoch dicts when eval_every_epoch


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """The recipe's SGD over the parameters that require grad (never a Tr-Net's frozen prefix)."""
    return torch.optim.SGD(trainable_parameters(model), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig):
    """A closure doing one training step of the loop on ``(x, y)``: forward, cross-entropy,
    backward, the recipe's optimizer step. On CUDA it synchronises, so a timer around it measures
    the step."""
    opt = make_optimizer(model, cfg)
    cuda = x.device.type == "cuda"

    def step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, torch.bfloat16, enabled=cfg.amp and cuda):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize(x.device)

    return step


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: "Split | None", data: Dataset, batch_size: int = 512) -> "float | None":
    """Top-1 accuracy in percent (None when the split does not exist)."""
    if split is None:
        return None
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    for x, y in batches(split, batch_size, train=False, mean=data.mean, std=data.std):
        correct += (model(x).argmax(1) == y).sum()
    model.train(was_training)
    return 100.0 * correct.item() / len(split)


def train(model: torch.nn.Module, data: Dataset, cfg: TrainConfig, *, seed: int, label: str = "model",
          progress: bool = True) -> TrainResult:
    """Train ``model`` on ``data.train`` with ``cfg``; evaluate on ``data.valid`` and ``data.test``.

    Only parameters with ``requires_grad`` reach the optimizer, so a Tr-Net's frozen prefix is
    never updated. Raises :class:`TrainingDiverged` naming ``label``, epoch and step on a NaN loss.
    """
    device = data.train.x.device
    cuda = device.type == "cuda"
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = model.to(device)
    if cfg.channels_last and cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    steps = steps_per_epoch(len(data.train), cfg.batch_size)
    counter = SavedTensorCounter(model)  # parameters are resident anyway: count activations only
    history, loss_sum, seen, step = [], torch.zeros((), device=device), 0, 0
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    bar = progress_bar(cfg.epochs * steps, label, progress)
    model.train()
    for epoch in range(cfg.epochs):
        loss_sum.zero_()
        for i, (x, y) in enumerate(batches(data.train, cfg.batch_size, train=True, mean=data.mean,
                                           std=data.std, pad=data.pad, cutout=cfg.cutout, generator=gen)):
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch, i / steps)
            if cfg.channels_last and cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with counter.counting(step == 0), torch.autocast(device.type, torch.bfloat16, enabled=cfg.amp and cuda):
                loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"{label}: loss is {loss.item()} at epoch {epoch + 1}, step {i + 1}; "
                                       "no result recorded")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
            seen, step = seen + len(y), step + 1
            bar.update(1)
        if cfg.eval_every_epoch:
            history.append({"epoch": epoch + 1, "train_loss": loss_sum.item() / len(data.train),
                            "val_acc": evaluate(model, data.valid, data), "test_acc": evaluate(model, data.test, data)})
    if cuda:
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    bar.close()
    val_acc, test_acc = evaluate(model, data.valid, data), evaluate(model, data.test, data)
    finished(f"trained {label}: {cfg.epochs} epochs in {wall:.1f} s, val "
             f"{'n/a' if val_acc is None else f'{val_acc:.2f}%'}, test {test_acc:.2f}%", progress)
    return TrainResult(
        val_acc=val_acc, test_acc=test_acc,
        train_loss=loss_sum.item() / len(data.train), epochs=cfg.epochs, steps=step, wall_s=wall,
        images_per_s=seen / wall, saved_bytes=counter.bytes,
        peak_cuda_bytes=torch.cuda.max_memory_allocated(device) if cuda else None,
        peak_rss_bytes=peak_rss_bytes(), params=count_params(model),
        trainable_params=count_params(model, trainable_only=True), history=history)
