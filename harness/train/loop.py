"""The training loop, airbench-style: data resident on the device, augmentation as tensor ops,
the whole loop on one screen. Used for candidates (Original, Tr-Net) and backbones alike."""
from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.data.augment import batches, steps_per_epoch
from harness.data.datasets import Dataset, Split
from harness.measure.counting import count_params, trainable_parameters
from harness.measure.memory import SavedTensorCounter, peak_rss_bytes, reset_peak_rss
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


@dataclass
class TrainState:
    """Everything a run needs to continue after ``epochs_done`` epochs exactly as if it had not
    stopped: weights and buffers, the optimizer's momentum, the batch generator's state, and the
    counters. Plain tensors and numbers only, so it saves with ``torch.save`` and loads with
    ``weights_only=True``."""

    epochs_done: int
    model: dict
    optimizer: dict
    generator: torch.Tensor
    steps: int
    seen: int
    wall_s: float
    train_loss: float
    history: list

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """The recipe's SGD over the parameters that require grad (never a Tr-Net's frozen prefix)."""
    return torch.optim.SGD(trainable_parameters(model), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def training_loss(out, y: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy of the logits; a model returning ``(logits, aux_logits)`` (DARTS networks in
    train mode) adds ``cfg.auxiliary_weight`` x the auxiliary head's (reference ``cnn/train.py``)."""
    if isinstance(out, tuple):
        logits, aux = out
        loss = F.cross_entropy(logits, y)
        return loss + cfg.auxiliary_weight * F.cross_entropy(aux, y) if cfg.auxiliary_weight > 0 else loss
    return F.cross_entropy(out, y)


def set_drop_path(model: torch.nn.Module, cfg: TrainConfig, epoch: int) -> None:
    """DARTS drop-path schedule: ``drop_path_prob * epoch / epochs`` on every submodule that has a
    ``drop_path_prob`` attribute (a network, or a Tr-Net's tail); nothing for other models."""
    if cfg.drop_path_prob > 0:
        for m in model.modules():
            if hasattr(m, "drop_path_prob"):
                m.drop_path_prob = cfg.drop_path_prob * epoch / cfg.epochs


def clip_gradients(model: torch.nn.Module, cfg: TrainConfig) -> None:
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(trainable_parameters(model), cfg.grad_clip)


def autocast(cfg: TrainConfig, device: torch.device):
    """The recipe's arithmetic on any device: bf16 autocast for ``precision="bf16"`` (weights and
    optimizer state stay fp32), nothing for fp32."""
    return torch.autocast(device.type, torch.bfloat16, enabled=cfg.precision == "bf16")


def in_format(t: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """A batch in the recipe's memory format (NHWC with ``channels_last``)."""
    return t.contiguous(memory_format=torch.channels_last) if cfg.channels_last and t.dim() == 4 else t


def prepare(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    """The model in the recipe's memory format (its parameters and buffers, in place)."""
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def one_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
             watch: "AbstractContextManager | None" = None) -> torch.Tensor:
    """One training step on a batch in the recipe's memory format: forward in its precision (inside
    ``watch``, e.g. a saved-for-backward counter), the training loss, backward, gradient clipping,
    the optimizer step. The loss (still on the device: reading it would synchronise)."""
    opt.zero_grad(set_to_none=True)
    with watch or nullcontext(), autocast(cfg, x.device):
        loss = training_loss(model(x), y, cfg)
    loss.backward()
    clip_gradients(model, cfg)
    opt.step()
    return loss


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, sync: bool = True):
    """A closure doing one :func:`one_step` of the loop on ``(x, y)`` with the recipe's optimizer. On
    CUDA it synchronises (unless ``sync`` is false: steps of several models overlapping on one
    device), so a timer around it measures the step."""
    prepare(model, cfg)
    x = in_format(x, cfg)
    opt = make_optimizer(model, cfg)
    cuda = x.device.type == "cuda" and sync

    def run() -> None:
        model.train()
        one_step(model, opt, x, y, cfg)
        if cuda:
            torch.cuda.synchronize(x.device)

    return run


_FP32 = TrainConfig()


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: "Split | None", data: Dataset, batch_size: int = 512,
             cfg: "TrainConfig | None" = None) -> "float | None":
    """Top-1 accuracy in percent (None when the split does not exist), in ``cfg``'s precision and
    memory format (fp32 contiguous without one)."""
    if split is None:
        return None
    cfg = cfg or _FP32
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    for x, y in batches(split, batch_size, train=False, mean=data.mean, std=data.std):
        with autocast(cfg, x.device):
            correct += (model(in_format(x, cfg)).argmax(1) == y).sum()
    model.train(was_training)
    return 100.0 * correct.item() / len(split)


#: Steps between host checks of the divergence flag on CUDA (reading it synchronises); CPU checks every step.
CUDA_CHECK_EVERY = 50


def _diverged(label: str, first: torch.Tensor, steps: int) -> TrainingDiverged:
    g, loss = int(first[0].item()), first[1].item()
    return TrainingDiverged(f"{label}: loss is {loss} at epoch {g // steps + 1}, step {g % steps + 1}; "
                            "no result recorded")


def train(model: torch.nn.Module, data: Dataset, cfg: TrainConfig, *, seed: int, label: str = "model",
          progress: bool = True, evaluator: "Callable | None" = None,
          check_every: "int | None" = None, resume: "TrainState | None" = None,
          on_epoch: "Callable[[TrainState], None] | None" = None, compiled: bool = False) -> TrainResult:
    """Train ``model`` on ``data.train`` with ``cfg``; evaluate on ``data.valid`` and ``data.test``
    (with ``evaluator(model, split_name)`` when given, e.g. a Tr-Net over cached prefix features).

    Only parameters with ``requires_grad`` reach the optimizer, so a Tr-Net's frozen prefix is
    never updated. Raises :class:`TrainingDiverged` naming ``label``, epoch and step of the first
    non-finite loss. The check reads a device-side flag every ``check_every`` steps (default: every
    step on CPU, :data:`CUDA_CHECK_EVERY` on CUDA, so steps do not wait for the host) and at epoch end.

    ``compiled``: training steps run through ``torch.compile`` (inductor); the first step stays eager
    (the saved-for-backward bytes are counted there), and so does evaluation. The same arithmetic in
    another order: the weights differ from eager ones in the last bits, and after training by about
    what another CPU gives (docs/table1.md, "Making a candidate cheaper"). The compile time is part of
    ``wall_s``.
    """
    device = data.train.x.device
    cuda = device.type == "cuda"
    check_every = check_every or (CUDA_CHECK_EVERY if cuda else 1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = prepare(model.to(device), cfg)
    stepper = torch.compile(model) if compiled else model  # shares the parameters with model
    opt = make_optimizer(model, cfg)
    first_bad = torch.tensor([-1.0, 0.0], device=device)  # (global step, loss) of the first non-finite loss
    steps = steps_per_epoch(len(data.train), cfg.batch_size)
    counter = SavedTensorCounter(model)  # parameters are resident anyway: count activations only
    history, loss_sum, seen, step, start, wall_before = [], torch.zeros((), device=device), 0, 0, 0, 0.0
    if resume is not None:
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimizer)
        gen.set_state(resume.generator)
        start, step, seen, wall_before = resume.epochs_done, resume.steps, resume.seen, resume.wall_s
        history = list(resume.history)
        loss_sum.fill_(resume.train_loss * len(data.train))
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    first_step = step  # the saved-for-backward bytes are counted on this process's first step
    reset_peak_rss()  # this run's own peak, not the process's so far
    t0 = time.perf_counter()
    bar = progress_bar(cfg.epochs * steps, label, progress, initial=start * steps)
    if evaluator is None:
        def evaluator(m: torch.nn.Module, name: str) -> "float | None":
            return evaluate(m, getattr(data, name), data, cfg=cfg)
    model.train()
    for epoch in range(start, cfg.epochs):
        loss_sum.zero_()
        set_drop_path(model, cfg, epoch)
        for i, (x, y) in enumerate(batches(data.train, cfg.batch_size, train=True, mean=data.mean,
                                           std=data.std, pad=data.pad, cutout=cfg.cutout, generator=gen)):
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch, i / steps)
            counting = step == first_step
            loss = one_step(model if counting else stepper, opt, in_format(x, cfg), y, cfg,
                            counter.counting(counting)).detach()
            new_bad = (first_bad[0] < 0) & ~torch.isfinite(loss)
            first_bad = torch.where(new_bad, torch.stack([loss.new_full((), float(step), dtype=torch.float32),
                                                          loss.float()]), first_bad)
            if (step + 1) % check_every == 0 and first_bad[0] >= 0:  # the run is void: its weights are not kept
                raise _diverged(label, first_bad, steps)
            loss_sum += loss * len(y)
            seen, step = seen + len(y), step + 1
            bar.update(1)
        if first_bad[0] >= 0:
            raise _diverged(label, first_bad, steps)
        if cfg.eval_every_epoch:
            history.append({"epoch": epoch + 1, "train_loss": loss_sum.item() / len(data.train),
                            "val_acc": evaluator(model, "valid"), "test_acc": evaluator(model, "test")})
        if on_epoch is not None:
            on_epoch(TrainState(epochs_done=epoch + 1, model=model.state_dict(), optimizer=opt.state_dict(),
                                generator=gen.get_state(), steps=step, seen=seen,
                                wall_s=wall_before + time.perf_counter() - t0,
                                train_loss=loss_sum.item() / len(data.train), history=history))
    if cuda:
        torch.cuda.synchronize(device)
    wall = wall_before + time.perf_counter() - t0
    bar.close()
    val_acc, test_acc = evaluator(model, "valid"), evaluator(model, "test")
    finished(f"trained {label}: {cfg.epochs} epochs in {wall:.1f} s, val "
             f"{'n/a' if val_acc is None else f'{val_acc:.2f}%'}, test {test_acc:.2f}%", progress)
    return TrainResult(
        val_acc=val_acc, test_acc=test_acc,
        train_loss=loss_sum.item() / len(data.train), epochs=cfg.epochs, steps=step, wall_s=wall,
        images_per_s=seen / wall if wall > 0 else 0.0, saved_bytes=counter.bytes,
        peak_cuda_bytes=torch.cuda.max_memory_allocated(device) if cuda else None,
        peak_rss_bytes=peak_rss_bytes(), params=count_params(model),
        trainable_params=count_params(model, trainable_only=True), history=history)
