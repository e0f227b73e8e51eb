"""Where a Table 1 training step spends its time: Original vs Tr-Net-5-5, split into data
(augmentation + normalisation of one batch), the frozen prefix's forward, and the trainable part's
forward + backward + optimizer step, on the first architectures of the Table 1 draw.

    python scripts/profile_table1_step.py [--archs 5] [--rounds 5] [--out results/table1/profile.md]

Every figure is the median over ``rounds`` interleaved, warmed rounds (Original, then Tr-Net, per
round), in the device's default training mode, batch 256 of real CIFAR-10 images; the backbone is
an untrained ResNet-32 (its weights do not change the arithmetic).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.backbones.resnet import build_backbone
from harness.data.augment import batches
from harness.data.datasets import load_dataset
from harness.proxies.settings import TrainSettings
from harness.spaces import get_space
from harness.store.files import write_text
from harness.store.markdown import markdown_table
from harness.train.loop import in_format, make_optimizer, prepare, training_loss
from harness.transfer.splice import build_tr_net


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def profile(archs: int, rounds: int) -> tuple[list[list], dict]:
    space = get_space("nb201")
    data = load_dataset("cifar10-valid", limit={"train": 256, "valid": 16, "test": 16})
    cfg = TrainSettings().config("original")
    gen = torch.Generator().manual_seed(0)
    x, y = next(iter(batches(data.train, 256, train=True, mean=data.mean, std=data.std, pad=data.pad, generator=gen)))
    x = in_format(x, cfg)
    draw = np.random.default_rng(0).choice(15625, size=archs, replace=False)
    rows, totals = [], {"data": [], "orig": [], "prefix": [], "tail": []}
    for a in draw:
        arch = space.canonical(int(a))
        torch.manual_seed(0)
        orig = prepare(space.build_network(arch, num_classes=10), cfg)
        tr = prepare(build_tr_net(space.build_network(arch, num_classes=10), build_backbone("resnet32", 10), i=5, j=5),
                     cfg)
        opt_o, opt_t = make_optimizer(orig, cfg), make_optimizer(tr, cfg)

        def step_orig():
            opt_o.zero_grad(set_to_none=True)
            training_loss(orig(x), y, cfg).backward()
            opt_o.step()

        feats = {}

        def prefix():
            with torch.no_grad():
                feats["f"] = tr.prefix.outputs(x, tr.tail.inputs)

        def tail():
            opt_t.zero_grad(set_to_none=True)
            training_loss(tr.tail(feats["f"]), y, cfg).backward()
            opt_t.step()

        def data_step():
            next(iter(batches(data.train, 256, train=True, mean=data.mean, std=data.std, pad=data.pad, generator=gen)))

        orig.train()
        tr.train()
        for f in (step_orig, prefix, tail, data_step):  # warm-up round
            f()
        t = {k: [] for k in totals}
        for _ in range(rounds):
            t["orig"].append(_timed(step_orig))
            t["prefix"].append(_timed(prefix))
            t["tail"].append(_timed(tail))
            t["data"].append(_timed(data_step))
        med = {k: float(np.median(v)) for k, v in t.items()}
        for k in totals:
            totals[k].append(med[k])
        tr_step = med["prefix"] + med["tail"]
        rows.append([space.format(arch), f"{med['data'] * 1e3:.0f}", f"{med['orig'] * 1e3:.0f}",
                     f"{med['prefix'] * 1e3:.0f}", f"{med['tail'] * 1e3:.0f}", f"{tr_step / med['orig']:.2f}",
                     f"{18 * (tr_step + med['data']) / (12 * (med['orig'] + med['data'])):.2f}"])
    return rows, {k: float(np.mean(v)) for k, v in totals.items()}


def main(argv: "list[str] | None" = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="results/table1/profile.md")
    args = p.parse_args(argv)
    rows, mean = profile(args.archs, args.rounds)
    tr = mean["prefix"] + mean["tail"]
    text = "\n\n".join([
        "# Table 1: where a training step's time goes (batch 256, ms, median of interleaved rounds)",
        f"Written by `scripts/profile_table1_step.py` ({args.archs} architectures of the Table 1 draw, "
        f"{args.rounds} rounds, {torch.get_num_threads()} threads). Tr-Net step = prefix forward + trainable "
        "part; total ratio = 18 Tr-Net epochs over 12 Original epochs, data included.",
        markdown_table(["architecture", "data", "Original step", "Tr-Net prefix fwd", "Tr-Net trainable fwd+bwd+opt",
                        "step ratio", "total ratio (18 / 12 epochs)"], rows),
        f"Mean: data {mean['data'] * 1e3:.0f} ms, Original {mean['orig'] * 1e3:.0f} ms, Tr-Net prefix "
        f"{mean['prefix'] * 1e3:.0f} ms + trainable {mean['tail'] * 1e3:.0f} ms = {tr * 1e3:.0f} ms; step ratio "
        f"{tr / mean['orig']:.2f}, so 18 epochs of Tr-Net cost {18 * tr / (12 * mean['orig']):.2f}x 12 of Original "
        f"(the paper's claim needs a step ratio below 12/18 = 0.67)."])
    print(text)
    write_text(text + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
