"""Memory accounting: exact saved-for-backward bytes, the Tr-Net saving, the memory benchmark kind."""
import weakref
from pathlib import Path

import pytest
import torch

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition, load_definition
from harness.bench.runner import run_benchmark
from harness.measure.memory import SavedTensorCounter, cuda_peak_bytes, saved_tensor_bytes, step_figures
from harness.spaces.nb201.encoding import ALL_CONV3X3
from harness.spaces.nb201.network import NB201Network
from harness.store.results import ResultsStore
from harness.transfer.splice import build_tr_net


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return NB201Network(ALL_CONV3X3), build_tr_net(NB201Network(ALL_CONV3X3), build_backbone("resnet32"), i=5, j=5)


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


def test_step_figures_on_cpu(models):
    _, trnet = models
    x, y = _batch(2)
    stats = step_figures(trnet, x, y)
    assert stats["saved_bytes"] == saved_tensor_bytes(trnet, x, y)
    assert stats["trainable_params"] < stats["params"]
    assert set(stats) == {"saved_bytes", "params", "trainable_params"}  # no CUDA peak on the CPU
    assert all(p.grad is None for p in trnet.parameters())  # gradients cleared afterwards


def test_cuda_peak_bytes():
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="CUDA is not available"):
            cuda_peak_bytes(lambda: None)
        return
    x = torch.randn(1024, 1024, device="cuda")
    assert cuda_peak_bytes(lambda: x * 2) >= 2 * 4 * 1024 * 1024


def test_memory_kind_writes_rows_through_the_store(tmp_path):
    raw = {"name": "mem-test", "kind": "memory", "batch_size": 2, "archs": 2, "arch_list": [ALL_CONV3X3]}
    df = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    assert list(df["selection"]) == [ALL_CONV3X3, "random", "random"]
    assert (df["original/saved_bytes"] > df["tr-net-5-5/saved_bytes"]).all()
    assert (df["tr-net-5-5/trainable_params"] < df["tr-net-5-5/params"]).all()
    assert df["saved_ratio"].iloc[0] >= 2.0  # paper Table 2: about 2.1x
    stored = ResultsStore(tmp_path).read("memory")
    assert len(stored) == 3 and {"commit", "device", "seed", "version_torch", "config", "batch_id"} <= set(stored.columns)
    with pytest.raises(HarnessError, match="'batch_size' must be >= 1"):
        build_definition({**raw, "batch_size": 0}, "test")


def test_memory_definition_is_valid():
    defn = load_definition(Path(__file__).resolve().parents[1] / "benchmarks" / "nb201-memory.toml")
    assert defn.kind == "memory" and defn["batch_size"] == 256 and defn["archs"] == 50


def test_a_branch_whose_output_is_never_used_is_not_counted():
    """Node 2 below reaches the cell output only through a 'none' edge: its graph is freed during
    the forward, so it keeps nothing for backward -- exactly like a cell where node 2 is empty.
    Counting at save time instead made the total depend on allocator address reuse."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)
    dead = NB201Network("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|")
    empty = NB201Network("|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|")
    counts = {saved_tensor_bytes(dead, x, y) for _ in range(3)}
    assert counts == {saved_tensor_bytes(empty, x, y)}


def test_throughput_kind_times_both_models_interleaved(tmp_path):
    raw = {"name": "tp-test", "kind": "throughput", "batch_size": 4, "archs": 1, "arch_list": [ALL_CONV3X3],
           "steps": 2, "threads": 1}
    df = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    assert list(df["method"]) == ["original", "tr-net-5-5"] * 2 and (df["steps"] == 2).all()
    assert (df["images_per_s"] > 0).all() and (df["threads"] == 1).all()
    assert len(ResultsStore(tmp_path).read("throughput")) == 4
