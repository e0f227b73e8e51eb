"""One training step of the DARTS supernet vs Tr-Supernet-2-3 (wide ResNet-20 blocks 1-3 replace
supernet cells 0-1; paper Sec. 4.3.2, Table 5: 8.12 vs 4.64 GB allocated at batch 64 on a GPU,
"1.6x less memory").

Guarded like ``test_bench_steps.py`` (pair ``<device>/darts-supernet``): saved-for-backward bytes
and parameter counts exactly, the Tr/Original step-time ratio from interleaved rounds. CPU batch
4 (a supernet step runs all 8 ops on 14 edges of 8 cells: batch 4 keeps the pair < 60 s on one
thread; saved bytes scale linearly with the batch), CUDA the paper's batch 64.

The paper's batch-64 ratio is checked on the meta device (shapes only: seconds, no memory), after
checking that meta tensors give exactly the bytes real ones do at batch 4.
"""
import pytest
import torch

from harness.backbones.resnet import build_backbone
from harness.ci_guard import bench_step
from harness.measure.memory import saved_tensor_bytes
from harness.spaces import get_space
from harness.transfer.splice import build_tr_supernet

BATCH = {"cpu": 4, "cuda": 64}
ROUNDS = {"cpu": (3, 1), "cuda": (20, 3)}  # (rounds, warmup rounds)


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA variant: no CUDA device on this machine")
    return torch.device(name)


def _supernet():
    torch.manual_seed(0)
    return get_space("darts").build_supernet(num_classes=10)


def _tr_supernet():
    torch.manual_seed(0)
    backbone = build_backbone("resnet20-wide", 10)  # random init: cost does not depend on weights
    return build_tr_supernet(get_space("darts").build_supernet(num_classes=10), backbone, i=2, j=3)


@pytest.mark.parametrize("method", ["supernet", "trsupernet23"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_bench_darts_supernet_step(benchmark, device, method):
    dev = _device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH[device], 3, 32, 32, generator=gen).to(dev)
    y = torch.randint(0, 10, (BATCH[device],), generator=gen).to(dev)
    rounds, warmup = ROUNDS[device]
    role = "original" if method == "supernet" else "tr"
    model, original = (_supernet(), None) if role == "original" else (_tr_supernet(), _supernet().to(dev))
    figures = bench_step(benchmark, model.to(dev), x, y, pair=f"{device}/darts-supernet", role=role,
                         original=original, rounds=rounds, warmup_rounds=warmup)
    assert figures["saved_bytes"] > 0 and 0 < figures["trainable_params"] <= figures["params"]
    if role == "tr":
        assert figures["trainable_params"] < figures["params"]


@pytest.mark.slow
def test_darts_saved_bytes_ratio_at_batch_64():
    """Original / Tr-Supernet-2-3 bytes saved for backward at the paper's batch 64 >= 1.5 (paper
    Table 5: 8.12 vs 4.64 GB allocated, "1.6x less memory"), counted on the meta device."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32, generator=gen), torch.randint(0, 10, (4,), generator=gen)
    meta = torch.device("meta")
    for build in (_supernet, _tr_supernet):
        real = saved_tensor_bytes(build(), x, y)
        assert real > 0 and saved_tensor_bytes(build().to(meta), x.to(meta), y.to(meta)) == real, build.__name__
    x64 = torch.empty(64, 3, 32, 32, device=meta)
    y64 = torch.zeros(64, dtype=torch.long, device=meta)
    original = saved_tensor_bytes(_supernet().to(meta), x64, y64)
    tr = saved_tensor_bytes(_tr_supernet().to(meta), x64, y64)
    assert original / tr >= 1.5, f"Original / Tr-Supernet-2-3 saved bytes {original / tr:.2f}x < 1.5x (paper: 1.6x)"
