"""One training step (forward, backward, SGD step) of Original vs Tr-Net-5-5 and of the NB201
supernet vs Tr-Supernet-5-5 (paper Sec. 3.2, Table 2), with their deterministic memory figures.

Guarded by ``harness.ci_guard`` against ``results/baselines/ci-cpu.json``: saved-for-backward bytes
and parameter counts exactly (1%), each pair's Tr/Original step-time ratio, measured with
interleaved rounds in the Tr benchmark (15%).
Random-init weights: neither cost depends on weight values. The CUDA variant adds the step's
``max_memory_allocated`` peak and skips on machines without a GPU.
"""
import pytest
import torch

from harness.backbones.resnet import build_backbone
from harness.ci_guard import bench_step
from harness.spaces.nb201.encoding import ALL_CONV3X3
from harness.spaces.nb201.network import NB201Network
from harness.spaces.nb201.supernet import NB201Supernet
from harness.transfer.splice import build_tr_net, build_tr_supernet

#: one fixed arch using every op, so a regression in any op's path shows
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ARCHS = {"all_conv3x3": ALL_CONV3X3, "mixed": MIXED}
# CPU: small batches keep the suite < 3 min on 2 cores (a supernet step runs all 5 ops per edge,
# ~5x the work). CUDA: the paper's batch 256.
BATCH = {"cpu": {"step": 32, "supernet": 8}, "cuda": {"step": 256, "supernet": 256}}
ROUNDS = {"cpu": (7, 1), "cuda": (20, 3)}  # (rounds, warmup rounds)
DEVICES = ["cpu", "cuda"]


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA variant: no CUDA device on this machine")
    return torch.device(name)


def _batch(n: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return x.to(device), y.to(device)


def _original(kind: str, arch: "str | None"):
    torch.manual_seed(0)
    return NB201Network(ARCHS[arch]) if kind == "step" else NB201Supernet(num_classes=10)


def _tr(kind: str, arch: "str | None"):
    torch.manual_seed(0)
    backbone = build_backbone("resnet32", 10)  # random init: cost does not depend on weights
    if kind == "step":
        return build_tr_net(NB201Network(ARCHS[arch]), backbone, i=5, j=5)
    return build_tr_supernet(NB201Supernet(), backbone, i=5, j=5)


def _run(benchmark, device: str, kind: str, role: str, arch: "str | None" = None) -> dict:
    """Benchmark the Original or the Tr side of a pair; the Tr side interleaves Original steps
    (``bench_step(original=...)``) for the same-load Tr/Original ratio the guard checks."""
    dev = _device(device)
    x, y = _batch(BATCH[device][kind], dev)
    rounds, warmup = ROUNDS[device]
    pair = f"{device}/{kind}" + (f"/{arch}" if arch else "")
    if role == "original":
        model, original = _original(kind, arch), None
    else:
        model, original = _tr(kind, arch), _original(kind, arch).to(dev)
    figures = bench_step(benchmark, model.to(dev), x, y, pair=pair, role=role, original=original,
                         rounds=rounds, warmup_rounds=warmup)
    assert figures["saved_bytes"] > 0 and 0 < figures["trainable_params"] <= figures["params"]
    if role == "tr":  # the frozen prefix: parameters that are not trained
        assert figures["trainable_params"] < figures["params"]
    return figures


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("method", ["original", "trnet55"])
@pytest.mark.parametrize("device", DEVICES)
def test_bench_step(benchmark, device, method, arch):
    _run(benchmark, device, "step", "original" if method == "original" else "tr", arch)


@pytest.mark.parametrize("method", ["supernet", "trsupernet55"])
@pytest.mark.parametrize("device", DEVICES)
def test_bench_supernet_step(benchmark, device, method):
    _run(benchmark, device, "supernet", "original" if method == "supernet" else "tr")
