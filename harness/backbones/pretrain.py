"""Backbone pre-training with the paper's Table 6 recipe, resumable, and the shipped backbone.

SGD Nesterov (momentum 0.9), lr 0.1, cosine, weight decay 5e-4, batch 256, 200 epochs, on the
dataset's NB201 *train* split (so the backbone never sees the candidates' validation data).

A pre-training writes its whole state (weights, momentum, batch generator) beside its output
after every epoch (``<out>.resume.pt``); a rerun, or a run after ``kill -9``, continues from the
last finished epoch with exactly the batches and rates the uninterrupted run would have used.

The repository ships one backbone (:data:`SHIPPED`): ResNet-32 pre-trained with Table 6's full
200-epoch recipe on the 25k train half of cifar10-valid (all 60,000 shipped CIFAR-10 images),
with its provenance (recipe, seed, commit, accuracy, sha256) in the JSON file beside it. A
definition whose backbone recipe is that one uses it instead of pre-training its own.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from harness import HarnessError
from harness.backbones.checkpoint import save_backbone
from harness.backbones.resnet import BACKBONES, build_backbone
from harness.data.datasets import Dataset
from harness.progress import finished
from harness.runinfo import run_record
from harness.store.files import write_atomic, write_text
from harness.train.loop import TrainState, train
from harness.train.recipe import BACKBONE, TrainConfig, default_mode, lr_at

STATE_FORMAT = "harness-pretrain-state-v1"
PRETRAINED = Path(__file__).resolve().parent / "pretrained"
#: The shipped backbone (``make backbone`` writes it) and the recipe it was trained with; the
#: precision/memory mode is how, not what, and is recorded in its provenance file.
SHIPPED = PRETRAINED / "resnet32-cifar10-valid.pt"
SHIPPED_RECIPE = {"name": "resnet32", "shortcut": "avgpool_conv", "epochs": BACKBONE.epochs,
                  "batch_size": BACKBONE.batch_size, "dataset": "cifar10-valid", "data_source": "cifar10-jpeg",
                  "n_train": 25000, "seed": 0}


def default_checkpoint_path(results: "str | Path", name: str, dataset: str) -> Path:
    return Path(results) / "checkpoints" / f"{name}-{dataset}.pt"


def state_path(out: "str | Path") -> Path:
    """Where a pre-training writing ``out`` keeps its per-epoch state."""
    out = Path(out)
    return out.with_name(out.stem + ".resume.pt")


def provenance_path(out: "str | Path") -> Path:
    return Path(out).with_suffix(".json")


def recipe_of(name: str, shortcut: str, cfg: TrainConfig, data: Dataset, seed: int) -> dict:
    """Everything that decides what a pre-training produces (the mode only decides how fast)."""
    return {"name": name, "shortcut": shortcut, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "dataset": data.name, "data_source": data.source, "n_train": len(data.train), "seed": seed}


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
    mode: "str | None" = None         # precision/memory mode of pre-training (recipe.MODES); None = the device's default

    def config(self, device: "str | torch.device" = "cpu") -> TrainConfig:
        return BACKBONE.with_(epochs=self.epochs, batch_size=self.batch_size).with_mode(
            self.mode or default_mode(device))

    def path(self, results: "str | Path", data: Dataset) -> Path:
        """The checkpoint given; the shipped one when this is its recipe (pre-trained there, or
        resumed from its committed state, while it is unfinished); else one keyed by everything
        that produces it (backbone, shortcut, recipe, dataset, data source, training images, seed):
        a backbone pre-trained another way (a 3-epoch smoke run, other data) never stands in for
        this one."""
        if self.checkpoint:
            return Path(self.checkpoint)
        cfg = self.config(data.train.x.device)
        if recipe_of(self.name, self.shortcut, cfg, data, 0) == SHIPPED_RECIPE:
            return SHIPPED
        recipe = {"name": self.name, "shortcut": self.shortcut, "config": cfg.as_dict(),
                  "dataset": data.name, "data_source": data.source, "n_train": len(data.train), "seed": 0}
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
        return Path(results) / "checkpoints" / f"{self.name}-{data.name}-{key}.pt"


def _load_state(path: Path, recipe: dict) -> "TrainState | None":
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights-only unpickler raises many kinds
        raise HarnessError(f"pre-training state {path}: not readable ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                           "delete it to start over") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise HarnessError(f"pre-training state {path}: not a {STATE_FORMAT} file; delete it to start over")
    if payload.get("recipe") != recipe:
        raise HarnessError(f"pre-training state {path}: written by another recipe ({payload.get('recipe')}, "
                           f"this run: {recipe}); delete it to start over")
    return TrainState(**payload["state"])


def pretrain(name: str, data: Dataset, out: "str | Path", *, cfg: "TrainConfig | None" = None,
             seed: int = 0, progress: bool = True, shortcut: str = "avgpool_conv") -> dict:
    """Train backbone ``name`` on ``data`` and save it to ``out`` (with its provenance JSON
    beside it); returns the metadata saved. Resumes from ``state_path(out)`` when it exists."""
    cfg = cfg or BACKBONE
    out = Path(out)
    if name not in BACKBONES:  # before anything is created
        raise HarnessError(f"backbone {name!r}: unknown (known: {', '.join(BACKBONES)})")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.with_name(out.stem + ".pretrain.lock")
    with open(lock_path, "w") as lock:
        try:  # two runs writing one state file would undo each other's epochs
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(f"backbone {out}: another process is pre-training it now; wait for it to finish") from None
        meta = _pretrain(name, data, out, cfg, seed, progress, shortcut)
    lock_path.unlink(missing_ok=True)
    return meta


def _pretrain(name: str, data: Dataset, out: Path, cfg: TrainConfig, seed: int, progress: bool, shortcut: str) -> dict:
    recipe = recipe_of(name, shortcut, cfg, data, seed)
    resume_file = state_path(out)
    resume = _load_state(resume_file, recipe)
    label = f"pretrain {name}"
    if resume is not None:
        finished(f"{label}: resuming after epoch {resume.epochs_done}/{cfg.epochs} from {resume_file}", progress)

    first, wall_first = (resume.epochs_done, resume.wall_s) if resume else (0, 0.0)

    def keep(state: TrainState) -> None:
        payload = {"format": STATE_FORMAT, "recipe": recipe, "mode": cfg.mode, "state": state.as_dict()}
        write_atomic(resume_file, lambda tmp: torch.save(payload, tmp))
        e = state.epochs_done
        left = (state.wall_s - wall_first) / (e - first) * (cfg.epochs - e)
        finished(f"{label}: epoch {e}/{cfg.epochs}, train loss {state.train_loss:.4f}, "
                 f"lr {lr_at(cfg, e - 1, 0.0):.4f}, {state.wall_s / 60:.1f} min so far, ~{left / 60:.0f} min left",
                 progress)

    torch.manual_seed(seed)
    model = build_backbone(name, num_classes=data.num_classes, shortcut=shortcut)
    r = train(model, data, cfg, seed=seed, label=label, progress=progress, resume=resume, on_epoch=keep)
    meta = {"architecture": name, "shortcut": shortcut, "dataset": data.name, "split": "train", "data_source": data.source,
            "n_train": len(data.train), "n_valid": len(data.valid) if data.valid else 0, "epochs": cfg.epochs,
            "val_acc": r.val_acc, "test_acc": r.test_acc, "train_loss": r.train_loss, "wall_s": r.wall_s,
            "resumed": resume is not None, "mode": cfg.mode, "config": cfg.as_dict(),
            **run_record(seed=seed, device=str(data.train.x.device))}
    save_backbone(out, model, name, meta)
    write_provenance(out, meta)
    resume_file.unlink(missing_ok=True)
    return meta


def write_provenance(out: "str | Path", meta: dict) -> Path:
    """``<out>.json``: the checkpoint's metadata and its sha256, so a copy can be checked."""
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    return write_text(json.dumps({"checkpoint": Path(out).name, "sha256": digest, **meta}, indent=2) + "\n",
                      provenance_path(out))


def ensure_backbone(settings: BackboneSettings, data: Dataset, results: "str | Path",
                    progress: bool = False) -> Path:
    """The checkpoint ``settings`` names; pre-trained on ``data`` (and kept) when it does not exist."""
    path = settings.path(results, data)
    if not path.exists():
        cfg = settings.config(data.train.x.device)
        meta = pretrain(settings.name, data, path, cfg=cfg, progress=progress, shortcut=settings.shortcut)
        print(f"pre-trained {settings.name} on {data.name} ({meta['n_train']} images, {cfg.epochs} epochs): "
              f"val {meta['val_acc']:.2f}% -> {path}")
    return path
