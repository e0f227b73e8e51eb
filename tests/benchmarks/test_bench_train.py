"""Training-step throughput at the NB201 recipe's batch 256 (issue 4 acceptance): images/s of
Original vs Tr-Net-5-5 for the all-``nor_conv_3x3`` arch and one mixed arch, and the speed-up.

Slow (a batch-256 step is seconds on a CPU), so it runs only under ``make bench-train``
(``HARNESS_BENCH_TRAIN=1`` and ``--benchmark-enable``). When all cases of a device ran it writes
``results/bench-train.json`` and ``.md`` (atomically, with provenance); ``HARNESS_BENCH_TRAIN_OUT``
names another folder. All cores (``HARNESS_BENCH_THREADS`` to change), not the suite's one thread.
"""
import json
import os
from pathlib import Path

import pytest
import torch

from harness.bench.guards import bench_step
from harness.spaces.nb201.encoding import ALL_CONV3X3
from harness.spaces.nb201.network import NB201Network
from harness.backbones.resnet import build_backbone
from harness.transfer.splice import build_tr_net
from harness.store.files import write_text
from harness.runinfo import device_name, run_record

# Throughput of the whole CPU: every core unless HARNESS_BENCH_THREADS says otherwise (run it on a
# quiet machine: with another process on a core, OpenMP threads spin-wait and numbers collapse).
TORCH_THREADS = int(os.environ.get("HARNESS_BENCH_THREADS", 0)) or os.cpu_count() or 1
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ARCHS = {"all_conv3x3": ALL_CONV3X3, "mixed": MIXED}
METHODS = ("original", "tr-net-5-5")
BATCH, ROUNDS, WARMUP = 256, 5, 1
OUT = Path(os.environ.get("HARNESS_BENCH_TRAIN_OUT", Path(__file__).resolve().parents[2] / "results"))


@pytest.fixture(scope="module")
def report():
    """Collects one row per case; on teardown writes the files for each device that has them all."""
    rows: list[dict] = []
    load_before = os.getloadavg()[0]  # others' load; at the end our own threads are in it
    yield rows
    for dev in sorted({r["device"] for r in rows}):
        done = [r for r in rows if r["device"] == dev]
        if len(done) == len(ARCHS) * len(METHODS):
            _write(done, dev, load_before)


def _write(rows: list[dict], dev: str, load_before: float) -> None:
    by = {(r["arch_label"], r["method"]): r for r in rows}
    # Headline: the median of per-round ratios with Original and Tr-Net steps interleaved (same
    # machine load); the ratio of the two benchmarks' own images/s is kept alongside.
    speedup = {a: by[a, "tr-net-5-5"]["interleaved_speedup"] for a in ARCHS}
    separate = {a: by[a, "tr-net-5-5"]["images_per_s"] / by[a, "original"]["images_per_s"] for a in ARCHS}
    # threads and device name as the measuring tests saw them (fixtures restore threads before this)
    doc = {**run_record(seed=0, device=dev), "device": rows[0]["device_name"],
           "benchmark": "training step, batch 256, 32x32", "batch_size": BATCH, "rounds": ROUNDS,
           "torch_threads": rows[0]["torch_threads"], "load_avg_1min_before": load_before,
           "device_name": rows[0]["device_name"], "rows": rows, "trnet_over_original_speedup": speedup,
           "trnet_over_original_images_per_s_separate_runs": separate}
    stem = "bench-train" if dev == "cpu" else f"bench-train-{dev}"
    write_text(json.dumps(doc, indent=2) + "\n", OUT / f"{stem}.json")
    lines = [f"# Training-step throughput, batch {BATCH}, 32x32 ({doc['device_name']})", "",
             f"Median of {ROUNDS} steps after {WARMUP} warm-up; {doc['torch_threads']} torch threads; 1-min load "
             f"average {load_before:.2f} before the run; commit {doc['commit']}. Random-init weights; "
             "`make bench-train`.", "",
             "| arch | method | step s | images/s | saved MB | trainable params |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arch_label']} | {r['method']} | {r['median_step_s']:.3f} | {r['images_per_s']:.1f} | "
                     f"{r['saved_bytes'] / 1e6:.1f} | {r['trainable_params']:,} |")
    lines += [""] + [f"Tr-Net-5-5 / Original training speed, {a}: **{speedup[a]:.2f}x** (interleaved steps; "
                     f"{separate[a]:.2f}x from the separate runs' images/s)" for a in ARCHS]
    write_text("\n".join(lines) + "\n", OUT / f"{stem}.md")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_bench_train_step(benchmark, report, device, arch, method):
    if os.environ.get("HARNESS_BENCH_TRAIN") != "1":
        pytest.skip("batch-256 throughput: run with `make bench-train` (HARNESS_BENCH_TRAIN=1)")
    if benchmark.disabled:
        pytest.skip("batch-256 throughput needs --benchmark-enable")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA variant: no CUDA device on this machine")
    dev = torch.device(device)
    torch.manual_seed(0)
    original = NB201Network(ARCHS[arch])
    if method == "original":
        model, partner = original, None
    else:
        torch.manual_seed(0)
        model = build_tr_net(NB201Network(ARCHS[arch]), build_backbone("resnet32", 10), i=5, j=5)
        partner = original.to(dev)  # interleaved Original steps: the same-load ratio
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32, generator=gen).to(dev)
    y = torch.randint(0, 10, (BATCH,), generator=gen).to(dev)
    figures = bench_step(benchmark, model.to(dev), x, y, pair=f"{device}/train256/{arch}",
                         role="original" if method == "original" else "tr", original=partner,
                         rounds=ROUNDS, warmup_rounds=WARMUP)
    median = benchmark.stats.stats.median
    row = {"device": device, "device_name": device_name(device), "torch_threads": torch.get_num_threads(),
           "arch_label": arch, "arch": ARCHS[arch], "method": method,
           "median_step_s": median, "images_per_s": BATCH / median, **figures}
    if partner is not None:
        row["interleaved_speedup"] = 1 / benchmark.extra_info["tr_original_time_ratio"]
    report.append(row)
