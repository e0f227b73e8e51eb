"""Memory accounting: exact saved-for-backward bytes, the Tr-Net saving, the benchmark script."""
import importlib.util
import weakref
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness import HarnessError
from harness.measure.memory import (ALL_CONV3X3, SavedTensorCounter, cuda_peak_bytes, nb201_memory_rows,
                                     peak_rss_bytes, saved_tensor_bytes, step_memory, summarise_memory)
from harness.spaces.nb201.network import NB201Network
from harness.backbones.resnet import build_backbone
from harness.transfer.splice import build_tr_net


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return NB201Network(ALL_CONV3X3), build_tr_net(ALL_CONV3X3, build_backbone("resnet32"), i=5, j=5)


def _batch(n):
    return torch.randn(n, 3, 32, 32), torch.zeros(n, dtype=torch.long)


def _per_image(model):
    return saved_tensor_bytes(model, *_batch(2)) - saved_tensor_bytes(model, *_batch(1))


def test_counter_counts_each_storage_once():
    a = torch.randn(1000, requires_grad=True)
    counter = SavedTensorCounter()
    with counter.counting():
        b = a * a  # saves `a` twice (self and other): one storage
    assert counter.bytes == 4000
    with counter.counting(enabled=False):
        (a * 3).exp()
    assert counter.bytes == 4000  # unchanged by a disabled block
    del b


def test_counter_frees_the_graph_and_keeps_gradients():
    torch.manual_seed(0)
    w = torch.randn(10, 10, requires_grad=True)
    x = torch.randn(4, 10)
    counter = SavedTensorCounter()
    with counter.counting():
        h = torch.relu(x @ w)  # ReLU saves its own output: the case that can form a cycle
        loss = h.square().sum()
    ref = weakref.ref(h)
    loss.backward()
    counted_grad = w.grad.clone()
    del h, loss
    assert ref() is None  # nothing kept alive after the graph is dropped
    w.grad = None
    torch.relu(x @ w).square().sum().backward()
    assert torch.equal(w.grad, counted_grad)


def test_exact_saved_bytes_per_image(models):
    # Floats kept per image, all-nor_conv_3x3 arch, 32x32: every conv edge keeps its ReLU output
    # (saved by ReLU and by the conv: one storage) and its conv output (saved by BN) -> 12 maps a
    # cell: 12*(5*16*32*32 + 5*32*16*16 + 5*64*8*8) = 1,720,320. Stem: image 3,072 + conv out
    # 16,384. Reduction 1: ReLU out 16,384, BN in 8,192, ReLU out 8,192, BN in 8,192, avg-pool
    # input 16,384, its output 4,096 = 61,440; reduction 2: half, 30,720. Head: BN in 4,096,
    # ReLU out 4,096, pooled 64, log-softmax 10. Total 1,840,202 floats = 7,360,808 bytes, plus
    # the int64 target (8 bytes). Parameters and buffers are not counted.
    original, trnet = models
    assert _per_image(original) == 7_360_816
    # Tr-Net-5-5: the prefix keeps nothing; the first reduction block's input needs no grad, so
    # its avg-pool saves nothing (16,384 fewer); stage-1 cells and the stem are gone:
    # 737,280 + 45,056 + 30,720 + 8,266 floats = 3,285,288 bytes, plus 8 for the target.
    assert _per_image(trnet) == 3_285_296


def test_tr_net_saves_at_least_half(models):
    original, trnet = models
    x, y = _batch(8)
    ratio = saved_tensor_bytes(original, x, y) / saved_tensor_bytes(trnet, x, y)
    assert ratio >= 2.0  # paper Table 2: 2.11x; batch 256 in results/memory-nb201.md


def test_include_state_adds_parameter_storage(models):
    original, _ = models
    x, y = _batch(1)
    extra = saved_tensor_bytes(original, x, y, include_state=True) - saved_tensor_bytes(original, x, y)
    param_bytes = sum(p.numel() * 4 for p in original.parameters())
    assert param_bytes <= extra < param_bytes + 100_000  # all weights are saved; plus BN buffers


def test_step_memory_on_cpu(models):
    _, trnet = models
    stats = step_memory(trnet, *_batch(2))
    assert stats["saved_bytes"] == saved_tensor_bytes(trnet, *_batch(2))
    assert stats["trainable_params"] < stats["params"]
    assert 0 < stats["peak_rss_bytes"] <= peak_rss_bytes()
    assert all(p.grad is None for p in trnet.parameters())  # gradients cleared afterwards
    assert set(step_memory(trnet, *_batch(2), peak=False)) == {"saved_bytes", "params", "trainable_params"}


def test_cuda_peak_bytes():
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="CUDA is not available"):
            cuda_peak_bytes(lambda: None)
        return
    x = torch.randn(1024, 1024, device="cuda")
    assert cuda_peak_bytes(lambda: x * 2) >= 2 * 4 * 1024 * 1024


def test_memory_rows_and_summary():
    rows = nb201_memory_rows(batch_size=2, n_random=2, seed=0)
    assert list(rows["kind"]) == ["all_conv3x3", "random", "random"]
    assert rows["arch"].iloc[0] == ALL_CONV3X3
    assert (rows["original_saved_bytes"] > rows["trnet_5_5_saved_bytes"]).all()
    assert (rows["trnet_5_5_trainable_params"] < rows["trnet_5_5_params"]).all()
    summary = summarise_memory(rows)
    assert list(summary["kind"]) == ["all_conv3x3", "random"] and list(summary["n_archs"]) == [1, 2]
    random = rows[rows["kind"] == "random"]
    assert summary["saved_ratio"].iloc[1] == pytest.approx(
        random["original_saved_bytes"].mean() / random["trnet_5_5_saved_bytes"].mean())
    with pytest.raises(HarnessError, match="batch_size=0"):
        nb201_memory_rows(batch_size=0)


def test_bench_script_writes_results(tmp_path):
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_memory.py"
    spec = importlib.util.spec_from_file_location("bench_memory", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    summary = script.main(["--batch-size", "2", "--n-random", "1", "--device", "cpu", "--out-dir", str(tmp_path)])
    assert summary["saved_ratio"].iloc[0] >= 2.0
    rows = pd.read_parquet(tmp_path / "memory-nb201.parquet")
    assert len(rows) == 2 and {"commit", "device", "seed", "version_torch"} <= set(rows.columns)
    text = (tmp_path / "memory-nb201.md").read_text()
    assert "| all_conv3x3 | 1 |" in text and "1.12 GB" in text
