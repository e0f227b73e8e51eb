"""One training step in fp32 (contiguous) vs the fast mode (bf16 autocast + channels_last) on the
all-conv NB201 architecture: the guard pair ``cpu/fast-vs-fp32`` (role original = fp32, role tr =
fast) covers the fast mode's saved-for-backward bytes and its step-time ratio vs fp32, measured
with interleaved rounds (:func:`harness.ci_guard.bench_step`); on a CPU without native bf16
only the bytes are guarded. Random-init weights."""
import torch

from harness.ci_guard import bench_step
from harness.measure.memory import step_figures
from harness.spaces.nb201.encoding import ALL_CONV3X3
from harness.spaces.nb201.network import NB201Network
from harness.train.recipe import FAST_MODE, default_mode

BATCH, ROUNDS, WARMUP = 32, 7, 1


class _Fast(torch.nn.Module):
    """The network stepped as the loop's fast mode steps it: channels_last model and batches,
    forward under bf16 autocast (fp32 master weights)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x):
        with torch.autocast(x.device.type, torch.bfloat16):
            return self.net(x.contiguous(memory_format=torch.channels_last)).float()


def _net() -> NB201Network:
    torch.manual_seed(0)
    return NB201Network(ALL_CONV3X3)


def _batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 3, 32, 32, generator=gen), torch.randint(0, 10, (BATCH,), generator=gen)


def test_bench_precision_fp32(benchmark):
    x, y = _batch()
    figures = bench_step(benchmark, _net(), x, y, pair="cpu/fast-vs-fp32", role="original", rounds=ROUNDS,
                         warmup_rounds=WARMUP)
    assert figures["saved_bytes"] > 0


def test_bench_precision_fast(benchmark):
    x, y = _batch()
    # Without native bf16 the fast mode is not this CPU's default and its autocast is emulated
    # (several times slower than fp32): its time ratio says nothing about a regression there.
    native = default_mode("cpu") == FAST_MODE
    fast = bench_step(benchmark, _Fast(_net()), x, y, pair="cpu/fast-vs-fp32", role="tr", original=_net(),
                      rounds=ROUNDS, warmup_rounds=WARMUP,
                      unguarded=None if native else "no native bf16 on this CPU (bf16 autocast is emulated)")
    # bf16 activations: the saved bytes must drop (not all: BN and loss inputs stay fp32)
    fp32 = step_figures(_net(), x, y)
    assert 0 < fast["saved_bytes"] < fp32["saved_bytes"]
