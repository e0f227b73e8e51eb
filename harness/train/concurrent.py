"""Several candidates at once on one GPU: NB201 networks at batch 256 leave most of a modern GPU
idle, so K candidate trainings share it, each in its own thread and CUDA stream (kernels release
the GIL; streams let the device overlap them). K comes from free device memory and a measured
per-candidate peak; on CPU K is 1 (the cores are already shared by one training's threads).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Callable, Sequence, TypeVar

import torch

from harness import HarnessError

T = TypeVar("T")
MAX_CONCURRENT = 8


def concurrency(device: "str | torch.device", per_candidate_bytes: int, *, reserve: float = 0.1,
                most: int = MAX_CONCURRENT, free_bytes: "int | None" = None) -> int:
    """How many candidates to train at once on ``device``: 1 on CPU; on CUDA as many peaks of
    ``per_candidate_bytes`` as fit in the free memory less a ``reserve`` fraction (1..``most``)."""
    device = torch.device(device)
    if per_candidate_bytes <= 0:
        raise HarnessError(f"per-candidate memory {per_candidate_bytes}: must be > 0 bytes")
    if device.type != "cuda":
        return 1
    free = torch.cuda.mem_get_info(device)[0] if free_bytes is None else free_bytes
    return max(1, min(most, int(free * (1 - reserve)) // per_candidate_bytes))


def run_concurrently(jobs: Sequence[Callable[[], T]], k: int, device: "str | torch.device" = "cpu") -> list[T]:
    """Run ``jobs`` (each trains one candidate), at most ``k`` at a time, on ``device`` (one CUDA
    stream per worker thread there); results in the jobs' order. The first failure is raised.
    The threads share torch's global RNG: build (initialise) the networks before, one at a time;
    :func:`harness.train.loop.train` draws its batches from its own seeded generator."""
    if k < 1:
        raise HarnessError(f"concurrent candidates k={k}: must be >= 1")
    device = torch.device(device)
    if k == 1:
        return [job() for job in jobs]

    def run(job: Callable[[], T]) -> T:
        ctx = torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else nullcontext()
        with ctx:
            out = job()
            if device.type == "cuda":
                torch.cuda.current_stream(device).synchronize()
            return out

    with ThreadPoolExecutor(max_workers=k, thread_name_prefix="candidate") as pool:
        return [f.result() for f in [pool.submit(run, job) for job in jobs]]


class Occupancy:
    """Counts jobs running at once (for tests and logs): wrap a job with :meth:`track`."""

    def __init__(self):
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def track(self, job: Callable[[], T]) -> Callable[[], T]:
        def wrapped() -> T:
            with self._lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                return job()
            finally:
                with self._lock:
                    self.now -= 1
        return wrapped
