"""The paper's own Table 1 protocol (``benchmarks/nb201-table1-paper.toml``), rebuilt from whatever
``train`` rows exist: N grows run after run, and the report says what it is.

Original is NB201's own 12-epoch training (the table's ``nb201-12ep-val``, the paper's "Original"
column); Tr-Net-5-5 is ours, trained at full size. Both are ranked against the 200-epoch test
accuracy on the same N architectures, with 95% bootstrap intervals over the architectures and
the paired difference (Tr-Net minus Original, both resampled on the same architectures). The cost
side comes from ``nb201-table1-paper-cost`` (Original and Tr-Net-5-5 both trained at full size, in
turns, on the first architectures of the same order).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.reference import PAPER_MEMORY, PAPER_RANK
from harness.stats import LEVEL, RESAMPLES, paired_rank_difference, rank_interval, verdict
from harness.store.files import write_png, write_text
from harness.store.markdown import markdown_table
from harness.store.tables import col, read_results
from harness.tabular.nb201 import NB201Table

BENCHMARK, COST = "nb201-table1-paper", "nb201-table1-paper-cost"
ORIGINAL, TRNET, TABLE_ORIGINAL = "original", "tr-net-5-5", "nb201-12ep-val"
DATASET, TRAIN_IMAGES = "cifar10", 25000
#: N the report extrapolates the interval width to (an interval shrinks like 1/sqrt(N)).
SCALE_N = (40, 100, 200, 1000)


def paper_rows(train: "pd.DataFrame | None", benchmark: str = BENCHMARK) -> pd.DataFrame:
    """The finished full-size Tr-Net-5-5 candidates of ``benchmark``: one row per architecture (the
    first trained; a later duplicate would be a bug the resume test guards against)."""
    if train is None or "benchmark" not in train:
        return pd.DataFrame()
    t = train[(train["benchmark"] == benchmark) & (train["method"] == TRNET) & (train["n_train"] == TRAIN_IMAGES)]
    return t.drop_duplicates(subset=["arch_index"], keep="first")


def _nb201_12ep_val(archs: np.ndarray) -> np.ndarray:
    table = NB201Table.load()
    return table.column(DATASET, "val_acc", 12)[archs]


def paper_figures(train: "pd.DataFrame | None", benchmark: str = BENCHMARK) -> "dict | None":
    """The numbers the report shows; None while fewer than 2 architectures are trained."""
    t = paper_rows(train, benchmark)
    if len(t) < 2:
        return None
    archs = t["arch_index"].astype(int).to_numpy()
    truth = NB201Table.load().ground_truth(DATASET)[archs]
    tr, orig = t["val_acc"].to_numpy(float), _nb201_12ep_val(archs)
    ivs = {TRNET: rank_interval(tr, truth), ORIGINAL: rank_interval(orig, truth)}
    d = paired_rank_difference(tr, orig, truth, resamples=RESAMPLES)
    return {"n": len(t), "archs": archs, "truth": truth, "values": {TRNET: tr, ORIGINAL: orig}, "intervals": ivs,
            "paired": d, "verdict": verdict("Tr-Net-5-5", "Original", d.krocc, len(t)),
            "wall_s": col(t, "wall_s").to_numpy(float),
            "compiled": int(t["compiled"].eq(True).sum()) if "compiled" in t else 0,  # null: before the column
            "devices": t["device"].astype(str).value_counts().to_dict(),
            "commit": str(t["commit"].iloc[-1]), "config": str(t["config"].iloc[-1])}


def cost_figures(train: "pd.DataFrame | None") -> "dict | None":
    """Original vs Tr-Net-5-5 at full size on the architectures both trained in the cost run."""
    if train is None or "benchmark" not in train:
        return None
    t = train[(train["benchmark"] == COST) & (train["n_train"] == TRAIN_IMAGES)]
    by = {m: t[t["method"] == m].drop_duplicates("arch_index").set_index("arch_index") for m in (ORIGINAL, TRNET)}
    both = sorted(set(by[ORIGINAL].index) & set(by[TRNET].index))
    if not both:
        return None
    o, r = by[ORIGINAL].loc[both], by[TRNET].loc[both]
    ours = o["val_acc"].to_numpy(float)
    table = _nb201_12ep_val(np.asarray(both, dtype=int))
    main = paper_rows(train).set_index("arch_index")
    seeds = sorted(set(by[TRNET].index) & set(main.index))
    return {"n": len(both), "wall_ratio": col(r, "wall_s").sum() / col(o, "wall_s").sum(),
            "wall": (col(o, "wall_s").sum(), col(r, "wall_s").sum()),
            "arch_ratios": (col(r, "wall_s") / col(o, "wall_s")).to_numpy(float),
            # The cost run trains Tr-Net with another seed: on the architectures both runs have, the
            # difference is seed noise at full size (what a rank difference has to exceed).
            "seed_diff": by[TRNET].loc[seeds, "val_acc"].to_numpy(float) - main.loc[seeds, "val_acc"].to_numpy(float),
            "saved_ratio": col(o, "saved_bytes").mean() / col(r, "saved_bytes").mean(),
            "saved": (col(o, "saved_bytes").mean(), col(r, "saved_bytes").mean()),
            "rss": (col(o, "peak_rss_bytes").max(), col(r, "peak_rss_bytes").max()),
            "ours_minus_table": ours - table, "archs": both}


def paper_report(results_dir: "str | Path") -> "tuple[str, dict] | None":
    res = read_results(results_dir, ("train",))
    fig = paper_figures(res["train"])
    if fig is None:
        return None
    n, d, ivs = fig["n"], fig["paired"], fig["intervals"]
    ref = {m: PAPER_RANK[("Table 1", name)][DATASET] for m, name in ((ORIGINAL, "Original"), (TRNET, "Tr-Net-5-5"))}
    minutes = fig["wall_s"] / 60
    half = (d.krocc.high - d.krocc.low) / 2
    rows = [
        ["N architectures (fixed seeded order)", "1000", f"{n}"],
        ["KROCC, Original (NB201's 12-epoch training, the table)", f"{ref[ORIGINAL][0]:.4f}", ivs[ORIGINAL]["krocc"].text()],
        ["KROCC, Tr-Net-5-5 (ours: 18 epochs, 13 warmup, 25k images)", f"{ref[TRNET][0]:.4f}", ivs[TRNET]["krocc"].text()],
        ["KROCC gain, Tr-Net-5-5 − Original (paired)", f"{ref[TRNET][0] - ref[ORIGINAL][0]:+.4f}",
         f"{d.krocc.text()}, p = {d.krocc_p:.3f}"],
        ["SROCC, Original", f"{ref[ORIGINAL][1]:.4f}", ivs[ORIGINAL]["srocc"].text()],
        ["SROCC, Tr-Net-5-5", f"{ref[TRNET][1]:.4f}", ivs[TRNET]["srocc"].text()],
        ["SROCC gain (paired)", f"{ref[TRNET][1] - ref[ORIGINAL][1]:+.4f}", f"{d.srocc.text()}, p = {d.srocc_p:.3f}"],
        ["verdict (KROCC)", "Tr-Net-5-5 better", fig["verdict"]],
        ["Tr-Net-5-5 validation accuracy, mean [min, max]", "–",
         f"{fig['values'][TRNET].mean():.2f}% [{fig['values'][TRNET].min():.2f}, {fig['values'][TRNET].max():.2f}]"],
        ["minutes per Tr-Net-5-5 candidate, median [min, max]; all so far; trained through torch.compile", "–",
         f"{np.median(minutes):.1f} [{minutes.min():.1f}, {minutes.max():.1f}]; {minutes.sum() / 60:.1f} h; "
         f"{fig['compiled']} of {n}"],
        [f"{LEVEL:.0%} half-width of the KROCC gain at N (this run's, scaled by sqrt(n / N))", "–",
         ", ".join(f"N = {N}: ±{half * np.sqrt(n / N):.3f}" for N in SCALE_N) if np.isfinite(half) else "–"],
    ]
    cost = cost_figures(res["train"])
    if cost is not None:
        o, r = cost["wall"]
        rows += [
            [f"training time, Tr-Net-5-5 / Original, full size, in turns ({cost['n']} archs); per architecture",
             "< 1 (Sec. 4.1)", f"{cost['wall_ratio']:.3f} ({r / 60:.0f} min / {o / 60:.0f} min); "
             + ", ".join(f"{v:.2f}" for v in cost["arch_ratios"])],
            ["saved-for-backward bytes of one step, Original / Tr-Net-5-5 (batch 256)",
             f"{PAPER_MEMORY['original_gb'] / PAPER_MEMORY['trnet_5_5_gb']:.2f} (Table 2, GPU memory)",
             f"{cost['saved_ratio']:.2f} ({cost['saved'][0] / 1e6:.0f} MB / {cost['saved'][1] / 1e6:.0f} MB)"],
            ["peak RSS of one training run, Original / Tr-Net-5-5", "–",
             f"{cost['rss'][0] / 1e6:.0f} MB / {cost['rss'][1] / 1e6:.0f} MB"],
            ["our Original (12 epochs, full size) minus NB201's 12-epoch val accuracy, same archs", "–",
             ", ".join(f"{v:+.2f}" for v in cost["ours_minus_table"]) + " points"],
            ["Tr-Net-5-5 validation accuracy, training seed 1 (cost run) minus seed 0 (this run), same archs", "–",
             ", ".join(f"{v:+.2f}" for v in cost["seed_diff"]) + " points" if len(cost["seed_diff"]) else "–"],
        ]
    else:
        rows.append(["training time and memory at full size", "–",
                     f"not yet measured (`{COST}` has no architecture trained by both methods)"])
    text = "\n\n".join([
        f"# Table 1, the paper's protocol, on this machine: N = {n} architectures so far ({DATASET})",
        "Tr-Net-5-5 is trained as the paper trains it (Sec. 4.1): 18 epochs with 13 linear warmup, the cosine "
        "annealed after warmup, batch 256, NB201's recipe, on the whole 25k cifar10-valid train half (all 60k shipped "
        "CIFAR-10 images, JPEG), the first 5 cells replaced by the first 5 blocks of the frozen shipped ResNet-32 "
        "(200 epochs on the same train half), scored on the whole 25k valid half. Original is NB201's own 12-epoch "
        "training of the same architectures (the table, as in the paper). Ground truth: the 200-epoch test accuracy "
        f"(seed mean). Intervals: {LEVEL:.0%} bootstrap over the architectures ({RESAMPLES} resamples); the gain is "
        f"paired, its p-value two-sided. Devices (candidates trained on each): "
        + ", ".join(f"`{d}` ({k})" for d, k in fig["devices"].items()) + f"; latest commit `{fig['commit']}`. The paper's column is "
        "its Table 1 (1,000 architectures, GPU); ours grows with every run (`make bench-table1-paper`).",
        markdown_table(["", "paper Table 1", f"this machine, N = {n}"], rows),
        f"Training config of the latest candidate: `{fig['config']}`"])
    return text + "\n", fig


def paper_plot(fig: dict, path: Path) -> Path:
    f = Figure(figsize=(10, 4.2))
    for k, (m, label) in enumerate(((ORIGINAL, "Original: NB201 12-epoch validation accuracy"),
                                    (TRNET, "Tr-Net-5-5: ours, full size"))):
        ax = f.add_subplot(1, 2, k + 1)
        ax.scatter(fig["truth"], fig["values"][m], s=14, color=("tab:blue", "tab:orange")[k])
        ax.set_xlabel("NB201 200-epoch test accuracy (%)")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"{label}\nKROCC {fig['intervals'][m]['krocc'].text()}", fontsize=9)
        ax.grid(alpha=0.3)
    f.suptitle(f"{BENCHMARK}: N = {fig['n']} architectures, {DATASET}", fontsize=10)
    f.tight_layout()
    return write_png(f, path)


def write_table1_paper(results_dir: "str | Path") -> list[Path]:
    """``table1/nb201-table1-paper.md`` and its scatter plot, when at least 2 architectures exist."""
    out = paper_report(results_dir)
    if out is None:
        return []
    text, fig = out
    folder = Path(results_dir) / "table1"
    plot = paper_plot(fig, folder / f"{BENCHMARK}_scatter.png")
    return [write_text(text + f"\n![{plot.name}]({plot.name})\n", folder / f"{BENCHMARK}.md"), plot]

