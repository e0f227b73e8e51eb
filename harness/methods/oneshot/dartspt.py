"""DARTS+PT on any searchable supernet (Wang et al., ICLR 2021), on the Original supernet or a
Tr-Supernet-i-j (TR-NAS paper Sec. 3.2 and 4.3).

1. *Supernet training*: ``epochs`` epochs of bilevel DARTS (:mod:`.bilevel`), weights on the train
   half, alphas on the valid half; the dominant Hessian eigenvalue (:mod:`.hessian`) every
   ``hessian_every`` epochs on one fixed valid batch.
2. *Selection*: the reference's ``pt_project`` loop -- ``tune_epochs`` tuning epochs (SGD restarted
   at ``w_lr * tune_lr_factor``, alphas still trained); at tuning epoch ``e`` one projection step
   is taken (:mod:`.pt`: NB201 one edge; DARTS one edge of each cell, then, once every edge is
   projected, one node of each cell) when ``e % project_every == 0`` or ``e`` is the last, while
   decisions remain (NB201's reference: 25 epochs, every 5 -> 6 steps; the paper's: 10 epochs
   after each of the 6; DARTS's reference: 81 epochs, every 5 -> 14 op + 3 topology steps).
   Decisions left after the last tuning epoch are taken without tuning.

Every epoch appends one row to ``epochs`` (phase, lr, loss, eigenvalues, seconds).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone
from harness.data.datasets import Dataset
from harness.methods.oneshot.bilevel import SearchConfig, make_optimizers, search_halves, search_step, stream
from harness.methods.oneshot.hessian import alpha_hessian_eigen
from harness.methods.oneshot.pt import project_step, projection_plan, supernet_accuracy, undecided
from harness.progress import bar as progress_bar
from harness.proxies.settings import parse_transfer
from harness.spaces import SearchSpace
from harness.transfer.splice import build_tr_supernet


def parse_supernet(name: str) -> "tuple[int, int] | None":
    """``original`` -> None; ``tr-supernet-i-j`` -> (i, j)."""
    return parse_transfer(name, "tr-supernet", "supernet")


def build_search_supernet(space: SearchSpace, name: str, num_classes: int,
                          backbone: "str | Path | None" = None,
                          input_size: tuple[int, int, int] = (3, 32, 32)) -> nn.Module:
    """The space's supernet (``original``) or its Tr-Supernet-i-j on the backbone checkpoint."""
    ij = parse_supernet(name)
    if ij is None:
        return space.build_supernet(num_classes=num_classes)
    if backbone is None:
        raise HarnessError(f"supernet {name!r} needs a pre-trained backbone checkpoint")
    prefix_net, _ = load_backbone(backbone)
    return build_tr_supernet(space.build_supernet(num_classes=num_classes), prefix_net, ij[0], ij[1], input_size)


def config_from_table(search: dict, supernet: str, warmup: "int | None" = None, cutout: "int | None" = None
                      ) -> SearchConfig:
    """A definition's ``[search]`` table -> the :class:`SearchConfig` of one supernet: ``warmup`` there
    is a table by supernet name (default 0); the ``warmup`` / ``cutout`` arguments are axis values
    (a warmup axis applies to Tr-Supernets only)."""
    s = dict(search)
    per_supernet = s.pop("warmup", {})
    w = warmup if warmup is not None and parse_supernet(supernet) is not None else per_supernet.get(supernet, 0)
    if cutout is not None:
        s["cutout"] = cutout
    return SearchConfig().with_(**s, warmup_epochs=w)


@dataclass
class SearchResult:
    arch: object                       # the supernet's genotype() (NB201: its string)
    train_s: float                     # supernet training (Hessian time excluded)
    select_s: float                    # selection: PT measurements + tuning epochs
    measure_s: float                   # PT measurements alone
    hessian_s: float
    epochs: list[dict] = field(default_factory=list)
    projections: list[dict] = field(default_factory=list)
    valid_acc: "float | None" = None   # the final (projected) supernet on the valid half


def _hessian(model, batch, cfg, seed) -> tuple[dict, float]:
    t0 = time.perf_counter()
    eig = alpha_hessian_eigen(model, *batch, weight_decay=cfg.a_weight_decay, power_iters=cfg.power_iters,
                              seed=seed)
    return eig, time.perf_counter() - t0


def _epoch(model, train_it, valid_it, w_opt, a_opt, cfg, steps, lr_of, bar) -> float:
    loss_sum = 0.0
    for step in range(steps):
        for group in w_opt.param_groups:
            group["lr"] = lr_of(step / steps)
        loss_sum += search_step(model, next(train_it), next(valid_it), w_opt, a_opt, cfg)
        bar.update(1)
    return loss_sum / steps


def dartspt_search(model: nn.Module, data: Dataset, cfg: SearchConfig, *, seed: int = 0,
                   progress: bool = False, label: str = "DARTS+PT") -> SearchResult:
    """Train ``model`` (already on the data's device) with DARTS and select an architecture with PT."""
    w_half, a_half = search_halves(data, cfg.train_portion)
    gen = torch.Generator().manual_seed(seed)
    train_it, valid_it = stream(w_half, data, cfg, gen), stream(a_half, data, cfg, gen)
    hess_batch = next(stream(a_half, data, cfg.with_(batch_size=cfg.hessian_batch, cutout=0),
                             torch.Generator().manual_seed(seed + 1)))
    steps = -(-len(w_half) // cfg.batch_size)
    w_opt, a_opt = make_optimizers(model, cfg)
    bar = progress_bar((cfg.epochs + cfg.tune_epochs) * steps, label, progress)
    res = SearchResult(arch="", train_s=0.0, select_s=0.0, measure_s=0.0, hessian_s=0.0)
    model.train()

    def log(phase: str, epoch: int, lr: float, loss: float, epoch_s: float, every_epoch: int) -> None:
        row = {"phase": phase, "epoch": epoch, "lr": lr, "train_loss": loss, "epoch_s": epoch_s,
               "eig": float("nan"), "eig_power": float("nan")}
        if cfg.hessian_every and (every_epoch + 1) % cfg.hessian_every == 0:
            eig, seconds = _hessian(model, hess_batch, cfg, seed)
            row.update(eig)
            res.hessian_s += seconds
        res.epochs.append(row)

    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        loss = _epoch(model, train_it, valid_it, w_opt, a_opt, cfg, steps,
                      lambda f, e=epoch: cfg.weight_lr(e, f), bar)
        seconds = time.perf_counter() - t0
        res.train_s += seconds
        log("search", epoch, cfg.weight_lr(epoch, 1.0), loss, seconds, epoch)

    plan = projection_plan(model, seed)

    def measure(weights: torch.Tensor) -> float:
        return supernet_accuracy(model, a_half, data, weights, limit=cfg.select_limit)

    def project() -> None:
        for chosen, seconds in project_step(model, plan, measure):
            res.measure_s += seconds
            res.select_s += seconds
            res.projections.append({**chosen, "tune_epoch": len(res.epochs) - cfg.epochs, "seconds": seconds})

    tune_lr = cfg.w_lr * cfg.tune_lr_factor
    w_opt, a_opt = make_optimizers(model, cfg, w_lr=tune_lr)  # the reference resets the weight optimizer
    for epoch in range(cfg.tune_epochs):
        if undecided(model, plan) and (epoch % cfg.project_every == 0 or epoch == cfg.tune_epochs - 1):
            project()
        t0 = time.perf_counter()
        loss = _epoch(model, train_it, valid_it, w_opt, a_opt, cfg, steps, lambda f: tune_lr, bar)
        seconds = time.perf_counter() - t0
        res.select_s += seconds
        log("tune", epoch, tune_lr, loss, seconds, cfg.epochs + epoch)
    while undecided(model, plan):
        project()
    bar.close()
    res.arch = model.genotype()
    res.valid_acc = supernet_accuracy(model, a_half, data, limit=cfg.select_limit)
    return res
