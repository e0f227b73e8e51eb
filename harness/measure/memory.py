"""Memory accounting for one training step, usable on any device.

The paper (Table 2) reports GPU allocated memory: 1.12 GB for NB201 networks vs 0.53 GB for
Tr-Net-5-5 (2.11x). The device-independent part of that gap is what autograd keeps for backward;
:func:`saved_tensor_bytes` measures it exactly with ``torch.autograd.graph.saved_tensors_hooks``.
:func:`cuda_peak_bytes` gives the GPU figure the paper used, :func:`peak_rss_bytes` the process
peak on the CPU.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
import weakref
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.measure.counting import count_params


def storage_key(t: torch.Tensor) -> int:
    """What identifies ``t``'s storage while it lives: its address; on the meta device, which has
    no addresses, the storage object (``_cdata``, its C++ pointer)."""
    storage = t.untyped_storage()
    return storage._cdata if t.device.type == "meta" else storage.data_ptr()


class SavedTensorCounter:
    """Counts the bytes autograd saves for backward inside :meth:`counting` blocks.

    Each underlying storage is counted once (views and tensors saved by several ops share it),
    keyed on its ``data_ptr`` (on the meta device, where every address is 0, on the storage
    itself: shapes alone then give the count, for any batch size, without the memory), and only
    if it is still held for backward when the block exits
    (the caller still holds the graph): a branch whose output is never used (e.g. an NB201 node
    reached only through 'none' edges) has its graph, and its saved tensors, freed during the
    forward, and a later tensor may then reuse the address -- counting at save time would make
    the total depend on the allocator. Given a
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
            storage_key(t) for t in chain(self.model.parameters(), self.model.buffers())}
        saved: list[tuple[weakref.ref, int, int]] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            # Keep a detached alias: handing back `t` itself would tie a saved *output* to its own
            # grad_fn through Python, a reference cycle the garbage collector cannot see, and every
            # counted graph would leak. The alias shares storage and version counter, so backward
            # (first order) and in-place checks are unchanged; autograd alone holds it, so it dies
            # with the graph node that saved it.
            alias = t.detach()
            saved.append((weakref.ref(alias), storage_key(t), t.untyped_storage().nbytes()))
            return alias

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield self
        live = {ptr: nbytes for ref, ptr, nbytes in saved if ref() is not None and ptr not in state}
        self.bytes = sum(live.values())


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


_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _malloc_trim() -> None:
    """Hand freed heap pages back to the kernel (glibc ``malloc_trim``): without it the memory an
    earlier run freed stays resident and every later run's peak starts from it."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: freed heap returned, then ``5`` into
    ``/proc/self/clear_refs`` resets VmHWM to the current RSS), so one process training several
    candidates in turn reports each one's own peak; False where the kernel does not allow it (the
    peak then runs from process start)."""
    _malloc_trim()
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident set size since :func:`reset_peak_rss` (Linux ``VmHWM``), else
    since it started (``ru_maxrss``; KiB on Linux, bytes on macOS)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
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


def step_figures(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 step: "Callable[[], object] | None" = None) -> dict[str, int]:
    """The deterministic memory figures of one training step: bytes autograd saves for backward
    (parameters and buffers left out, :class:`SavedTensorCounter`), parameter and
    trainable-parameter counts; on CUDA, given the ``step`` closure, also ``cuda_peak_bytes``, the
    ``max_memory_allocated`` peak over one full step (run once before, so optimizer state exists,
    as in every step after the first)."""
    counter = SavedTensorCounter(model)
    model.train()
    with counter.counting():
        loss = F.cross_entropy(model(x), y)
    loss.backward()  # a real step's backward: frees the graph the counter saw
    model.zero_grad(set_to_none=True)
    figures = {"saved_bytes": counter.bytes, "params": count_params(model),
               "trainable_params": count_params(model, trainable_only=True)}
    if x.device.type == "cuda" and step is not None:
        step()
        figures["cuda_peak_bytes"] = cuda_peak_bytes(step, x.device)
        model.zero_grad(set_to_none=True)
    return figures
