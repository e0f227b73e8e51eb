"""Every zero-cost proxy of one network with as few passes as the definitions allow.

The reference code (Abdelfattah et al., ICLR 2021) computes each proxy on its own copy of the
network with its own forward and backward pass. grad_norm, snip, fisher, grasp, jacob_cov and nwot
all start from the same computation -- a training-mode forward pass of the same weights on the
same minibatch -- so one forward pass serves them all:

* ``dL/dW`` (grad_norm, snip, grasp's ``g``) and ``dL/da`` of every layer output (fisher) come
  from one ``autograd.grad`` call (with ``create_graph`` when grasp needs ``Hg``);
* grasp's ``Hg`` is the gradient of ``sum(g.detach() * g)``;
* jacob_cov's Jacobian is the gradient of the summed logits w.r.t. the input on the same graph;
* nwot's binary codes are the same forward pass's ReLU inputs.

synflow (BN bypassed, |weights|, float64, all-ones input) and zen (re-drawn Gaussian weights) run
as in :mod:`harness.proxies.zero_cost`; params / flops are counts. Copies are kept to what the
definitions need: the shared pass only moves BN running statistics (restored from a snapshot:
zen reads them), synflow gets the one deep copy (it rewrites weights, dtype and BN), zen runs last
on the network itself (it re-draws every weight it uses). The values equal the
one-proxy-at-a-time ones up to float rounding (tested; the rank benchmark re-checks them on its
timed architectures).
"""
from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.proxies.zero_cost.measures import (
    MEASURES,
    _layers,
    _logits,
    check_batch,
    check_measure,
    jacob_cov_score,
    nwot_kernel,
    score_network,
)

SHARED = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "nwot")


def _shared_pass(work: nn.Module, x: torch.Tensor, y: torch.Tensor, want: set[str]) -> dict[str, float]:
    """The shared training-mode pass on ``work`` itself: its BN running statistics move, nothing else."""
    work.train()
    work.zero_grad(set_to_none=True)
    layers = _layers(work)
    acts: dict[nn.Module, torch.Tensor] = {}
    codes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, _i, out: acts.__setitem__(m, out)) for m in layers]
    if "nwot" in want:
        hooks += [m.register_forward_hook(lambda _m, inp, _o: codes.append(inp[0].detach() > 0))
                  for m in work.modules() if isinstance(m, nn.ReLU)]
    xx = x.detach().clone().requires_grad_("jacob_cov" in want)
    try:
        logits = _logits(work, xx)
    finally:
        for h in hooks:
            h.remove()
    if int(y.max()) >= logits.shape[1]:
        raise HarnessError(f"labels up to {int(y.max())} but the network has {logits.shape[1]} classes")
    out: dict[str, float] = {}
    if "nwot" in want:
        if not codes:
            raise HarnessError(f"network {type(work).__name__}: no nn.ReLU modules, nwot has nothing to count")
        out["nwot"] = float(np.linalg.slogdet(nwot_kernel(codes))[1])
    if "jacob_cov" in want:
        (jac,) = torch.autograd.grad(logits.sum(), xx, retain_graph=True)
        out["jacob_cov"] = jacob_cov_score(jac.reshape(len(xx), -1).cpu().numpy())
    if not want & {"grad_norm", "snip", "grasp", "fisher"}:
        return out
    loss = F.cross_entropy(logits, y)
    weights = [m.weight for m in layers]
    outputs = [acts[m] for m in layers if m in acts]
    grads = torch.autograd.grad(loss, weights + outputs, create_graph="grasp" in want, allow_unused=True)
    gw, ga = grads[:len(weights)], dict(zip([m for m in layers if m in acts], grads[len(weights):]))
    with torch.no_grad():
        out["grad_norm"] = float(sum(g.norm() for g in gw if g is not None))
        out["snip"] = float(sum((w * g).abs().sum() for w, g in zip(weights, gw) if g is not None))
        total = 0.0
        for m, g in ga.items():
            if g is None:
                continue
            a = acts[m]
            g_nk = (a * g).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * g
            total += float(g_nk.pow(2).mean(0).mul(0.5).abs().sum()) * m.weight[0].numel()
        out["fisher"] = total
    if "grasp" in want:
        z = sum((g.detach() * g).sum() for g in gw if g is not None)
        hg = torch.autograd.grad(z, weights, allow_unused=True)
        out["grasp"] = float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))
    return {k: v for k, v in out.items() if k in want}


def score_all(net: nn.Module, x: torch.Tensor, y: torch.Tensor, measures: Iterable[str] = tuple(MEASURES),
              seed: int = 0, inplace: bool = False) -> dict[str, float]:
    """``{measure: value}`` for every measure asked. ``net`` is left untouched (one private copy)
    unless ``inplace``: then it is consumed (a network built only to be scored)."""
    want = {check_measure(m) for m in measures}
    check_batch(net, x, y)
    work = net if inplace else copy.deepcopy(net)
    out: dict[str, float] = {}
    if want & set(SHARED):
        snapshot = {name: b.clone() for name, b in work.named_buffers()}
        out = _shared_pass(work, x, y, want)
        with torch.no_grad():
            for name, b in work.named_buffers():
                b.copy_(snapshot[name])
    # zen last: it overwrites the weights the others read; synflow rewrites weights, dtype and BN
    # of a copy of its own.
    for m in sorted(want - set(SHARED), key=lambda m: m == "zen"):
        out[m] = score_network(m, work, x, y, seed=seed, inplace=m != "synflow")
    return out
