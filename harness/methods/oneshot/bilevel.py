"""Bilevel DARTS search steps (Liu et al., ICLR 2019, Sec. 2.3 and Eq. 7-8) with the DARTS+PT
reference hyper-parameters (Wang et al., ICLR 2021, ``nasbench201/train_search.py``).

One search step: an Adam step on the architecture logits ``alpha`` with the loss on a batch of the
*valid half* of the training split, then an SGD step on the network weights with the loss on a
batch of the *train half*. First order: ``grad_alpha L_val(w, alpha)``. Second order (DARTS Eq. 7-8):
``grad_alpha L_val(w', alpha) - xi * (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / 2eps``
with the virtual step ``w' = w - xi (momentum buffer + grad_w L_train + wd * w)`` at the current
weight learning rate ``xi``, ``w+- = w +- eps grad_w' L_val(w', alpha)`` and ``eps = 0.01 / ||grad_w' L_val||``
(DARTS ``architect.py``). The finite difference is exact when ``L_train`` is quadratic in ``w``.

A *searchable* supernet exposes ``arch_parameters`` (a parameter or a list of them) and
``weight_parameters()`` (everything the weight optimizer trains); NB201's supernet and every
Tr-Supernet built from it do.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.data.augment import batches
from harness.data.datasets import Dataset, Split
from harness.train.loop import TrainingDiverged
from harness.train.recipe import TrainConfig, lr_at

ORDERS = ("first", "second")
Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SearchConfig:
    """DARTS+PT on one supernet. Defaults: the DARTS+PT reference's NB201 run (100 supernet epochs,
    then 25 tuning epochs projecting every 5) with its optimizer settings; the TR-NAS paper's NB201
    schedule is 50 epochs (13 of them linear warmup for the Tr-Supernet), 10 tuning epochs per
    projection, Cutout on (paper Sec. 4.3)."""

    epochs: int = 100
    warmup_epochs: int = 0        # linear weight-lr warmup (the paper's Tr-Supernet: 13)
    tune_epochs: int = 25         # tuning epochs; a projection at every ``project_every``-th and the last
    project_every: int = 5
    batch_size: int = 64
    cutout: int = 0               # Cutout length in pixels (0 = off; the paper's runs: 16)
    order: str = "first"
    train_portion: float = 0.5
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    tune_lr_factor: float = 0.1   # tuning restarts SGD at w_lr / 10, constant (reference ``reset_optimizer``)
    a_lr: float = 3e-4
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_weight_decay: float = 1e-3
    hessian_every: int = 1        # epochs between Hessian eigenvalues (0 = never)
    hessian_batch: int = 64
    power_iters: int = 20         # power-iteration cross-check of the eigenvalue (0 = skip)
    select_limit: int = 0         # images of the valid half PT measures on (0 = all)

    def __post_init__(self):
        checks = [(self.epochs >= 1, "epochs must be >= 1"),
                  (0 <= self.warmup_epochs <= self.epochs, "warmup_epochs must be in 0..epochs"),
                  (self.tune_epochs >= 0, "tune_epochs must be >= 0"),
                  (self.project_every >= 1, "project_every must be >= 1"),
                  (self.batch_size >= 1, "batch_size must be >= 1"), (self.cutout >= 0, "cutout must be >= 0"),
                  (self.order in ORDERS, f"order must be one of {', '.join(ORDERS)}"),
                  (0 < self.train_portion < 1, "train_portion must be in (0, 1)"),
                  (self.hessian_every >= 0 and self.power_iters >= 0 and self.select_limit >= 0,
                   "hessian_every, power_iters and select_limit must be >= 0"),
                  (self.hessian_batch >= 1, "hessian_batch must be >= 1")]
        for ok, msg in checks:
            if not ok:
                raise HarnessError(f"search config: {msg} (got {self})")

    def with_(self, **changes) -> "SearchConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)

    def weight_lr(self, epoch: int, fraction: float) -> float:
        """Weight lr of supernet epoch ``epoch``: linear warmup, then cosine to ``w_lr_min`` per epoch
        (the convention of :func:`harness.train.recipe.lr_at`; DARTS's when there is no warmup)."""
        return lr_at(TrainConfig(epochs=self.epochs, warmup_epochs=self.warmup_epochs, lr=self.w_lr,
                                 eta_min=self.w_lr_min), epoch, fraction)


def supernet_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def arch_params(model: nn.Module) -> list[nn.Parameter]:
    p = model.arch_parameters
    return list(p) if isinstance(p, (list, tuple)) else [p]


def search_halves(data: Dataset, portion: float = 0.5) -> tuple[Split, Split]:
    """(weights' split, alphas' split): the training split cut at ``portion`` (DARTS ``train_portion``).

    A dataset whose valid split is the other half of the training set (NB201's ``cifar10-valid``:
    the two 25k halves of CIFAR-10's training set) gives exactly those halves at portion 0.5.
    """
    if data.name == "cifar10-valid" and data.valid is not None:
        if portion == 0.5:
            return data.train, data.valid
        x, y = torch.cat([data.train.x, data.valid.x]), torch.cat([data.train.y, data.valid.y])
    else:
        x, y = data.train.x, data.train.y
    cut = int(portion * len(y))
    if cut < 1 or cut >= len(y):
        raise HarnessError(f"dataset {data.name}: train_portion {portion} of {len(y)} images leaves an empty half")
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


def stream(split: Split, data: Dataset, cfg: SearchConfig, generator: torch.Generator
           ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented batches of ``split`` forever, re-shuffled at every pass."""
    while True:
        yield from batches(split, cfg.batch_size, train=True, mean=data.mean, std=data.std, pad=data.pad,
                           cutout=cfg.cutout, generator=generator)


def make_optimizers(model: nn.Module, cfg: SearchConfig, w_lr: "float | None" = None
                    ) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.w_lr if w_lr is None else w_lr,
                            momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    a_opt = torch.optim.Adam(arch_params(model), lr=cfg.a_lr, betas=cfg.a_betas, weight_decay=cfg.a_weight_decay)
    return w_opt, a_opt


def alpha_grad_first(model: nn.Module, valid: tuple[torch.Tensor, torch.Tensor], loss: Loss = supernet_loss
                     ) -> list[torch.Tensor]:
    """First-order DARTS: ``grad_alpha L_val(w, alpha)``."""
    return list(torch.autograd.grad(loss(model, *valid), arch_params(model)))


def alpha_grad_second(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                      valid: tuple[torch.Tensor, torch.Tensor], w_opt: torch.optim.SGD,
                      loss: Loss = supernet_loss) -> list[torch.Tensor]:
    """Second-order DARTS (Eq. 7-8, see the module docstring) at ``w_opt``'s current lr; the weights
    are restored afterwards (only ``w_opt``'s state is read)."""
    ws, alphas = model.weight_parameters(), arch_params(model)
    group = w_opt.param_groups[0]
    xi, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
    backup = [w.detach().clone() for w in ws]
    g_train = torch.autograd.grad(loss(model, *train), ws, allow_unused=True)
    with torch.no_grad():
        for w, g in zip(ws, g_train):
            buf = w_opt.state.get(w, {}).get("momentum_buffer")
            step = (g if g is not None else torch.zeros_like(w)) + wd * w
            if buf is not None:
                step = step + momentum * buf
            w.sub_(xi * step)
    grads = torch.autograd.grad(loss(model, *valid), alphas + ws, allow_unused=True)
    d_alpha = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads, alphas)]
    d_w = [g if g is not None else torch.zeros_like(w) for g, w in zip(grads[len(alphas):], ws)]
    eps = 0.01 / torch.cat([g.flatten() for g in d_w]).norm().clamp_min(1e-12)
    hvp = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for w, b, g in zip(ws, backup, d_w):
                w.copy_(b + sign * eps * g)
        hvp.append(torch.autograd.grad(loss(model, *train), alphas, allow_unused=True))
    with torch.no_grad():
        for w, b in zip(ws, backup):
            w.copy_(b)
    out = []
    for a, da, gp, gn in zip(alphas, d_alpha, *hvp):
        gp = gp if gp is not None else torch.zeros_like(a)
        gn = gn if gn is not None else torch.zeros_like(a)
        out.append(da - xi * (gp - gn) / (2 * eps))
    return out


def search_step(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], valid: tuple[torch.Tensor, torch.Tensor],
                w_opt: torch.optim.SGD, a_opt: torch.optim.Optimizer, cfg: SearchConfig,
                loss: Loss = supernet_loss) -> float:
    """One DARTS step (alpha, then weights); returns the weights' training loss."""
    alphas = arch_params(model)
    grads = (alpha_grad_first(model, valid, loss) if cfg.order == "first"
             else alpha_grad_second(model, train, valid, w_opt, loss))
    a_opt.zero_grad(set_to_none=True)
    for a, g in zip(alphas, grads):
        a.grad = g.detach()
    a_opt.step()
    w_opt.zero_grad(set_to_none=True)
    value = loss(model, *train)
    if not torch.isfinite(value):
        raise TrainingDiverged(f"supernet search: training loss is {value.item()}")
    value.backward()
    for a in alphas:  # alpha is trained on the valid half only
        a.grad = None
    nn.utils.clip_grad_norm_(model.weight_parameters(), cfg.grad_clip)
    w_opt.step()
    return float(value.detach())
