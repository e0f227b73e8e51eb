"""Kind ``throughput``: training images/s of one step, Original vs Tr-Net-i-j (paper Fig. 4 top),
in each precision / memory-format mode (``modes``, :data:`harness.train.recipe.MODES`).

For each architecture every (mode, method) model's steps run interleaved (one step of each in
turn, ``steps`` times after one warm-up round), so all see the same load of a shared machine and
their ratios stay meaningful; images/s = batch size / median step time. Every mode's model starts
from the same weights, and each mode gets its own copy of the backbone (channels_last converts
parameters in place). ``threads = 0`` keeps torch's setting. With ``cache_archs`` / ``concurrency``
it also measures the prefix feature cache's speed-up of Tr-Net evaluation and images/s with K
candidates at once (:mod:`harness.bench.kinds.throughput_speed`; rows in the ``speed`` table, sections appended).
"""
from __future__ import annotations

import copy
import os
import statistics
import time

import pandas as pd
import torch

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.bench.kinds.memory import candidates
from harness.bench.kinds.throughput_speed import concurrent_rows, eval_cache_rows
from harness.bench.kinds.throughput_speed import summary as speed_summary
from harness.data.datasets import load_dataset
from harness.definition.schema import INT, LIST_INT, LIST_STR, STR, Definition, Kind, KindSpec
from harness.runinfo import default_device, device_name
from harness.sections.context import backbone_settings, run_meta
from harness.sections.schema import BACKBONE_SCHEMA, check_arch_list, check_sections
from harness.sections.splices import check_fixed_depth, check_splices
from harness.spaces import get_space
from harness.store.files import write_text
from harness.store.markdown import markdown_table
from harness.store.results import ResultsStore
from harness.train.loop import training_step
from harness.train.recipe import MODES, ORIGINAL, default_mode
from harness.transfer.splice import build_tr_net

SCHEMA = {"batch_size": INT, "archs": INT, "arch_list": LIST_STR, "steps": INT, "threads": INT, "seed": INT, "i": INT,
          "j": INT, "modes": LIST_STR, "methods": LIST_STR, "out": STR,
          "cache_archs": INT, "cache_modes": LIST_STR, "cache_rounds": INT, "concurrency": LIST_INT,
          "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "batch_size": 256, "archs": 1, "steps": 5, "threads": 0, "seed": 0,
            "i": 5, "j": 5, "modes": ["fp32"], "methods": ["original", "tr-net"], "backbone": {},
            "cache_archs": 0, "cache_modes": [], "cache_rounds": 3, "concurrency": []}


def validate(d: Definition) -> None:
    check_sections(d)
    for m in d["modes"]:
        d.one_of("modes", m, MODES)
    for m in d["methods"]:
        d.one_of("methods", m, ("original", "tr-net"))
    for m in d["cache_modes"]:
        d.one_of("cache_modes", m, MODES)
    if any(k < 1 for k in d["concurrency"]):
        raise HarnessError(f"{d.source}: key 'concurrency': every K must be >= 1, got {d['concurrency']}")
    check_arch_list(d)
    check_splices(d)
    if "tr-net" in d["methods"] or d["cache_archs"] or d["concurrency"]:
        check_fixed_depth(d, supernet=False)


def _timed(step) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def _models(space, arch, backbone, defn: Definition, seed: int) -> dict[str, torch.nn.Module]:
    """The requested methods of ``arch`` (same initial weights for every mode: seeded build)."""
    out = {}
    if "original" in defn["methods"]:
        torch.manual_seed(seed)
        out["original"] = space.build_network(arch)
    if "tr-net" in defn["methods"]:
        torch.manual_seed(seed)
        out[f"tr-net-{defn['i']}-{defn['j']}"] = build_tr_net(space.build_network(arch), copy.deepcopy(backbone),
                                                              defn["i"], defn["j"])
    return out


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
        load = os.getloadavg()[0]
        rows = []
        for n, (label, arch) in enumerate(candidates(defn)):
            steps, times = {}, {}
            for mode in defn["modes"]:
                cfg = ORIGINAL.with_mode(mode)
                for m, model in _models(space, arch, backbone, defn, defn["seed"] + n).items():
                    steps[mode, m] = training_step(model.to(dev), x, y, cfg)
                    times[mode, m] = []
            for r in range(defn["steps"] + 1):
                for key, step in steps.items():
                    t = _timed(step)
                    if r > 0:  # the first round warms up allocators and kernels
                        times[key].append(t)
            for (mode, m), ts in times.items():
                rows.append({"selection": label, "arch_str": space.format(arch), "method": m, "mode": mode,
                             "batch_size": b, "median_step_s": statistics.median(ts),
                             "images_per_s": b / statistics.median(ts), "steps": len(ts),
                             "threads": torch.get_num_threads()})
        df = pd.DataFrame(rows).assign(device=device_name(str(dev)), default_mode=default_mode(dev),
                                       load_1min_start=load, load_1min_end=os.getloadavg()[0],
                                       **run_meta(defn, batch_id, defn["seed"]))
        speed = _speed(defn, space, backbone, dev)
    finally:
        torch.set_num_threads(before)
    store.append("throughput", df)
    text = summary(df, defn.name)
    if len(speed):
        store.append("speed", speed.assign(device=device_name(str(dev)), **run_meta(defn, batch_id, defn["seed"])))
        text += "\n" + speed_summary(speed)
    if defn.get("out"):
        write_text(text, store.root / defn["out"])
    print(text)
    return df


def _speed(defn: Definition, space, backbone, dev: torch.device) -> pd.DataFrame:
    """The optional measurements (cache speed-up, K at once) in the device's default mode unless listed."""
    cands, mode = candidates(defn), default_mode(dev)
    rows = []
    if defn["cache_archs"]:
        data = load_dataset("cifar10-valid", device=dev)  # the embedded images' valid split
        rows += eval_cache_rows(space, cands[:defn["cache_archs"]], backbone, data, defn["i"], defn["j"],
                                defn["cache_modes"] or [mode], defn["cache_rounds"], defn["seed"])
    if defn["concurrency"]:
        rows += concurrent_rows(space, [a for _, a in cands], defn["concurrency"], ORIGINAL.with_mode(mode),
                                defn["batch_size"], defn["steps"], dev, defn["seed"])
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, name: str) -> str:
    """Markdown: mean images/s per (architectures, method, mode), and each mode's speed-up over
    the first mode's (fp32 in the shipped definition) for the same architectures and method."""
    df = df.assign(selection=df["selection"].where(df["selection"] == "random", "listed"))
    agg = df.groupby(["selection", "method", "mode"], sort=False)["images_per_s"].agg(["size", "mean"]).reset_index()
    first = df["mode"].iloc[0]
    base = agg[agg["mode"] == first].set_index(["selection", "method"])["mean"]
    rows = [[r.selection, r.method, r.mode, r.size, f"{r.mean:.1f}", f"{r.mean / base[r.selection, r.method]:.2f}x"]
            for r in agg.itertuples(index=False)]
    r0 = df.iloc[0]
    return "\n\n".join([
        f"# {name}: training-step throughput, batch {r0['batch_size']} ({r0['device']}, {r0['threads']} threads)",
        f"Median of {r0['steps']} interleaved steps per model after 1 warm-up round; random-init weights; "
        f"1-minute load {r0['load_1min_start']:.2f} at start, {r0['load_1min_end']:.2f} at end; "
        f"listed = the `arch_list` architectures, random = mean over the random ones. "
        + (f"Default training mode on this device: {r0['default_mode']}." if "default_mode" in df else ""),
        markdown_table(["architectures", "method", "mode", "n", "images/s", f"vs {first}"], rows)]) + "\n"


KIND = Kind(KindSpec("throughput", SCHEMA, DEFAULTS, validate), run)
