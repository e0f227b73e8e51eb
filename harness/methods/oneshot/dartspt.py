"""DARTS+PT on any searchable supernet (Wang et al., ICLR 2021), on the Original supernet or a
Tr-Supernet-i-j (TR-NAS paper Sec. 3.2 and 4.3).

1. *Supernet training*: ``epochs`` epochs of bilevel DARTS (:mod:`.training`, shared with every
   one-shot method here), weights on the train half, alphas on the valid half; the dominant
   Hessian eigenvalue (:mod:`.hessian`) every ``hessian_every`` epochs on one fixed valid batch.
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

from pathlib import Path

from torch import nn

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone
from harness.data.datasets import Dataset
from harness.methods.oneshot.bilevel import SearchConfig, make_optimizers
from harness.methods.oneshot.pt import project_step, projection_plan, undecided
from harness.methods.oneshot.training import SearchResult, SupernetTraining
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


def dartspt_search(model: nn.Module, data: Dataset, cfg: SearchConfig, *, seed: int = 0,
                   progress: bool = False, label: str = "DARTS+PT") -> SearchResult:
    """Train ``model`` (already on the data's device) with DARTS and select an architecture with PT."""
    run = SupernetTraining(model, data, cfg, seed=seed, progress=progress, label=label,
                           epochs=cfg.epochs + cfg.tune_epochs)
    res = run.result
    run.train()
    plan = projection_plan(model, seed)

    def project() -> None:
        for chosen, seconds in project_step(model, plan, run.measure):
            res.measure_s += seconds
            res.select_s += seconds
            res.projections.append({**chosen, "tune_epoch": len(res.epochs) - cfg.epochs, "seconds": seconds})

    tune_lr = cfg.w_lr * cfg.tune_lr_factor
    w_opt, a_opt = make_optimizers(model, cfg, w_lr=tune_lr)  # the reference resets the weight optimizer
    for epoch in range(cfg.tune_epochs):
        if undecided(model, plan) and (epoch % cfg.project_every == 0 or epoch == cfg.tune_epochs - 1):
            project()
        res.select_s += run.epoch("tune", epoch, w_opt, a_opt, lambda f: tune_lr, tune_lr)
    while undecided(model, plan):
        project()
    return run.finish(model.genotype())
