"""What every one-shot method here shares: the supernet training of DARTS (Liu et al., ICLR 2019)
as DARTS+PT runs it (Wang et al., ICLR 2021, ``nasbench201/train_search.py``), and the result a
search returns.

:class:`SupernetTraining` holds one search's state: the two halves of the training split
(:func:`.bilevel.search_halves`: weights on the train half, alphas on the valid half), their
augmented batch streams, one fixed valid batch for the dominant Hessian eigenvalue
(:mod:`.hessian`, every ``hessian_every`` epochs), the progress bar and the :class:`SearchResult`
being filled. :meth:`SupernetTraining.train` runs the ``epochs`` supernet epochs of bilevel DARTS
(:mod:`.bilevel`); a method then selects an architecture on the trained supernet -- running
further epochs with :meth:`SupernetTraining.epoch` if it tunes -- and closes with
:meth:`SupernetTraining.finish`. Every epoch appends one row to ``epochs`` (phase, lr, loss,
eigenvalues, seconds).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from harness.data.datasets import Dataset
from harness.methods.oneshot.bilevel import SearchConfig, make_optimizers, search_halves, search_step, stream
from harness.methods.oneshot.hessian import alpha_hessian_eigen
from harness.methods.oneshot.pt import supernet_accuracy
from harness.progress import bar as progress_bar


@dataclass
class SearchResult:
    arch: object                       # the supernet's genotype() (NB201: its string)
    train_s: float                     # supernet training (Hessian time excluded)
    select_s: float                    # what the method does after training (DARTS+PT: PT measurements + tuning)
    measure_s: float                   # PT measurements alone
    hessian_s: float
    epochs: list[dict] = field(default_factory=list)
    projections: list[dict] = field(default_factory=list)
    valid_acc: "float | None" = None   # the final supernet, as the method leaves it, on the valid half


class SupernetTraining:
    """One search on ``model`` (already on the data's device): see the module docstring.
    ``epochs`` is how many epochs the search runs in all (the progress bar's length)."""

    def __init__(self, model: nn.Module, data: Dataset, cfg: SearchConfig, *, seed: int, progress: bool,
                 label: str, epochs: int):
        self.model, self.data, self.cfg, self.seed = model, data, cfg, seed
        self.w_half, self.a_half = search_halves(data, cfg.train_portion)
        gen = torch.Generator().manual_seed(seed)
        self.train_it, self.valid_it = stream(self.w_half, data, cfg, gen), stream(self.a_half, data, cfg, gen)
        self.hess_batch = next(stream(self.a_half, data, cfg.with_(batch_size=cfg.hessian_batch, cutout=0),
                                      torch.Generator().manual_seed(seed + 1)))
        self.steps = -(-len(self.w_half) // cfg.batch_size)
        self.bar = progress_bar(epochs * self.steps, label, progress)
        self.result = SearchResult(arch="", train_s=0.0, select_s=0.0, measure_s=0.0, hessian_s=0.0)
        model.train()

    def epoch(self, phase: str, epoch: int, w_opt: torch.optim.SGD, a_opt: torch.optim.Optimizer,
              lr_of: Callable[[float], float], lr: float) -> float:
        """One epoch of search steps, the weight lr at ``lr_of(fraction of the epoch)``; logs it as
        ``phase`` / ``epoch`` with ``lr`` (and the Hessian eigenvalue when due). Returns its
        seconds (Hessian time excluded)."""
        cfg, res = self.cfg, self.result
        t0 = time.perf_counter()
        loss_sum = 0.0
        for step in range(self.steps):
            for group in w_opt.param_groups:
                group["lr"] = lr_of(step / self.steps)
            loss_sum += search_step(self.model, next(self.train_it), next(self.valid_it), w_opt, a_opt, cfg)
            self.bar.update(1)
        seconds = time.perf_counter() - t0
        row = {"phase": phase, "epoch": epoch, "lr": lr, "train_loss": loss_sum / self.steps, "epoch_s": seconds,
               "eig": float("nan"), "eig_power": float("nan")}
        if cfg.hessian_every and (len(res.epochs) + 1) % cfg.hessian_every == 0:  # counted over all phases
            t0 = time.perf_counter()
            row.update(alpha_hessian_eigen(self.model, *self.hess_batch, weight_decay=cfg.a_weight_decay,
                                           power_iters=cfg.power_iters, seed=self.seed))
            res.hessian_s += time.perf_counter() - t0
        res.epochs.append(row)
        return seconds

    def train(self) -> None:
        """The ``cfg.epochs`` supernet epochs (weight lr: :meth:`.bilevel.SearchConfig.weight_lr`)."""
        cfg = self.cfg
        w_opt, a_opt = make_optimizers(self.model, cfg)
        for epoch in range(cfg.epochs):
            self.result.train_s += self.epoch("search", epoch, w_opt, a_opt, lambda f, e=epoch: cfg.weight_lr(e, f),
                                              cfg.weight_lr(epoch, 1.0))

    def measure(self, weights: "torch.Tensor | None" = None) -> float:
        """The supernet's accuracy on the valid half (``select_limit`` images), with op ``weights``."""
        return supernet_accuracy(self.model, self.a_half, self.data, weights, limit=self.cfg.select_limit)

    def finish(self, arch: object) -> SearchResult:
        """The result with the selected ``arch`` and the supernet's final valid accuracy."""
        self.bar.close()
        self.result.arch = arch
        self.result.valid_acc = self.measure()
        return self.result
