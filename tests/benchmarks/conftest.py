"""Benchmark suite settings: one torch thread, and the Tr/Original ratios in the JSON output."""
import pytest
import torch

from harness.guards import pair_ratios, summarise


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


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Write each pair's Tr/Original median ratio of this run into the Tr benchmark's extra_info
    (the guard recomputes it from the medians; this is for people reading the JSON)."""
    if not output_json.get("benchmarks"):
        return
    ratios = pair_ratios(summarise(output_json)["benchmarks"])
    for b in output_json["benchmarks"]:
        extra = b.get("extra_info") or {}
        if extra.get("role") == "tr" and extra.get("pair") in ratios:
            extra["tr_original_time_ratio"] = ratios[extra["pair"]]
