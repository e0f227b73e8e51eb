"""Zero-cost proxies of a Tr-Net's trainable suffix: ``zc:<measure>@tr-net-<i>-<j>``.

A proxy the zero-cost literature has not measured: a Tr-Net-i-j trains only the candidate's
modules after search cell ``i``, fed by the frozen first ``j`` blocks of a pre-trained backbone
(paper Sec. 3.2), so its zero-cost score is the measure of that suffix alone, taking the frozen
prefix's output on the probe minibatch as its input. The prefix is frozen and runs without
gradients, hence:

* grad_norm, snip, grasp, fisher and synflow sum over the suffix's layers only;
* jacob_cov differentiates the logits w.r.t. the prefix's features, not the images;
* nwot counts the suffix's ReLUs; zen draws its Gaussian inputs in the features' shape;
* synflow's all-ones input has the features' shape; params / flops count the suffix.

The suffix's initial weights are those of the Original network built from the same seed (the
splice keeps the network's own modules), so ``zc:m`` and ``zc:m@tr-net-i-j`` score the same
draw of weights. The prefix's BN uses the backbone's running statistics (the splice's default).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone
from harness.proxies.settings import parse_method
from harness.transfer.splice import FrozenPrefix, build_tr_net

SEPARATOR = "@"


def split_name(measure_and_method: str) -> "tuple[str, str | None]":
    """``synflow`` -> (``synflow``, None); ``synflow@tr-net-5-5`` -> (``synflow``, ``tr-net-5-5``)."""
    measure, sep, method = measure_and_method.partition(SEPARATOR)
    if not sep:
        return measure, None
    if parse_method(method) is None:
        raise HarnessError(f"zero-cost proxy zc:{measure_and_method}: '@original' is the plain zc:{measure}; "
                           "after '@' name a tr-net-<i>-<j>")
    return measure, method


class SuffixNetwork(nn.Module):
    """A Tr-Net's trainable part as a network of its own: its input is the frozen prefix's output."""

    def __init__(self, tail: nn.Module):
        super().__init__()
        if getattr(tail, "inputs", 1) != 1:
            raise HarnessError(f"zero-cost proxies of a Tr-Net suffix need a tail that reads one input; "
                               f"{type(tail).__name__} reads {tail.inputs} (a DARTS cell reads two)")
        self.tail = tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail([x])


class TrNetSuffix:
    """Builds ``SuffixNetwork`` s of Tr-Net-i-j on one backbone checkpoint, and the prefix's
    features of a minibatch (computed once: every candidate shares the frozen prefix)."""

    def __init__(self, method: str, backbone_path: "str | Path", device: torch.device, prefix_bn: str = "running"):
        ij = parse_method(method)
        if ij is None:
            raise HarnessError(f"method {method!r}: a Tr-Net suffix needs tr-net-<i>-<j>")
        self.method, (self.i, self.j), self.prefix_bn = method, ij, prefix_bn
        self.backbone, _ = load_backbone(backbone_path)
        self.backbone.to(device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return FrozenPrefix(self.backbone, self.j, self.prefix_bn).outputs(x, 1)[-1]

    def network(self, network: nn.Module) -> SuffixNetwork:
        return SuffixNetwork(build_tr_net(network, self.backbone, i=self.i, j=self.j,
                                          prefix_bn=self.prefix_bn).tail)
