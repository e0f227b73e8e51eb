"""Benchmark suite settings: one torch thread unless a module says otherwise."""
import pytest
import torch


@pytest.fixture(autouse=True)
def torch_threads(request):
    """One intra-op thread unless a module sets ``TORCH_THREADS`` (None = leave as is).

    On a shared 2-core runner two OpenMP threads spin-wait on each other whenever another
    process holds a core, and a step can take 10-50x longer; one thread keeps medians and the
    Tr/Original ratios stable. Restored afterwards so the rest of ``make test`` is unaffected.
    """
    n = getattr(request.module, "TORCH_THREADS", 1)
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    yield torch.get_num_threads()
    torch.set_num_threads(before)
