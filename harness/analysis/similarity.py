"""The CKA experiment of the paper's Figs. 1 and 2, end to end.

Paper Sec. 3.1, Case 1: train a ResNet-32, train many NB201 architectures, and compare each
architecture's search cells with the ResNet's blocks by linear CKA on the same images; Fig. 1
shows three networks and the mean. Case 2 / Fig. 2 does the same for a DARTS supernet.
:func:`run_cka` does both on any backbone checkpoint and dataset:

* **Backbone**: a harness checkpoint (:func:`harness.backbones.checkpoint.load_backbone`); its
  features are the outputs of its residual blocks (columns, ``block`` 1..K).
* **NB201 networks**: trained here with the harness loop and the NB201 "Original" recipe (epochs
  from ``train_cfg``), or loaded from a network checkpoint written by :func:`harness.train.checkpoint.save_network`. Their
  features are the outputs of the 3N search cells (rows, ``cell`` 1..3N; reduction blocks are not
  search cells, as in Fig. 1's 15 rows).
* **Supernet** (``supernet=True``): the NB201 DARTS supernet -- or, with ``space`` (e.g.
  ``darts``, Fig. 2's case), that space's ``build_supernet()`` alone -- trained with *first-order DARTS*
  (alternating one Adam step on alpha, on a batch of the validation split, and one SGD step on the
  weights, on a batch of the training split; DARTS's NB201 hyperparameters in
  ``SUPERNET_RECIPE``). Its cells are compared through the same space-agnostic path
  (:func:`harness.analysis.features.cka_against_reference` takes any modules).
* **Evaluation set**: the first ``n_eval`` images of the validation split (the test split when the
  dataset has none; all of it when it is smaller, the count used is recorded), normalised, no
  augmentation, fixed for every network. CKA by ``estimator``: ``eq1`` (default) is the paper's
  Eq. (1) over all ``n_eval`` images at once (Fig. 1's estimator); ``unbiased_minibatch`` the
  unbiased-HSIC estimator of Nguyen et al. (2021) summed over batches of ``batch_size`` (which
  otherwise only bounds the forward pass). Neither the backbone (pre-trained on the train
  split) nor the NB201 networks trained on these images; the supernet's alpha did (DARTS uses the
  validation split for alpha), which CKA, comparing representations and not labels, tolerates.

Outputs in ``out_dir`` (each written atomically): the ``cka`` table in long form, one row per
(network, cell, block) with provenance, the ``estimator`` and each layer's output shape
(``cell_shape``, ``block_shape``: which pairs splice). The report draws ``cka_grid.png``,
``cka_mean.png`` and ``cka_summary.md`` from those rows (:mod:`harness.report.cka`, after a
``harness cka`` / ``harness bench`` run and on every ``harness leaderboard``). The mean is over
the NB201 architectures only (the supernet is its own panel), NaN-aware: a cell without variance (an architecture whose cell output is always
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
from harness.analysis.cka_table import cka_table, read_cka
from harness.analysis.features import cka_against_reference, output_shapes
from harness.backbones.checkpoint import load_backbone
from harness.data.augment import batches
from harness.data.datasets import Dataset, Split
from harness.methods.oneshot.darts import SUPERNET_RECIPE, train_supernet
from harness.proxies.training import train_network
from harness.runinfo import run_record
from harness.spaces import get_space
from harness.spaces.nb201 import encoding as space
from harness.spaces.nb201.network import NB201Network
from harness.store.results import ResultsStore
from harness.train.checkpoint import load_network, save_network
from harness.train.recipe import ORIGINAL, TrainConfig
from harness.transfer.depth import DEFAULT_ESTIMATOR, check_estimator

SUPERNET = "supernet"
__all__ = ["CkaResult", "load_cka", "run_cka"]

ArchSpec = Union[str, int, Path, Sequence[str]]


@dataclass(frozen=True)
class CkaResult:
    """One CKA run: a (cells x blocks) matrix per network, in ``names`` order, and their mean."""

    matrices: list[np.ndarray]
    mean: np.ndarray
    names: list[str]          # "net-1", "net-2", ..., and "supernet"
    archs: list[str]          # NB201 string per network (the supernet's: its genotype)
    parquet_path: Path
    estimator: str


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

def _space_supernet(space: str, data: Dataset, seed: int, network: "dict | None") -> torch.nn.Module:
    """``space``'s search supernet (seeded like the NB201 one), with ``network`` options (e.g. DARTS C, layers)."""
    torch.manual_seed(seed)
    try:
        return get_space(space).build_supernet(data.num_classes, **(network or {}))
    except TypeError as exc:
        raise HarnessError(f"CKA on space {space!r}: its supernet does not take the options {network}: {exc}") from None


def run_cka(backbone_ckpt: "str | Path", archs, data: Dataset, *, out_dir: "str | Path",
            store: "ResultsStore | None" = None, meta: "dict | None" = None, n_eval: int = 500, batch_size: int = 250, train_cfg: TrainConfig = ORIGINAL,
            seed: int = 0, supernet: bool = False, keep_networks: bool = False, progress: bool = True,
            estimator: str = DEFAULT_ESTIMATOR, space: str = "nb201", network: "dict | None" = None) -> CkaResult:
    """CKA between a backbone's blocks and the search cells of NB201 networks (and a supernet).

    ``archs``: an int N (N random architectures, drawn with ``seed``), a list (see
    :func:`resolve_archs`), or None / 0 together with ``supernet=True`` (the supernet alone).
    ``space`` other than nb201 (e.g. ``darts``, paper Fig. 2): only that space's supernet
    (``build_supernet(**network)``), trained by the same first-order DARTS.
    Network k is trained with seed ``seed + k - 1``; ``keep_networks`` saves each trained one to
    ``out_dir/networks/net-k.pt`` (reusable in ``archs``). The rows (plus ``meta``) go to
    ``store``'s ``cka`` table (default: a store rooted at ``out_dir``); the report draws them
    (:func:`harness.report.cka.write_cka_figures`).
    """
    if not isinstance(train_cfg, TrainConfig):
        raise HarnessError(f"train_cfg: expected a TrainConfig, got {type(train_cfg).__name__}")
    check_estimator(estimator)
    n_eval = _check_int(n_eval, "n_eval", 4)
    batch_size = _check_int(batch_size, "batch_size", 4)
    supernet_only = supernet and (archs is None or (isinstance(archs, int) and archs == 0))
    if space != "nb201" and not supernet_only:
        raise HarnessError(f"CKA on space {space!r}: only its supernet is compared (supernet=True, no archs); "
                           "trained candidate networks are NB201's")
    specs = [] if supernet_only else resolve_archs(archs, seed)
    backbone, backbone_meta = load_backbone(backbone_ckpt)  # fail on a bad checkpoint before training
    out_dir = Path(out_dir)
    device = data.train.x.device
    backbone = backbone.to(device).eval()
    x_eval, eval_split = eval_images(data, n_eval)

    nets = _prepare_networks(specs, data, train_cfg, seed, progress, out_dir / "networks" if keep_networks else None)
    if supernet:
        model, info = train_supernet(data, train_cfg, seed=seed, progress=progress,
                                     model=None if space == "nb201" else _space_supernet(space, data, seed, network))
        arch = info["arch"] if isinstance(info["arch"], str) else get_space(space).format(info["arch"])
        nets.append({"name": SUPERNET, "kind": "supernet", "model": model, "modules": search_cells(model),
                     "source": "trained", "train_seed": seed, **info, "arch": arch})

    matrices = cka_against_reference(backbone, list(backbone.blocks), [(n["model"], n["modules"]) for n in nets],
                                     eval_batches(x_eval, batch_size), estimator)
    block_shapes = output_shapes(backbone, list(backbone.blocks), x_eval)

    config = {"train": train_cfg.as_dict(), "n_eval": len(x_eval), "eval_split": eval_split,
              "eval_batch_size": batch_size, "estimator": estimator,
              "supernet_recipe": SUPERNET_RECIPE if supernet else None}
    common = {"backbone": str(backbone_ckpt), "backbone_name": backbone_meta.get("architecture"),
              "backbone_meta": json.dumps(backbone_meta, sort_keys=True), "dataset": data.name,
              "data_source": data.source, "eval_split": eval_split, "n_eval": len(x_eval),
              "epochs": train_cfg.epochs, "config": json.dumps(config, sort_keys=True), "estimator": estimator,
              "space": space,
              **run_record(seed=seed, device=str(device))}
    rows = []
    for net, m in zip(nets, matrices):
        per_net = {k: net[k] for k in ("name", "kind", "arch", "source", "train_seed", "val_acc", "test_acc")}
        per_net["network"] = per_net.pop("name")
        cell_shapes = output_shapes(net["model"], net["modules"], x_eval)
        for c in range(m.shape[0]):
            for b in range(m.shape[1]):
                rows.append({**per_net, "cell": c + 1, "block": b + 1, "cka": float(m[c, b]),
                             "cell_shape": json.dumps(cell_shapes[c]), "block_shape": json.dumps(block_shapes[b]),
                             **common})
    front = ["network", "kind", "arch", "cell", "block", "cka"]
    df = pd.DataFrame(rows)
    # The run's provenance, but "kind" stays the network's (nb201 / supernet), not the benchmark kind.
    df = df[front + [c for c in df.columns if c not in front]].assign(
        **{k: v for k, v in (meta or {}).items() if k != "kind"})
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = (store or ResultsStore(out_dir)).append("cka", df)
    table = cka_table(df, str(parquet))
    return CkaResult(matrices=list(matrices), mean=table.mean, names=table.names, archs=[n["arch"] for n in nets],
                     parquet_path=parquet, estimator=estimator)


def load_cka(path: "str | Path") -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Read CKA rows of :func:`run_cka` -> (network names, matrices, mean over the NB201 networks --
    or over all networks when there are only supernets). ``path``: one Parquet file, or a folder
    of parts (the store's ``cka`` table), of which the latest batch is used
    (:func:`harness.analysis.cka_table.read_cka`, which also gives the estimator and the rows)."""
    table = read_cka(path)
    return table.names, table.matrices, table.mean
