"""Does the fast training mode disturb proxy rankings more than a seed does? (faster
candidate training). Trains the same random NB201 architectures as Original on a tiny budget three
times -- fp32 seed 0, fp32 seed 1, ``--fast`` mode seed 0 -- appends every run to the store's
``train`` table (benchmark ``precision-ranking``, one batch), and writes
``<results>/precision-ranking.md`` with Kendall's tau (tau-b) of validation accuracy between
fp32/seed0 vs fp32/seed1 (the seed's disturbance) and fp32/seed0 vs fast/seed0 (the mode's).
Runs are interleaved per architecture, so all three see the same machine load.

    .venv/bin/python scripts/precision_ranking.py --archs 20 --limit 256 --epochs 2
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from harness.bench.runner import new_batch_id
from harness.data.datasets import load_dataset
from harness.proxies.training import train_candidate
from harness.spaces import get_space
from harness.store.files import write_text
from harness.store.results import ResultsStore
from harness.train.recipe import MODES, ORIGINAL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--limit", type=int, default=256, help="images per split")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--fast", default="bf16+channels_last", choices=MODES)
    ap.add_argument("--seed", type=int, default=0, help="draws the architectures")
    ap.add_argument("--results", default="results")
    args = ap.parse_args()
    space, data = get_space("nb201"), load_dataset("cifar10-valid", limit=args.limit)
    rng = np.random.default_rng(args.seed)
    archs = [space.random(rng) for _ in range(args.archs)]
    base = ORIGINAL.with_(epochs=args.epochs, batch_size=args.batch_size)
    runs = {"fp32/seed0": (base.with_mode("fp32"), 0), "fp32/seed1": (base.with_mode("fp32"), 1),
            f"{args.fast}/seed0": (base.with_mode(args.fast), 0)}
    batch, store, load0, t0 = new_batch_id("precision-ranking"), ResultsStore(args.results), os.getloadavg()[0], time.time()
    rows = []
    for n, arch in enumerate(archs):
        for run, (cfg, seed) in runs.items():
            row = train_candidate(space, arch, "original", data, cfg=cfg, seed=seed, progress=False)
            rows.append({**row, "benchmark": "precision-ranking", "batch_id": batch, "study_run": run})
            print(f"{n + 1}/{len(archs)} {run:<24} val {row['val_acc']:.2f}% {row['wall_s']:.1f} s", flush=True)
        store.append("train", rows[-len(runs):])
    df = pd.DataFrame(rows)
    acc = df.pivot_table(index="arch_str", columns="study_run", values="val_acc")
    wall = df.groupby("study_run")["wall_s"].mean()
    names = list(runs)
    tau_seed = kendalltau(acc[names[0]], acc[names[1]]).statistic
    tau_mode = kendalltau(acc[names[0]], acc[names[2]]).statistic
    text = "\n\n".join([
        "# Ranking disturbance of the fast training mode vs a seed change",
        f"{args.archs} random NB201 architectures (seed {args.seed}) trained as Original on cifar10-valid, first "
        f"{args.limit} images per split, {args.epochs} epochs, batch {args.batch_size}; batch `{batch}`; 1-minute "
        f"load {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; {time.time() - t0:.0f} s.",
        "| comparison | Kendall tau (val acc) |\n|---|---:|\n"
        f"| {names[0]} vs {names[1]} (seed only) | {tau_seed:.3f} |\n"
        f"| {names[0]} vs {names[2]} (mode only) | {tau_mode:.3f} |",
        "| run | mean train wall s | mean val acc |\n|---|---:|---:|\n" + "\n".join(
            f"| {r} | {wall[r]:.2f} | {acc[r].mean():.2f} |" for r in names),
        f"Verdict: the fast mode disturbs rankings {'no more' if tau_mode >= tau_seed else 'MORE'} than a seed "
        f"(tau {tau_mode:.3f} vs {tau_seed:.3f})."])
    write_text(text + "\n", f"{args.results}/precision-ranking.md")
    print(text)


if __name__ == "__main__":
    main()
