"""Zero-cost proxies: training-free scores of an untrained network from one minibatch.

Definitions follow the reference code of Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS" (ICLR 2021; ``foresight/pruners/measures/*.py`` of SamsungLabs/zero-cost-nas), as NASLib
also uses it, plus ``nwot`` (NASWOT, Mellor et al., ICML 2021, NASLib's ``nwot.py``) and ``zen``
(Zen-score, Lin et al., ICCV 2021, NASLib's ``zen.py``). Per-layer sums run over every
``Conv2d`` and ``Linear`` weight, as the reference's ``get_layer_metric_array``; a layer without
a gradient (its output never reaches the logits) adds 0, as the reference's ``zeros_like``.

Protocol (reference ``nasbench2_pred.py`` defaults; each choice written down):

* initialisation: PyTorch's default (``--init_w_type none``), drawn from ``torch.manual_seed(seed)``
  right before the network is built, so an architecture's score does not depend on which
  architectures were scored before it;
* data: ONE minibatch of 64 training images (``--batch_size 64 --dataload random
  --dataload_info 1``) with NB201's training transform (flip, 4-pixel crop, normalisation), drawn
  once from the seeded training split and then the same for every architecture (the reference
  draws a fresh shuffled batch per architecture; one fixed batch removes that noise);
* BN mode: the network as built, in training mode (batch statistics), for every proxy but
  synflow, which bypasses BN (reference ``bn=False``: BN's forward becomes the identity);
* loss: cross-entropy on the real labels (grad_norm, snip, grasp, fisher);
* every proxy works on a private ``copy.deepcopy`` of the network (the reference's
  ``get_prunable_copy``), so the caller's weights and BN statistics never change.

Measures (value -> larger should mean better):

* ``grad_norm``: sum over layers of ``||dL/dW||_2``;
* ``snip``: ``sum |W * dL/dW|`` (the gradient of a weight mask at 1 is exactly ``W * dL/dW``);
* ``grasp``: ``sum -W * (H g)``, ``g = dL/dW`` detached, ``Hg`` by double back-propagation (the
  reference's second forward pass is the same computation as the first: same weights, same
  batch, batch-statistics BN, so the first one's graph is reused);
* ``fisher``: per channel ``0.5 * mean_n (sum_hw a * dL/da)^2`` of each layer's output ``a``,
  broadcast to the channel's weights (reference ``reshape_elements``) and summed;
* ``synflow``: BN bypassed, every parameter and buffer made non-negative (abs), float64, one
  all-ones input; ``sum |W * dR/dW|`` with ``R = sum(logits)``;
* ``jacob_cov``: ``J`` = gradient of the summed logits w.r.t. each input image; eigenvalues ``v``
  of ``corrcoef(J)`` (``numpy.linalg.eigvalsh``: the matrix is symmetric); score
  ``-sum(log(v + 1e-5) + 1 / (v + 1e-5))``; NaN when a row of ``J`` is constant (the reference
  catches the error and returns NaN);
* ``nwot``: binary codes ``input > 0`` of every ``nn.ReLU``; ``K = sum c c^T + (1-c)(1-c)^T``
  (units minus Hamming distance); score ``log|det K|`` (NASLib: every ReLU, the same batch);
* ``zen``: weights re-drawn N(0, 1) (BN weight 1, biases 0), two Gaussian inputs ``x`` and
  ``x + 0.01 x'`` of the batch's shape, ``log mean_n sum |f(x) - f(x + 0.01 x')|`` of the feature
  map entering global average pooling, plus ``sum_BN log sqrt(mean running_var)``, no grad (its
  forward passes run in channels_last memory format: faster on CPU, same values up to float noise);
* ``params`` / ``flops``: :func:`harness.measure.counting.count_params` / ``count_flops``.

Network: the space's own network (NB201: the benchmark's ``TinyNetwork``, cell convolutions
without bias, BN affine). The reference scored its ``nasbench2`` model instead, whose search
cells have BN without affine parameters and hence (``bias = not affine``) a default-init bias on
every cell convolution. Training-mode BN removes any per-channel constant, so that bias changes
neither the function nor any proxy here except fisher (and synflow, which bypasses BN): fisher
multiplies the activation ``a = Wx + b`` by ``dL/da``, and where a cell edge convolves a node whose
incoming edges are all ``none`` (an all-zero tensor) ``a = b`` meets the BN gradient of a
zero-variance channel, scaled by ``1 / sqrt(eps)``. On 200 random NB201 architectures (seed 0,
CIFAR-10, this batch) 33 have such a convolution; the reference's biases multiply their fisher by
166 (median) and move fisher's SROCC against the 200-epoch test accuracy from 0.545 to 0.444, most
of the gap to the published 0.360 (the rest: a different ground truth, sampling). A fresh batch
per architecture or hooking after BN moved it by less than 0.02 (first 40 of them). Here a
convolution of zeros adds 0 to fisher, as the definition says.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.data.augment import batches
from harness.data.datasets import SPECS, Dataset
from harness.measure.counting import count_flops, count_params
from harness.proxies.base import GroundTruth, Score
from harness.proxies.zero_cost.trnet import TrNetSuffix, split_name
from harness.runinfo import default_device, device_name
from harness.spaces import SearchSpace

BATCH_SIZE = 64          # reference --batch_size
JACOB_K = 1e-5           # reference eval_score's k
ZEN_MIXUP = 1e-2         # NASLib / Zen-NAS mixup_gamma
PREFIX = "zc:"


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = net(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise HarnessError(f"network {type(net).__name__}: output {shape} is not (batch, classes) logits; "
                           "zero-cost proxies need a classifier network")
    return out


def _ce(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = _logits(net, x)
    if int(y.max()) >= out.shape[1]:
        raise HarnessError(f"labels up to {int(y.max())} but the network has {out.shape[1]} classes")
    return F.cross_entropy(out, y)


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    _ce(net, x, y).backward()
    return float(sum(m.weight.grad.detach().norm() for m in _layers(net) if m.weight.grad is not None))


def snip(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    _ce(net, x, y).backward()
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _layers(net) if m.weight.grad is not None))


def grasp(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    weights = [m.weight for m in _layers(net)]
    grads = torch.autograd.grad(_ce(net, x, y), weights, create_graph=True, allow_unused=True)
    z = sum((g.detach() * g).sum() for g in grads if g is not None)
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))


def fisher(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    acts: dict[nn.Module, torch.Tensor] = {}
    grads: dict[nn.Module, torch.Tensor] = {}

    def keep(module, _inputs, out):
        acts[module] = out.detach()
        out.register_hook(lambda g: grads.__setitem__(module, g.detach()))

    handles = [m.register_forward_hook(keep) for m in _layers(net)]
    try:
        _ce(net, x, y).backward()
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    for m, g in grads.items():
        a = acts[m]
        g_nk = (a * g).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * g
        per_channel = g_nk.pow(2).mean(0).mul(0.5).abs()
        total += float(per_channel.sum()) * (m.weight[0].numel())
    return total


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def synflow(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = _identity  # reference bn=False: BN bypassed
    with torch.no_grad():
        for t in net.state_dict().values():
            t.abs_()
    net.double()
    out = _logits(net, torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device))
    out.sum().backward()
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _layers(net) if m.weight.grad is not None))


def jacob_cov_score(jacobian: np.ndarray, k: float = JACOB_K) -> float:
    """``-sum(log(v + k) + 1 / (v + k))`` over the eigenvalues of the rows' correlation matrix."""
    jac = np.asarray(jacobian, dtype=np.float64).reshape(len(jacobian), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(jac)
    if not np.isfinite(corr).all():
        return float("nan")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def jacob_cov(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    x = x.detach().clone().requires_grad_(True)
    out = _logits(net, x)
    out.backward(torch.ones_like(out))
    return jacob_cov_score(x.grad.reshape(len(x), -1).cpu().numpy())


def nwot_kernel(codes: "list[torch.Tensor]") -> np.ndarray:
    """``sum c c^T + (1 - c)(1 - c)^T`` over binary code matrices ``c`` (batch x units)."""
    k = None
    for c in codes:
        c = c.reshape(len(c), -1).float()
        term = (c @ c.t() + (1.0 - c) @ (1.0 - c).t()).double()
        k = term if k is None else k + term
    return k.cpu().numpy()


def nwot(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    codes: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, inp, _o: codes.append(inp[0].detach() > 0))
               for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            _logits(net, x)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        raise HarnessError(f"network {type(net).__name__}: no nn.ReLU modules, nwot has nothing to count")
    return float(np.linalg.slogdet(nwot_kernel(codes))[1])


def zen(net: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> float:
    pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise HarnessError(f"network {type(net).__name__}: no global average pooling layer, zen needs the "
                           "feature map before it")
    feats: list[torch.Tensor] = []
    handle = pools[-1].register_forward_hook(lambda _m, inp, _o: feats.append(inp[0]))
    gen = torch.Generator(device=x.device).manual_seed(seed)
    try:
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.weight.normal_(generator=gen)
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
            a = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            b = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            mixed = a + ZEN_MIXUP * b
            # channels_last only after every weight and input is drawn (normal_ fills storage order):
            # the same function, about 2x faster forward passes on CPU (oneDNN), float noise only.
            net.to(memory_format=torch.channels_last)
            _logits(net, a.contiguous(memory_format=torch.channels_last))
            _logits(net, mixed.contiguous(memory_format=torch.channels_last))
    finally:
        handle.remove()
    score = torch.log(torch.sum(torch.abs(feats[0] - feats[1]), dim=[1, 2, 3]).mean())
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
            score = score + torch.log(torch.sqrt(torch.mean(m.running_var)))
    return float(score)


def params(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(count_params(net))


def flops(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(count_flops(net, input_size=tuple(x.shape[1:])))


MEASURES: dict[str, Callable[..., float]] = {
    "grad_norm": grad_norm, "snip": snip, "grasp": grasp, "fisher": fisher, "synflow": synflow,
    "jacob_cov": jacob_cov, "nwot": nwot, "zen": zen, "params": params, "flops": flops}
ZERO_COST = tuple(MEASURES)


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise HarnessError(f"zero-cost proxy {measure!r}: unknown (known: {', '.join(ZERO_COST)})")
    return measure


def check_batch(net: nn.Module, x: Any, y: Any) -> None:
    """One line naming the problem when ``(x, y)`` cannot be a minibatch for ``net``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise HarnessError(f"zero-cost batch: images {shape} must be a float tensor (batch, channels, height, width)")
    if len(x) < 2:
        raise HarnessError(f"zero-cost batch: {len(x)} image(s); needs >= 2 (jacob_cov and nwot compare images)")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise HarnessError(f"zero-cost batch: labels {shape} must be {len(x)} integer class indices")
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != x.shape[1]:
        raise HarnessError(f"zero-cost batch: images have {x.shape[1]} channels, the network's first "
                           f"convolution takes {first.in_channels}")
    if not any(isinstance(m, nn.Linear) for m in net.modules()):
        raise HarnessError(f"network {type(net).__name__}: no Linear classifier; zero-cost proxies need a "
                           "classifier network")


def score_network(measure: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0,
                  inplace: bool = False) -> float:
    """One zero-cost proxy of ``net`` on the minibatch ``(x, y)``; ``net`` is left untouched
    (the proxy works on a deep copy, in training mode) unless ``inplace``."""
    fn = MEASURES[check_measure(measure)]
    check_batch(net, x, y)
    work = net if inplace else copy.deepcopy(net)
    work.train()
    work.zero_grad(set_to_none=True)
    return fn(work, x, y, seed) if fn is zen else fn(work, x, y)


def probe_batch(data: Dataset, batch_size: int = BATCH_SIZE, seed: int = 0,
                device: "str | torch.device | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The one minibatch every architecture is scored on: ``batch_size`` training images drawn with
    ``torch.Generator().manual_seed(seed)``, NB201's training transform (flip, crop, normalise)."""
    if not 2 <= batch_size <= len(data.train):
        raise HarnessError(f"zero-cost batch size {batch_size}: must be in 2..{len(data.train)} "
                           f"(training images of {data.name})")
    gen = torch.Generator().manual_seed(seed)
    x, y = next(batches(data.train, batch_size, train=True, mean=data.mean, std=data.std, pad=data.pad,
                        generator=gen))
    dev = torch.device(device) if device is not None else x.device
    return x.to(dev), y.to(dev)


def image_family(dataset: str) -> str:
    """Which raw images a dataset is made of (``cifar10-valid`` and ``cifar10`` share CIFAR-10's)."""
    return SPECS[dataset].family


class ZeroCostProxy:
    """``zc:<measure>``: a fresh network of ``space`` per architecture (seeded init), scored on one
    fixed minibatch of ``data``'s training images (see the module docstring).
    ``zc:<measure>@tr-net-<i>-<j>`` (with ``backbone_path``) scores the Tr-Net's trainable suffix
    instead (:mod:`harness.proxies.zero_cost.trnet`).

    ``data`` must hold the images of ``table_dataset`` (CIFAR-10 images never stand in for
    CIFAR-100 or ImageNet16-120). The wall time covers building the network and the proxy."""

    def __init__(self, space: SearchSpace, measure: str, data: Dataset, *, table_dataset: str,
                 batch_size: int = BATCH_SIZE, seed: int = 0, device: "str | None" = None,
                 table_path: "str | None" = None, backbone_path: "str | Path | None" = None,
                 prefix_bn: str = "running"):
        self.measure, self.method = split_name(measure)
        check_measure(self.measure)
        if table_dataset in SPECS and image_family(data.name) != image_family(table_dataset):
            raise HarnessError(f"zero-cost proxy zc:{measure}: images of {data.name} cannot score "
                               f"{table_dataset} architectures; load {table_dataset}'s own images")
        self.name = PREFIX + measure
        self.space, self.data, self.seed, self.batch_size = space, data, seed, batch_size
        self.device = torch.device(device) if device else default_device()
        self.device_label = device_name(str(self.device))
        self.x, self.y = probe_batch(data, batch_size, seed, self.device)
        self._truth = GroundTruth(space, table_dataset, table_path)
        self.suffix = None
        if self.method is not None:
            if backbone_path is None:
                raise HarnessError(f"zero-cost proxy {self.name}: needs a pre-trained backbone checkpoint")
            self.suffix = TrNetSuffix(self.method, backbone_path, self.device, prefix_bn)
            self.x = self.suffix.features(self.x)

    def network(self, arch: Any) -> nn.Module:
        """What this proxy scores for ``arch`` (on ``self.x``): a network built from ``seed``, or its
        Tr-Net suffix."""
        torch.manual_seed(self.seed)
        net = self.space.build_network(self.space.canonical(arch), num_classes=self.data.num_classes).to(self.device)
        return net if self.suffix is None else self.suffix.network(net)

    def value(self, arch: Any) -> float:
        return score_network(self.measure, self.network(arch), self.x, self.y, seed=self.seed, inplace=True)

    def __call__(self, arch: Any) -> Score:
        t0 = time.perf_counter()
        value = self.value(arch)
        return Score(value, self._truth(arch), time.perf_counter() - t0, None, self.device_label)
