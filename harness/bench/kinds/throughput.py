"""Kind ``throughput``: training images/s of one step, Original vs Tr-Net-i-j (paper Fig. 4 top).

For each architecture the two models' steps run interleaved (one Original step, then one
Tr-Net step, ``steps`` times after one warm-up round each), so both see the same load of a
shared machine; images/s = batch size / median step time. ``threads = 0`` keeps torch's setting.
"""
from __future__ import annotations

import statistics
import time

import pandas as pd
import torch

from harness.backbones.resnet import build_backbone
from harness.bench.context import backbone_settings, run_meta
from harness.bench.definition import Definition
from harness.bench.kinds.memory import candidates
from harness.runinfo import default_device, device_name
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.train.loop import training_step
from harness.train.recipe import ORIGINAL
from harness.transfer.splice import build_tr_net


def _timed(step) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    space = get_space(defn["space"])
    before = torch.get_num_threads()
    if defn["threads"]:
        torch.set_num_threads(defn["threads"])
    try:
        dev = default_device()
        torch.manual_seed(defn["seed"])
        backbone = build_backbone(backbone_settings(defn).name).to(dev)
        b = defn["batch_size"]
        x, y = torch.randn(b, 3, 32, 32, device=dev), torch.randint(0, 10, (b,), device=dev)
        trnet = f"tr-net-{defn['i']}-{defn['j']}"
        rows = []
        for label, arch in candidates(defn):
            models = {"original": space.build_network(arch).to(dev),
                      trnet: build_tr_net(space.build_network(arch), backbone, defn["i"], defn["j"]).to(dev)}
            steps = {m: training_step(model, x, y, ORIGINAL) for m, model in models.items()}
            times: dict[str, list[float]] = {m: [] for m in models}
            for r in range(defn["steps"] + 1):
                for m, step in steps.items():
                    t = _timed(step)
                    if r > 0:  # the first round warms up allocators and kernels
                        times[m].append(t)
            for m, ts in times.items():
                rows.append({"selection": label, "arch_str": space.format(arch), "method": m, "batch_size": b,
                             "median_step_s": statistics.median(ts), "images_per_s": b / statistics.median(ts),
                             "steps": len(ts), "threads": torch.get_num_threads()})
        df = pd.DataFrame(rows).assign(device=device_name(str(dev)), **run_meta(defn, batch_id, defn["seed"]))
    finally:
        torch.set_num_threads(before)
    store.append("throughput", df)
    for m, g in df.groupby("method", sort=False):
        print(f"{defn.name}: {m:<12} {g['images_per_s'].mean():.1f} img/s (mean of {len(g)} archs, batch {b})")
    return df
