"""Kind ``memory``: bytes saved for backward in one training step, Original vs Tr-Net-i-j.

The paper's Table 2 reports allocated GPU memory (NB201: 1.12 GB vs 0.53 GB, 2.11x); the
device-independent part of that gap is what autograd keeps for backward, measured exactly here
(:class:`harness.measure.memory.SavedTensorCounter`) for the listed architectures and ``archs``
seeded random ones, with random-init weights (byte counts do not depend on weight values). On
CUDA each step's ``max_memory_allocated`` peak is recorded too. With ``supernet = true`` the pair
is the space's supernet vs Tr-Supernet-i-j instead (DARTS: paper Table 5, 8.12 vs 4.64 GB).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from harness.backbones.resnet import build_backbone
from harness.definition.schema import BOOL, INT, LIST_STR, Definition, Kind, KindSpec
from harness.measure.memory import step_figures
from harness.runinfo import default_device, device_name
from harness.sections.context import backbone_settings, run_meta
from harness.sections.schema import BACKBONE_SCHEMA, check_arch_list, check_sections
from harness.sections.splices import check_fixed_depth, check_splices
from harness.spaces import get_space
from harness.store.results import ResultsStore, check_declared
from harness.train.loop import training_step
from harness.train.recipe import ORIGINAL
from harness.transfer.splice import build_tr_net, build_tr_supernet

SCHEMA = {"batch_size": INT, "archs": INT, "arch_list": LIST_STR, "seed": INT, "i": INT, "j": INT,
          "supernet": BOOL, "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "batch_size": 256, "archs": 50, "seed": 0, "i": 5, "j": 5, "supernet": False,
            "backbone": {}}


def validate(d: Definition) -> None:
    check_sections(d)
    check_arch_list(d)
    check_splices(d)
    check_fixed_depth(d, supernet=d["supernet"])


def candidates(defn: Definition) -> list[tuple[str, object]]:
    """(label, arch): the listed architectures, then ``archs`` random ones drawn with ``seed``."""
    space = get_space(defn["space"])
    rng = np.random.default_rng(defn["seed"])
    listed = [(space.format(space.canonical(a)), space.canonical(a)) for a in defn.get("arch_list", [])]
    return listed + [("random", space.random(rng)) for _ in range(defn["archs"])]


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    space = get_space(defn["space"])
    dev = default_device()
    i, j = defn["i"], defn["j"]
    torch.manual_seed(defn["seed"])
    supernet = defn["supernet"]  # the space's supernet vs Tr-Supernet-i-j (one row; archs unused)
    trnet = f"tr-{'supernet' if supernet else 'net'}-{i}-{j}"
    check_declared("memory", [f"{trnet}/saved_bytes"])  # fail before measuring, not when storing the rows
    archs = [("supernet", None)] if supernet else candidates(defn)
    backbone = build_backbone(backbone_settings(defn).name).to(dev)  # one frozen prefix shared by all Tr-Nets
    x = torch.randn(defn["batch_size"], 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (defn["batch_size"],), device=dev)
    rows = []
    for label, arch in archs:
        row = {"selection": label, "arch_str": "supernet" if supernet else space.format(arch),
               "batch_size": defn["batch_size"]}
        models = ((("original", space.build_supernet()), (trnet, build_tr_supernet(space.build_supernet(), backbone, i, j)))
                  if supernet else
                  (("original", space.build_network(arch)), (trnet, build_tr_net(space.build_network(arch), backbone, i, j))))
        for method, model in models:
            model = model.to(dev)
            step = training_step(model, x, y, ORIGINAL) if dev.type == "cuda" else None
            for fig, value in step_figures(model, x, y, step).items():
                row[f"{method}/{fig}"] = value
            del model
        row["saved_ratio"] = row["original/saved_bytes"] / row[f"{trnet}/saved_bytes"]
        rows.append(row)
    df = pd.DataFrame(rows).assign(tr_method=trnet, device=device_name(str(dev)), **run_meta(defn, batch_id, defn["seed"]))
    store.append("memory", df)
    for label, g in df.groupby("selection", sort=False):
        ratio = g["original/saved_bytes"].mean() / g[f"{trnet}/saved_bytes"].mean()
        print(f"{defn.name}: {label if label == 'random' else 'listed ' + label[:40]} ({len(g)} archs): saved for "
              f"backward {g['original/saved_bytes'].mean() / 2**30:.3f} vs {g[f'{trnet}/saved_bytes'].mean() / 2**30:.3f}"
              f" GiB, ratio {ratio:.2f}x")
    return df


KIND = Kind(KindSpec("memory", SCHEMA, DEFAULTS, validate), run)
