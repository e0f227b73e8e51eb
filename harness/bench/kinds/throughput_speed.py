"""Speed measurements beyond one training step, run by the ``throughput`` kind when asked:

* :func:`eval_cache_rows` -- Tr-Net-i-j evaluation on the valid split with the frozen prefix's
  feature cache (:class:`harness.transfer.cache.PrefixFeatureCache`) vs without. The prefix is the
  same frozen backbone blocks for every candidate (paper Sec. 3.2), so after one pass that fills
  the cache, each candidate's evaluation runs only its tail. Per architecture the plain and the
  cached evaluation alternate ``rounds`` times (same machine load for both); the one-time fill is
  timed separately, and the two accuracies must be identical.
* :func:`concurrent_rows` -- training images/s of the same candidates trained K at a time on one
  device (:func:`harness.train.concurrent.run_concurrently`): NB201 networks at batch 256 leave most
  of a GPU idle. Every K trains the same models for the same steps, so only K differs.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Any, Callable

import pandas as pd
import torch

from harness.data.datasets import Dataset
from harness.spaces import SearchSpace
from harness.store.markdown import markdown_table
from harness.train.concurrent import run_concurrently
from harness.train.loop import evaluate, prepare, training_step
from harness.train.recipe import ORIGINAL, TrainConfig
from harness.transfer.cache import PrefixFeatureCache
from harness.transfer.splice import build_tr_net


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def eval_cache_rows(space: SearchSpace, candidates: list[tuple[str, Any]], backbone: torch.nn.Module, data: Dataset,
                    i: int, j: int, modes: list[str], rounds: int, seed: int) -> list[dict]:
    """One row per (mode, architecture): median seconds of a Tr-Net-i-j evaluation of
    ``data.valid`` without (``plain_s``) and with (``cached_s``) the feature cache, after the
    mode's one cache fill (``fill_s``); random-init weights (the cost does not depend on them)."""
    dev, rows = data.valid.x.device, []
    for mode in modes:
        cfg = ORIGINAL.with_mode(mode)  # evaluation uses only the precision and the memory format
        cache, shared = PrefixFeatureCache(), copy.deepcopy(backbone).to(dev)  # channels_last converts in place
        fill_s = None
        for n, (label, arch) in enumerate(candidates):
            torch.manual_seed(seed + n)
            net = prepare(build_tr_net(space.build_network(arch), shared, i, j).to(dev), cfg)
            if fill_s is None:
                fill_s, _ = _timed(lambda: cache.features(net, data, "valid", cfg, f"random-init-{seed}"))
            plain, cached = [], []
            for _ in range(rounds):
                t, plain_acc = _timed(lambda: evaluate(net, data.valid, data, cfg=cfg))
                plain.append(t)
                t, cached_acc = _timed(lambda: cache.evaluate(net, data, "valid", cfg, f"random-init-{seed}"))
                cached.append(t)
            rows.append({"measure": "eval_cache", "selection": label, "arch_str": space.format(arch),
                         "method": f"tr-net-{i}-{j}", "mode": mode, "split": "valid", "n_images": len(data.valid),
                         "rounds": rounds, "plain_s": statistics.median(plain), "cached_s": statistics.median(cached),
                         "speedup": statistics.median(plain) / statistics.median(cached), "fill_s": fill_s,
                         "identical": plain_acc == cached_acc})
    return rows


def concurrent_rows(space: SearchSpace, archs: list, ks: list[int], cfg: TrainConfig, batch_size: int, steps: int,
                    device: torch.device, seed: int) -> list[dict]:
    """One row per K: images/s of ``max(ks)`` candidates (``archs`` cycled), each ``steps``
    training steps on one random batch, K at a time; one warm-up step each before."""
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    n = max(ks)
    models = []
    for m in range(n):  # built one at a time: the worker threads share the global RNG
        torch.manual_seed(seed + m)
        models.append(space.build_network(archs[m % len(archs)]).to(device))
    steps_of = [training_step(model, x, y, cfg, sync=False) for model in models]
    for step in steps_of:
        step()
    jobs = [lambda step=step: [step() for _ in range(steps)] for step in steps_of]
    rows = []
    for k in ks:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, _ = _timed(lambda: run_concurrently(jobs, k, device))
        rows.append({"measure": "concurrent", "concurrent": k, "candidates": n, "mode": cfg.mode,
                     "batch_size": batch_size, "steps": steps, "wall_s": wall,
                     "images_per_s": n * steps * batch_size / wall})
    return rows


def summary(df: pd.DataFrame) -> str:
    """Markdown sections for the rows of :func:`eval_cache_rows` and :func:`concurrent_rows`."""
    out = []
    cache = df[df["measure"] == "eval_cache"] if "measure" in df else df.iloc[:0]
    if len(cache):
        r0 = cache.iloc[0]
        cache = cache.assign(selection=cache["selection"].where(cache["selection"] == "random", "listed"))
        rows = [[sel, mode, len(g), f"{g['plain_s'].sum() / len(g):.3f}", f"{g['cached_s'].sum() / len(g):.3f}",
                 f"{g['plain_s'].sum() / g['cached_s'].sum():.2f}x", f"{g['fill_s'].iloc[0]:.3f}",
                 "yes" if g["identical"].all() else "NO"]
                for (sel, mode), g in cache.groupby(["selection", "mode"], sort=False)]
        out += [f"## {r0['method']} evaluation with the prefix feature cache",
                f"Evaluation of the valid split ({int(r0['n_images'])} images), median of {int(r0['rounds'])} alternating "
                "plain / cached passes per architecture; speed-up = summed plain time / summed cached time; the "
                "cache is filled once per mode (fill, not in the cached times).",
                markdown_table(["architectures", "mode", "n", "plain s", "cached s", "speed-up", "fill s",
                                "identical accuracies"], rows)]
    conc = df[df["measure"] == "concurrent"] if "measure" in df else df.iloc[:0]
    if len(conc):
        r0, base = conc.iloc[0], conc["images_per_s"].iloc[0]
        rows = [[int(r.concurrent), f"{r.images_per_s:.1f}", f"{r.images_per_s / base:.2f}x", f"{r.wall_s:.2f}"]
                for r in conc.itertuples(index=False)]
        out += ["## Candidates trained at once",
                f"{int(r0['candidates'])} candidates, {int(r0['steps'])} training steps each at batch "
                f"{int(r0['batch_size'])} ({r0['mode']}), K at a time; images/s over all of them.",
                markdown_table(["K", "images/s", f"vs K={int(conc['concurrent'].iloc[0])}", "wall s"], rows)]
    return "\n\n".join(out) + ("\n" if out else "")
