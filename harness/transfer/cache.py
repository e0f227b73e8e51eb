"""Frozen-prefix feature cache for Tr-Net evaluation passes (paper Sec. 3.2: the prefix is the
same frozen backbone blocks for every candidate of a search).

An evaluation pass (valid or test split, no augmentation) feeds every candidate the same images,
so the prefix's outputs are the same for every Tr-Net that shares the backbone checkpoint and
``j``. :class:`PrefixFeatureCache` computes them once per (checkpoint hash, j, split, prefix BN
mode, precision, memory format, batch size, outputs kept) and evaluates each candidate's tail on
them. It is exact: the tail sees the very tensors, in the very batches, that
:func:`harness.train.loop.evaluate` would have computed (``bn="batch"`` prefixes included: the
batch composition is part of the key). Features stay on the device when they fit in half its
free memory, else in host memory (copied back per batch). Candidates trained concurrently
(:mod:`harness.train.concurrent`) share one cache: each entry is computed once, under a lock.
"""
from __future__ import annotations

import threading
from typing import Callable

import torch

from harness.data.augment import batches
from harness.data.datasets import Dataset
from harness.train.loop import autocast, in_format
from harness.train.recipe import TrainConfig
from harness.transfer.splice import TrNet

EVAL_BATCH = 512  # harness.train.loop.evaluate's default


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True  # host memory is the device's memory
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= free // 2


class PrefixFeatureCache:
    """Prefix outputs of evaluation splits, shared by all candidates of a search."""

    def __init__(self):
        self._entries: dict[tuple, list[tuple[list[torch.Tensor], torch.Tensor]]] = {}
        self.hits = self.misses = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @torch.no_grad()
    def features(self, net: TrNet, data: Dataset, split: str, cfg: TrainConfig, checkpoint_sha: str,
                 batch_size: int = EVAL_BATCH) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        """[(prefix outputs the tail consumes, labels)] per evaluation batch of ``data.<split>``."""
        s = getattr(data, split)
        key = (checkpoint_sha, net.j, data.name, data.source, split, len(s), net.prefix.bn, cfg.precision,
               cfg.channels_last, batch_size, net.tail.inputs)
        with self._lock:
            if key in self._entries:
                self.hits += 1
                return self._entries[key]
            self.misses += 1
            self._entries[key] = self._compute(net, data, s, cfg, batch_size)
            return self._entries[key]

    @staticmethod
    def _compute(net: TrNet, data: Dataset, s, cfg: TrainConfig, batch_size: int
                 ) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        out = []
        for x, y in batches(s, batch_size, train=False, mean=data.mean, std=data.std):
            with autocast(cfg, x.device):
                out.append((net.prefix.outputs(in_format(x, cfg), net.tail.inputs), y))
        nbytes = sum(t.numel() * t.element_size() for feats, _ in out for t in feats)
        if not _fits_on(s.x.device, nbytes):
            out = [([t.cpu() for t in feats], y.cpu()) for feats, y in out]
        if s.x.device.type == "cuda":  # other threads read them on their own CUDA streams
            torch.cuda.current_stream(s.x.device).synchronize()
        return out

    @torch.no_grad()
    def evaluate(self, net: TrNet, data: Dataset, split: str, cfg: TrainConfig, checkpoint_sha: str,
                 batch_size: int = EVAL_BATCH) -> "float | None":
        """Top-1 accuracy in percent of ``net`` on ``data.<split>`` (None when it does not exist),
        running only the tail on cached prefix features."""
        s = getattr(data, split)
        if s is None:
            return None
        device = s.x.device
        was_training = net.training
        net.eval()
        correct = torch.zeros((), dtype=torch.long, device=device)
        for feats, y in self.features(net, data, split, cfg, checkpoint_sha, batch_size):
            feats, y = [t.to(device, non_blocking=True) for t in feats], y.to(device, non_blocking=True)
            with autocast(cfg, device):
                correct += (net.tail(feats).argmax(1) == y).sum()
        net.train(was_training)
        return 100.0 * correct.item() / len(s)

    def evaluator(self, data: Dataset, cfg: TrainConfig, checkpoint_sha: str) -> Callable:
        """``evaluator(model, split_name)`` for :func:`harness.train.loop.train`."""
        def run(model: TrNet, split: str) -> "float | None":
            return self.evaluate(model, data, split, cfg, checkpoint_sha)
        return run
