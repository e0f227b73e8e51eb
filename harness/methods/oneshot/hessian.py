"""The dominant eigenvalue of the Hessian of the validation loss w.r.t. the architecture logits
(Zela et al., ICLR 2020, "Understanding and Robustifying DARTS"; TR-NAS paper Fig. 9).

As RobustDARTS computes it: the full Hessian ``d^2 L_valid / d alpha^2`` on one valid batch by
autograd double backward -- exact, and small (NB201: 30 logits) -- plus the architecture
optimizer's weight-decay term (``wd * I``: Adam's L2 penalty ``wd/2 ||alpha||^2``), and its largest
eigenvalue. Cross-checked by power iteration on Hessian-vector products, which never forms the
matrix (the largest-magnitude eigenvalue; equal to the largest one when that dominates, as in DARTS).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from harness.methods.oneshot.bilevel import Loss, arch_params, supernet_loss


def exact_hessian(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The (n, n) Hessian of scalar ``loss`` w.r.t. ``params`` flattened (n elements), float64;
    one double-backward pass per row."""
    grads = torch.autograd.grad(loss, list(params), create_graph=True, allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
    rows = []
    for k in range(flat.numel()):
        if not flat.requires_grad:  # the loss does not depend on params beyond first order
            rows.append(torch.zeros_like(flat))
            continue
        row = torch.autograd.grad(flat[k], list(params), retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1)
                               for r, p in zip(row, params)]))
    return torch.stack(rows).double()


def dominant_eigenvalue(h: torch.Tensor) -> float:
    """Largest eigenvalue of the symmetrised matrix."""
    return float(torch.linalg.eigvalsh((h + h.T) / 2)[-1])


def power_iteration(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, iters: int = 20,
                    generator: "torch.Generator | None" = None) -> float:
    """Largest-magnitude eigenvalue by power iteration on ``hvp(v) = H v`` (Rayleigh quotient)."""
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    v = v / v.norm()
    value = 0.0
    for _ in range(iters):
        hv = hvp(v)
        value = float(v @ hv)
        norm = hv.norm()
        if float(norm) == 0.0:
            return 0.0
        v = hv / norm
    return value


def alpha_hessian_eigen(model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight_decay: float = 0.0,
                        power_iters: int = 20, loss: Loss = supernet_loss, seed: int = 0) -> dict[str, float]:
    """Dominant eigenvalue of ``d^2 L(x, y) / d alpha^2 + weight_decay * I`` on this batch, exact, and
    (``power_iters`` > 0) by power iteration on Hessian-vector products. The model is run as it is
    (train mode during search: search-cell BN on batch statistics)."""
    alphas = arch_params(model)
    n = sum(a.numel() for a in alphas)
    h = exact_hessian(loss(model, x, y), alphas) + weight_decay * torch.eye(n, dtype=torch.float64)
    out = {"eig": dominant_eigenvalue(h), "eig_power": float("nan")}
    if power_iters > 0:
        grads = torch.autograd.grad(loss(model, x, y), alphas, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])

        def hvp(v: torch.Tensor) -> torch.Tensor:
            hv = torch.autograd.grad(flat @ v.to(flat.dtype).to(flat.device), alphas, retain_graph=True)
            return torch.cat([g.reshape(-1) for g in hv]).double().cpu() + weight_decay * v

        out["eig_power"] = power_iteration(hvp, n, power_iters, torch.Generator().manual_seed(seed))
    return out
