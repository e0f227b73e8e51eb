"""Memory accounting for one training step, usable on any device.

The paper (Table 2) reports GPU allocated memory: 1.12 GB for NB201 networks vs 0.53 GB for
Tr-Net-5-5 (2.11x). The device-independent part of that gap is what autograd keeps for backward;
:func:`saved_tensor_bytes` measures it exactly with ``torch.autograd.graph.saved_tensors_hooks``.
:func:`cuda_peak_bytes` gives the GPU figure the paper used, :func:`peak_rss_bytes` the process
peak on the CPU.
"""
from __future__ import annotations

import resource
import sys
from contextlib import contextmanager
from itertools import chain
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.measure.counting import count_params
from harness.spaces.nb201.network import NB201Network
from harness.backbones.resnet import build_backbone
from harness.transfer.splice import build_tr_net
from harness.spaces.nb201.encoding import index_of, random_ops, to_str

ALL_CONV3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class SavedTensorCounter:
    """Counts the bytes autograd saves for backward inside :meth:`counting` blocks.

    Each underlying storage is counted once (views and tensors saved by several ops share it),
    keyed on its ``data_ptr``; the total is taken when the block exits, while the caller still
    holds the graph (so no saved storage has been freed and its address reused). Given a
    ``model``, storages of its parameters and buffers are left out: they are resident whether or
    not a backward follows. ``bytes`` holds the total of the last counted block.

        counter = SavedTensorCounter(model)
        with counter.counting():
            loss = F.cross_entropy(model(x), y)
        counter.bytes
    """

    def __init__(self, model: "nn.Module | None" = None):
        self.model = model
        self.bytes = 0

    @contextmanager
    def counting(self, enabled: bool = True) -> Iterator["SavedTensorCounter"]:
        if not enabled:
            yield self
            return
        state = set() if self.model is None else {
            t.untyped_storage().data_ptr() for t in chain(self.model.parameters(), self.model.buffers())}
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in state and ptr not in seen:
                seen[ptr] = storage.nbytes()
            # Keep a detached alias: handing back `t` itself would tie a saved *output* to its own
            # grad_fn through Python, a reference cycle the garbage collector cannot see, and every
            # counted graph would leak. The alias shares storage and version counter, so backward
            # (first order) and in-place checks are unchanged.
            return t.detach()

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield self
        self.bytes = sum(seen.values())


def saved_tensor_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, include_state: bool = False) -> int:
    """Bytes autograd saves for backward in one training-mode forward + cross-entropy
    (see :class:`SavedTensorCounter`; parameters and buffers left out unless ``include_state``).
    The forward is a real training-mode one: BN running statistics move as in a training step."""
    counter = SavedTensorCounter(None if include_state else model)
    was_training = model.training
    model.train()
    try:
        with counter.counting():
            loss = F.cross_entropy(model(x), y)
        del loss
    finally:
        model.train(was_training)
    return counter.bytes


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (``ru_maxrss``; KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def cuda_peak_bytes(fn: Callable[[], object], device: "torch.device | str | None" = None) -> int:
    """``torch.cuda.max_memory_allocated`` while ``fn()`` runs (peak reset first)."""
    if not torch.cuda.is_available():
        raise HarnessError("cuda_peak_bytes: CUDA is not available on this machine")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def step_memory(model: nn.Module, x: torch.Tensor, y: torch.Tensor, peak: bool = True) -> dict[str, int]:
    """Saved-for-backward bytes and parameter counts; with ``peak``, also the device's peak over
    one full training step (forward, cross-entropy, backward; gradients cleared afterwards):
    ``cuda_peak_bytes`` on a GPU, else the process's ``peak_rss_bytes`` (monotone over the
    process's life, so only the first large step it sees is informative)."""
    out = {"saved_bytes": saved_tensor_bytes(model, x, y), "params": count_params(model),
           "trainable_params": count_params(model, trainable_only=True)}
    if not peak:
        return out

    def step() -> None:
        model.train()
        F.cross_entropy(model(x), y).backward()

    if x.device.type == "cuda":
        out["cuda_peak_bytes"] = cuda_peak_bytes(step, x.device)
    else:
        step()
        out["peak_rss_bytes"] = peak_rss_bytes()
    model.zero_grad(set_to_none=True)
    return out


def nb201_memory_rows(batch_size: int = 256, n_random: int = 50, seed: int = 0, device: "str | None" = None,
                      backbone: str = "resnet32", i: int = 5, j: int = 5) -> pd.DataFrame:
    """Saved-for-backward bytes of Original (NB201Network) vs Tr-Net-i-j, one row per arch:
    the all-``nor_conv_3x3`` arch, then ``n_random`` seeded random archs. Random-init weights
    (byte counts do not depend on weight values). On CUDA also each step's peak allocation."""
    if batch_size < 1 or n_random < 0:
        raise HarnessError(f"batch_size={batch_size}, n_random={n_random}: need batch_size >= 1, n_random >= 0")
    dev = torch.device(device) if device else torch.device("cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    archs = [("all_conv3x3", ALL_CONV3X3)] + [("random", to_str(random_ops(rng))) for _ in range(n_random)]
    prefix_backbone = build_backbone(backbone).to(dev)  # one frozen prefix shared by all Tr-Nets
    x = torch.randn(batch_size, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch_size,), device=dev)
    rows = []
    for kind, arch in archs:
        row: dict[str, object] = {"kind": kind, "arch": arch, "arch_index": index_of(arch), "batch_size": batch_size}
        for label, model in (("original", NB201Network(arch)), (f"trnet_{i}_{j}", build_tr_net(arch, prefix_backbone, i, j))):
            stats = step_memory(model.to(dev), x, y, peak=dev.type == "cuda")
            row[f"{label}_saved_bytes"] = stats["saved_bytes"]
            row[f"{label}_params"] = stats["params"]
            row[f"{label}_trainable_params"] = stats["trainable_params"]
            if "cuda_peak_bytes" in stats:
                row[f"{label}_cuda_peak_bytes"] = stats["cuda_peak_bytes"]
            del model
        row["saved_ratio"] = row["original_saved_bytes"] / row[f"trnet_{i}_{j}_saved_bytes"]
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_memory(rows: pd.DataFrame) -> pd.DataFrame:
    """Per kind (all-conv arch, random archs): mean bytes of each model and the ratio of means."""
    byte_cols = [c for c in rows.columns if c.endswith("_bytes")]
    out = rows.groupby("kind", sort=False)[byte_cols].mean()
    out.insert(0, "n_archs", rows.groupby("kind", sort=False).size())
    trnet = next(c for c in byte_cols if c.startswith("trnet") and c.endswith("_saved_bytes"))
    out["saved_ratio"] = out["original_saved_bytes"] / out[trnet]
    peak_cols = [c for c in byte_cols if c.endswith("_cuda_peak_bytes")]
    if len(peak_cols) == 2:
        out["cuda_peak_ratio"] = out[peak_cols[0]] / out[peak_cols[1]]
    return out.reset_index()
