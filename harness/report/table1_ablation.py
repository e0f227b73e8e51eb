"""Why the CPU Table 1 says what it says: the ablation over the backbone and the Tr-Net schedule,
the noise ceiling between two training seeds, and what each trained proxy favours.

Built from the ``train`` rows of the 40 architectures of ``benchmarks/nb201-table1-cpu.toml`` and
its ablation cells (``benchmarks/ablations/nb201-table1-cpu-*.toml``), grouped by what the rows
themselves record rather than by benchmark name: a Tr-Net-5-5 cell is one (backbone checkpoint,
cosine period) pair, so the earlier run's rows (a 5-epoch backbone pre-trained in fp32, the
cosine over all 18 epochs) are a cell of their own beside this round's. Original is trained once
(seed 0) and shared by every cell; every cell's gain over it is paired on the same architectures.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.stats import LEVEL, RESAMPLES, paired_rank_difference, rank_interval, verdict
from harness.store.files import write_png, write_text
from harness.store.markdown import markdown_table
from harness.store.tables import read_results
from harness.tabular.nb201 import NB201Table

#: The benchmarks whose rows the ablation reads (the default cell and the others).
CELLS = ("nb201-table1-cpu", "nb201-table1-cpu-bb5-all_epochs", "nb201-table1-cpu-bb5-after_warmup",
         "nb201-table1-cpu-all_epochs", "nb201-table1-cpu-seed1")
ORIGINAL, TRNET, DATASET = "original", "tr-net-5-5", "cifar10"
N_TRAIN = 768  # the CPU Table 1's images per candidate


def _rows(train: "pd.DataFrame | None") -> pd.DataFrame:
    if train is None or "benchmark" not in train:
        return pd.DataFrame()
    t = train[train["benchmark"].isin(CELLS) & (train["n_train"] == N_TRAIN)].copy()
    t["seed"] = t["seed"].fillna(0).astype(int)
    t["period"] = t["config"].map(lambda c: json.loads(c).get("cosine_period", "all_epochs"))
    meta = t["backbone_meta"].map(lambda m: json.loads(m) if isinstance(m, str) else {})
    t["bb_epochs"] = meta.map(lambda m: m.get("epochs"))
    t["bb_val"] = meta.map(lambda m: m.get("val_acc"))
    t["bb_mode"] = meta.map(lambda m: m.get("mode") or ("fp32" if not m.get("config", {}).get("channels_last") else
                                                        "channels_last"))
    return t


def convs(arch_str: str) -> int:
    """Convolutions in an NB201 cell (each cell of the network has the same ops)."""
    return arch_str.count("conv")


def _vals(rows: pd.DataFrame, archs: list[int]) -> np.ndarray:
    return rows.drop_duplicates("arch_index", keep="last").set_index("arch_index").loc[archs, "val_acc"].to_numpy(float)


def ablation(results_dir: "str | Path") -> "dict | None":
    """The ablation's numbers: cells, noise ceiling, favours; None without Original rows."""
    t = _rows(read_results(results_dir, ("train",))["train"])
    if t.empty:
        return None
    orig = t[(t["method"] == ORIGINAL) & (t["seed"] == 0)].drop_duplicates("arch_index", keep="last")
    if len(orig) < 2:
        return None
    truth = NB201Table.load().ground_truth(DATASET)
    cells = []
    tr = t[(t["method"] == TRNET) & (t["seed"] == 0)]
    for (sha, period), g in tr.groupby(["backbone_sha256", "period"], sort=False):
        archs = sorted(set(g["arch_index"].astype(int)) & set(orig["arch_index"].astype(int)))
        if len(archs) < 2:
            continue
        a, o, gt = _vals(g, archs), _vals(orig, archs), truth[archs]
        d = paired_rank_difference(a, o, gt, resamples=RESAMPLES)
        first = g.iloc[0]
        cells.append({"backbone": f"{int(first['bb_epochs'])}-epoch ({first['bb_mode']}, val {first['bb_val']:.1f}%, "
                                  f"sha {str(sha)[:8]})", "bb_epochs": first["bb_epochs"], "period": period,
                      "n": len(archs), "krocc": rank_interval(a, gt)["krocc"], "paired": d,
                      "verdict": verdict("Tr-Net-5-5", "Original", d.krocc, len(archs)), "mean_val": float(a.mean()),
                      "archs": archs, "values": a, "benchmarks": sorted(set(g["benchmark"])),
                      "bb_mode": first["bb_mode"]})
    cells.sort(key=lambda c: (c["bb_epochs"], c["backbone"], c["period"]))  # the 2x2 reads row by row
    o_archs = sorted(orig["arch_index"].astype(int))
    favours = _favours(orig, cells, truth, o_archs)
    return {"n_original": len(orig), "original_krocc": rank_interval(_vals(orig, o_archs), truth[o_archs])["krocc"],
            "cells": cells, "noise": _noise(t), "favours": favours}


def _noise(t: pd.DataFrame) -> list[dict]:
    """Kendall tau between training seeds 0 and 1 of one method and config, on the architectures both trained."""
    out = []
    for method in (ORIGINAL, TRNET):
        m = t[t["method"] == method]
        s1 = m[m["seed"] == 1]
        for (config, sha), g1 in s1.groupby(["config", m["backbone_sha256"].fillna("")], sort=False):
            g0 = m[(m["seed"] == 0) & (m["config"] == config) & (m["backbone_sha256"].fillna("") == sha)]
            archs = sorted(set(g0["arch_index"].astype(int)) & set(g1["arch_index"].astype(int)))
            if len(archs) >= 2:
                iv = rank_interval(_vals(g1, archs), _vals(g0, archs))
                out.append({"method": method, "period": g1["period"].iloc[0], "n": len(archs), "krocc": iv["krocc"]})
    return out


def _favours(orig: pd.DataFrame, cells: list[dict], truth: np.ndarray, archs: list[int]) -> list[dict]:
    """Kendall tau of each method's validation accuracy (and of the ground truth) with the
    architecture's parameter count and its number of convolutions: a proxy that ranks by size
    rather than quality shows a tau with size well above the ground truth's own."""
    o = orig.drop_duplicates("arch_index", keep="last").set_index("arch_index").loc[archs]
    size = {"params": o["params"].to_numpy(float), "convs": o["arch_str"].map(convs).to_numpy(float)}
    series = [("ground truth (200-epoch test)", archs, truth[archs]), ("Original (12 epochs)", archs, o["val_acc"].to_numpy(float))]
    series += [(f"Tr-Net-5-5, {c['backbone']}, {c['period']}", c["archs"], c["values"]) for c in cells]
    out = []
    for label, a, v in series:
        pos = [archs.index(x) for x in a]
        row = {"label": label, "n": len(a)}
        for k, s in size.items():
            row[k] = rank_interval(v, s[pos])["krocc"]
        out.append(row)
    return out


def ablation_sections(fig: dict) -> list[str]:
    """The ablation's three tables as markdown sections (headings included), for ``ablation.md``
    and for the Table 1 report of a benchmark that is one of its cells."""
    rows = [[c["backbone"], c["period"], str(c["n"]), c["krocc"].text(), f"{c['paired'].krocc.text()}",
             f"{c['paired'].krocc_p:.3f}", f"{c['mean_val']:.1f}%", c["verdict"]] for c in fig["cells"]]
    noise = [[r["method"], r["period"], str(r["n"]), r["krocc"].text()] for r in fig["noise"]] or \
        [["–", "–", "0", "not yet measured (`nb201-table1-cpu-seed1`)"]]
    fav = [[r["label"], str(r["n"]), r["params"].text(), r["convs"].text()] for r in fig["favours"]]
    return [
        "## Backbone x schedule",
        f"Original (12 epochs, seed 0, n = {fig['n_original']}) KROCC {fig['original_krocc'].text()}, trained once and "
        "shared by every cell. A cell is one (backbone, Tr-Net cosine period) pair read from the rows themselves; the "
        f"gain is Tr-Net-5-5 minus Original KROCC, paired over the same architectures, with its {LEVEL:.0%} bootstrap "
        "interval and two-sided p. `all_epochs`: the cosine over all 18 epochs (the last at 88% of the peak rate); "
        "`after_warmup`: annealed to ~0 over the 5 epochs after warmup.",
        markdown_table(["backbone", "Tr-Net schedule", "n", "Tr-Net-5-5 KROCC", "paired gain vs Original", "p",
                        "Tr-Net mean val acc", "verdict"], rows),
        "## Noise ceiling: the same method trained with two seeds",
        "Kendall tau between the validation accuracies of training seeds 0 and 1 on the same architectures: no "
        "proxy of this budget can agree with the ground truth better than with itself.",
        markdown_table(["method", "schedule", "n", "tau(seed 0, seed 1)"], noise),
        "## What each proxy favours",
        "Kendall tau of the validation accuracy with the architecture's parameter count and its number of "
        "convolutions, beside the ground truth's own: a proxy that ranks by size more than the truth does shows here.",
        markdown_table(["ranking", "n", "tau with #params", "tau with #convs"], fav)]


def ablation_report(results_dir: "str | Path") -> "tuple[str, dict] | None":
    fig = ablation(results_dir)
    if fig is None:
        return None
    text = "\n\n".join([
        "# Table 1 on a CPU: the ablation behind the answer",
        f"The {fig['n_original']} architectures, images (768 train / 1,000 valid per candidate) and arithmetic of "
        "`nb201-table1-cpu`, and its cells (`benchmarks/ablations/nb201-table1-cpu-*.toml`, `make bench-table1-ablation`).",
        *ablation_sections(fig)])
    return text + "\n", fig


def ablation_appendix(fig: "dict | None", benchmark: str) -> str:
    """For the Table 1 report of a benchmark that is one of the cells: why it says what it says
    (``fig`` = :func:`ablation`'s tables, the noise ceiling, what each proxy favours, the plot); ""
    otherwise."""
    if benchmark not in CELLS or not fig or not fig["cells"]:
        return ""
    return "\n" + "\n\n".join(["# The ablation behind this answer (`make bench-table1-ablation`, also in "
                                "[ablation.md](ablation.md))", *ablation_sections(fig),
                                "![ablation.png](ablation.png)"]) + "\n"


def ablation_plot(fig: dict, path: Path) -> Path:
    f = Figure(figsize=(11, 4.4))
    ax = f.add_subplot(1, 2, 1)
    cells = fig["cells"]
    for k, c in enumerate(cells):
        d = c["paired"].krocc
        ax.errorbar([k], [d.estimate], yerr=[[d.estimate - d.low], [d.high - d.estimate]], fmt="o", capsize=4,
                    color="tab:orange" if c["period"] == "after_warmup" else "tab:gray")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(cells)), [f"bb {int(c['bb_epochs'])} ep {c['bb_mode'].replace('channels_last', 'CL')}\n{c['period']}"
                             for c in cells], fontsize=8)
    ax.set_ylabel(f"KROCC gain, Tr-Net-5-5 − Original ({LEVEL:.0%} CI)")
    ax.set_title("backbone x schedule (paired over architectures)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax = f.add_subplot(1, 2, 2)
    fav = fig["favours"]
    x = np.arange(len(fav))
    for k, (key, color) in enumerate((("params", "tab:blue"), ("convs", "tab:green"))):
        est = [r[key].estimate for r in fav]
        ax.bar(x + (k - 0.5) * 0.38, est, width=0.38, color=color, label=f"tau with #{key}")
    ax.set_xticks(x, [r["label"].split(",")[0] + ("\n" + r["label"].split(", ")[-1] if "," in r["label"] else "")
                      for r in fav], fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("what each ranking favours", fontsize=9)
    ax.legend(fontsize=8)
    f.tight_layout()
    return write_png(f, path)


def write_table1_ablation(results_dir: "str | Path") -> list[Path]:
    """``table1/ablation.md`` and ``table1/ablation.png`` when the cells have rows."""
    out = ablation_report(results_dir)
    if out is None or not out[1]["cells"]:
        return []
    text, fig = out
    folder = Path(results_dir) / "table1"
    plot = ablation_plot(fig, folder / "ablation.png")
    return [write_text(text + f"\n![{plot.name}]({plot.name})\n", folder / "ablation.md"), plot]
