"""The CKA experiment of the paper's Figs. 1 and 2, end to end.

Paper Sec. 3.1, Case 1: train a ResNet-32, train many NB201 architectures, and compare each
architecture's search cells with the ResNet's blocks by linear CKA on the same images; Fig. 1
shows three networks and the mean. Case 2 / Fig. 2 does the same for a DARTS supernet.
:func:`run_cka` does both on any backbone checkpoint and dataset:

* **Backbone**: a harness checkpoint (:func:`harness.backbones.checkpoint.load_backbone`); its
  features are the outputs of its residual blocks (columns, ``block`` 1..K).
* **NB201 networks**: trained here with the harness loop and the NB201 "Original" recipe (epochs
  from ``train_cfg``), or loaded from a network checkpoint written by :func:`harness.backbones.checkpoint.save_network`. Their
  features are the outputs of the 3N search cells (rows, ``cell`` 1..3N; reduction blocks are not
  search cells, as in Fig. 1's 15 rows).
* **Supernet** (``supernet=True``): the NB201 DARTS supernet trained with *first-order DARTS*
  (alternating one Adam step on alpha, on a batch of the validation split, and one SGD step on the
  weights, on a batch of the training split; DARTS's NB201 hyperparameters in
  ``SUPERNET_RECIPE``). Its cells are compared through the same space-agnostic path
  (:func:`harness.analysis.features.cka_against_reference` takes any modules).
* **Evaluation set**: the first ``n_eval`` images of the validation split (the test split when the
  dataset has none; all of it when it is smaller, the count used is recorded), normalised, no
  augmentation, fixed for every network; CKA is the minibatch (unbiased HSIC) estimator of Nguyen
  et al. (2021) over batches of ``batch_size``. Neither the backbone (pre-trained on the train
  split) nor the NB201 networks trained on these images; the supernet's alpha did (DARTS uses the
  validation split for alpha), which CKA, comparing representations and not labels, tolerates.

Outputs in ``out_dir`` (each written atomically): ``cka.parquet`` in long form, one row per
(network, cell, block) with provenance; ``cka_grid.png`` (one panel per network plus the mean);
``cka_mean.png`` (the mean alone). The mean is over the NB201 architectures only (the supernet is
its own panel), NaN-aware: a cell without variance (an architecture whose cell output is always
zero) is NaN and left out of that square's mean.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from harness import HarnessError
from harness.analysis.features import cka_against_reference
from harness.backbones.checkpoint import load_backbone
from harness.data.augment import batches
from harness.data.datasets import Dataset, Split
from harness.methods.oneshot.darts import SUPERNET_RECIPE, train_supernet
from harness.proxies.training import train_network
from harness.report.heatmap import mean_matrix, plot_cka_grid, plot_cka_heatmap
from harness.runinfo import run_record
from harness.spaces import get_space
from harness.spaces.nb201 import encoding as space
from harness.spaces.nb201.network import NB201Network
from harness.store.results import ResultsStore
from harness.train.checkpoint import load_network, save_network
from harness.train.recipe import ORIGINAL, TrainConfig

SUPERNET = "supernet"
GRID_PNG, MEAN_PNG = "cka_grid.png", "cka_mean.png"

ArchSpec = Union[str, int, Path, Sequence[str]]


@dataclass(frozen=True)
class CkaResult:
    """One CKA run: a (cells x blocks) matrix per network, in ``names`` order, and their mean."""

    matrices: list[np.ndarray]
    mean: np.ndarray
    names: list[str]          # "net-1", "net-2", ..., and "supernet"
    archs: list[str]          # NB201 string per network (the supernet's: its genotype)
    parquet_path: Path
    png_paths: list[Path]     # [cka_grid.png, cka_mean.png]


# --- inputs ------------------------------------------------------------------------------------

def resolve_archs(archs, seed: int = 0) -> list[Union[tuple[str, ...], Path]]:
    """``archs`` -> op tuples (to train) or checkpoint paths (to load).

    An int N draws N architectures uniformly from NB201 with ``seed``; a list holds NB201 strings,
    benchmark indices (ints or digit strings), op tuples, or paths to network checkpoints.
    """
    if isinstance(archs, (int, np.integer)) and not isinstance(archs, bool):
        if archs < 1:
            raise HarnessError(f"archs: need at least 1 random architecture, got {archs}")
        rng = np.random.default_rng(seed)
        return [space.random_ops(rng) for _ in range(int(archs))]
    if isinstance(archs, (str, Path)) or not isinstance(archs, Sequence) or len(archs) == 0:
        raise HarnessError(f"archs: expected a number of random architectures or a non-empty list, got {archs!r}")
    resolved = []
    for item in archs:
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item)
        if isinstance(item, Path) or (isinstance(item, str) and not item.startswith("|")):
            if not Path(item).is_file():
                raise HarnessError(f"archs: {str(item)!r} is neither an NB201 string nor an existing network checkpoint")
            resolved.append(Path(item))
        else:
            resolved.append(space.to_ops(item))
    return resolved


def eval_images(data: Dataset, n_eval: int) -> tuple[torch.Tensor, str]:
    """The fixed evaluation set: first ``n_eval`` images of valid (else test), normalised, no augmentation."""
    split, name = (data.valid, "valid") if data.valid is not None else (data.test, "test")
    n = min(n_eval, len(split))
    if n < 4:
        raise HarnessError(f"CKA: the {name} split has {len(split)} images; the unbiased estimator needs at least 4")
    part = Split(split.x[:n], split.y[:n])
    x = torch.cat([b for b, _ in batches(part, 1024, train=False, mean=data.mean, std=data.std)])
    return x, name


def eval_batches(x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive chunks of ``batch_size``; a last chunk under 4 images (too few for unbiased
    HSIC) joins the one before it."""
    chunks = list(x.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 4:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise HarnessError(f"{name}: must be an integer >= {low}, got {value!r}")
    return int(value)


# --- networks ----------------------------------------------------------------------------------

def search_cells(model) -> list[torch.nn.Module]:
    """The 3N search cells of an NB201 network or supernet, in depth order (reductions skipped)."""
    return [model.cells[p] for p in model.search_positions()]


def _train_nb201(ops, data: Dataset, cfg: TrainConfig, seed: int, label: str, progress: bool) -> tuple[NB201Network, dict]:
    model, r, _ = train_network(get_space("nb201"), ops, "original", data, cfg=cfg, seed=seed, label=label,
                                progress=progress)
    model.eval()
    return model, {"val_acc": r.val_acc, "test_acc": r.test_acc, "train_loss": r.train_loss}


def _prepare_networks(specs, data: Dataset, cfg: TrainConfig, seed: int, progress: bool,
                      keep_dir: Optional[Path]) -> list[dict]:
    device = data.train.x.device
    loaded = {k: load_network(spec) for k, spec in enumerate(specs, start=1) if isinstance(spec, Path)}
    for k, (model, _) in loaded.items():  # every checkpoint is checked before anything trains
        if model.num_classes != data.num_classes:
            raise HarnessError(f"network checkpoint {specs[k - 1]}: {model.num_classes} classes, "
                               f"dataset {data.name} has {data.num_classes}")
    nets = []
    for k, spec in enumerate(specs, start=1):
        name = f"net-{k}"
        if k in loaded:
            model, meta = loaded[k]
            info = {"source": str(spec), "train_seed": meta.get("train_seed"), "val_acc": meta.get("val_acc"),
                    "test_acc": meta.get("test_acc"), "train_loss": meta.get("train_loss")}
            model = model.to(device)
        else:
            model, info = _train_nb201(spec, data, cfg, seed + k - 1, f"{name} {space.to_str(spec)}", progress)
            info = {"source": "trained", "train_seed": seed + k - 1, **info}
            if keep_dir is not None:
                save_network(keep_dir / f"{name}.pt", model, {**info, "dataset": data.name, "config": cfg.as_dict()})
        nets.append({"name": name, "kind": "nb201", "arch": model.arch_str, "model": model,
                     "modules": search_cells(model), **info})
    return nets


# --- the experiment ----------------------------------------------------------------------------

def run_cka(backbone_ckpt: "str | Path", archs, data: Dataset, *, out_dir: "str | Path",
            store: "ResultsStore | None" = None, meta: "dict | None" = None, n_eval: int = 500, batch_size: int = 250, train_cfg: TrainConfig = ORIGINAL,
            seed: int = 0, supernet: bool = False, keep_networks: bool = False, progress: bool = True) -> CkaResult:
    """CKA between a backbone's blocks and the search cells of NB201 networks (and a supernet).

    ``archs``: an int N (N random architectures, drawn with ``seed``), a list (see
    :func:`resolve_archs`), or None together with ``supernet=True`` (the supernet alone).
    Network k is trained with seed ``seed + k - 1``; ``keep_networks`` saves each trained one to
    ``out_dir/networks/net-k.pt`` (reusable in ``archs``). The rows (plus ``meta``) go to
    ``store``'s ``cka`` table (default: a store rooted at ``out_dir``), the heatmaps to ``out_dir``.
    """
    if not isinstance(train_cfg, TrainConfig):
        raise HarnessError(f"train_cfg: expected a TrainConfig, got {type(train_cfg).__name__}")
    n_eval = _check_int(n_eval, "n_eval", 4)
    batch_size = _check_int(batch_size, "batch_size", 4)
    specs = [] if archs is None and supernet else resolve_archs(archs, seed)
    backbone, backbone_meta = load_backbone(backbone_ckpt)  # fail on a bad checkpoint before training
    out_dir = Path(out_dir)
    device = data.train.x.device
    backbone = backbone.to(device).eval()
    x_eval, eval_split = eval_images(data, n_eval)

    nets = _prepare_networks(specs, data, train_cfg, seed, progress, out_dir / "networks" if keep_networks else None)
    if supernet:
        model, info = train_supernet(data, train_cfg, seed=seed, progress=progress)
        nets.append({"name": SUPERNET, "kind": "supernet", "model": model, "modules": search_cells(model),
                     "source": "trained", "train_seed": seed, **info})

    matrices = cka_against_reference(backbone, list(backbone.blocks),
                                     [(n["model"], n["modules"]) for n in nets], eval_batches(x_eval, batch_size))
    archs_only = [m for m, n in zip(matrices, nets) if n["kind"] == "nb201"]
    mean = mean_matrix(archs_only or matrices)

    config = {"train": train_cfg.as_dict(), "n_eval": len(x_eval), "eval_split": eval_split,
              "eval_batch_size": batch_size, "supernet_recipe": SUPERNET_RECIPE if supernet else None}
    common = {"backbone": str(backbone_ckpt), "backbone_name": backbone_meta.get("architecture"),
              "backbone_meta": json.dumps(backbone_meta, sort_keys=True), "dataset": data.name,
              "data_source": data.source, "eval_split": eval_split, "n_eval": len(x_eval),
              "epochs": train_cfg.epochs, "config": json.dumps(config, sort_keys=True),
              **run_record(seed=seed, device=str(device))}
    rows = []
    for net, m in zip(nets, matrices):
        per_net = {k: net[k] for k in ("name", "kind", "arch", "source", "train_seed", "val_acc", "test_acc")}
        per_net["network"] = per_net.pop("name")
        for c in range(m.shape[0]):
            for b in range(m.shape[1]):
                rows.append({**per_net, "cell": c + 1, "block": b + 1, "cka": float(m[c, b]), **common})
    front = ["network", "kind", "arch", "cell", "block", "cka"]
    df = pd.DataFrame(rows)
    df = df[front + [c for c in df.columns if c not in front]]
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = (store or ResultsStore(out_dir)).append("cka", df.assign(**(meta or {})))

    names = [n["name"] for n in nets]
    backbone_label = backbone_meta.get("architecture") or "backbone"
    titles = [_panel_title(n) for n in nets]
    mean_title = f"mean of {len(archs_only)} NB201 networks" if archs_only else "mean"
    labels = {"row_label": "NB201 cell", "col_label": f"{backbone_label} block"}
    grid = plot_cka_grid(matrices + [mean], out_dir / GRID_PNG, titles=titles + [mean_title], add_mean=False,
                         suptitle=f"CKA, {backbone_label} blocks vs NB201 cells ({data.name}, {len(x_eval)} "
                                  f"{eval_split} images)", **labels)
    mean_png = plot_cka_heatmap(mean, out_dir / MEAN_PNG, title=f"CKA: {mean_title} vs {backbone_label}", **labels)
    return CkaResult(matrices=list(matrices), mean=mean, names=names, archs=[n["arch"] for n in nets],
                     parquet_path=parquet, png_paths=[grid, mean_png])


def _panel_title(net: dict) -> str:
    acc = net.get("test_acc")
    acc = f", test {acc:.1f}%" if isinstance(acc, (int, float)) and acc == acc else ""
    return f"{net['name']}{acc}"


def load_cka(path: "str | Path") -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Read CKA rows of :func:`run_cka` -> (network names, matrices, mean over the NB201 networks --
    or over all networks when there are only supernets). ``path``: one Parquet file, or a folder
    of parts (the store's ``cka`` table), of which the latest batch is used."""
    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise HarnessError(f"CKA table {path}: no such file (or no part-*.parquet in the folder)")
    try:
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    except Exception as exc:  # pyarrow raises several kinds for a non-Parquet file
        raise HarnessError(f"CKA table {path}: not a readable Parquet file ({type(exc).__name__})") from None
    if "batch_id" in df.columns and df["batch_id"].notna().any():
        df = df[df["batch_id"] == df["batch_id"].dropna().iloc[-1]]
    missing = {"network", "kind", "cell", "block", "cka"} - set(df.columns)
    if missing or df.empty:
        raise HarnessError(f"CKA table {path}: not a harness CKA table (missing columns {sorted(missing)} or no rows)")
    names, matrices, kinds = [], [], []
    for name, part in df.groupby("network", sort=False):
        table = part.pivot(index="cell", columns="block", values="cka").sort_index().sort_index(axis=1)
        names.append(str(name))
        matrices.append(table.to_numpy(dtype=np.float64))
        kinds.append(part["kind"].iloc[0])
    archs_only = [m for m, k in zip(matrices, kinds) if k == "nb201"]
    return names, matrices, mean_matrix(archs_only or matrices)
