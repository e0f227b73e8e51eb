"""Zero-cost proxies in a ``rank`` benchmark: score ``sample`` random architectures with every
``zc:<measure>`` proxy of the definition and rank them against the ground truth.

* The architectures are ``numpy.random.default_rng(seed).choice(N, sample, replace=False)``: the
  same draw a rank run's training proxies use when ``train.archs == sample``.
* Values come from one joint evaluation per architecture (:func:`harness.proxies.zero_cost.joint.score_all`,
  one network built from ``torch.manual_seed(train.seed)``; ``zc:<m>@tr-net-<i>-<j>`` proxies share
  a second joint evaluation of that network's Tr-Net suffix). The cost of each proxy alone is timed on
  the first ``zc_timed`` architectures by running :class:`harness.proxies.zero_cost.ZeroCostProxy`
  (build + proxy), whose value must equal the joint one -- a check on every run.
* Each rank row: KROCC / SROCC over the n architectures (selection ``random-<n>``, one draw), and
  with ``zc_top_k`` = k a second row over the k best of them by ground truth (selection
  ``top-<k>-of-random-<n>``; ``ties`` as for table proxies; its cost is that of scoring all n),
  ``wall_s`` = mean seconds per architecture of the proxy alone, ``total_s`` = ``wall_s * n``
  (what scoring the n architectures with that proxy alone costs), ``joint_s`` = measured seconds of
  the joint evaluation of all of them, ``device``, ``nonfinite``. A non-finite value (NaN from
  jacob_cov, -inf from nwot or zen on a network whose input never reaches its output) ranks below
  every finite one, as a search maximising the proxy would treat it.
* Only images of the table dataset are used: without them (CIFAR-100 and ImageNet16-120 have no
  embedded images) the zero-cost proxies of that dataset are skipped with a printed reason.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from harness.analysis.rank import RankResult, rank_proxy
from harness.definition.schema import Definition
from harness.proxies import ProxyContext, make_proxy
from harness.proxies.settings import TRAIN_DATASET
from harness.proxies.zero_cost.joint import score_all
from harness.proxies.zero_cost.measures import image_family
from harness.store.results import ResultsStore


def images_missing(ctx: ProxyContext) -> "str | None":
    """Why the table dataset's own images are not available here (None when they are)."""
    images = ctx.train.dataset or TRAIN_DATASET.get(ctx.dataset, ctx.dataset)
    if ctx.train.data == "embedded" and image_family(images) != "cifar10":
        return (f"only CIFAR-10 images are embedded; {images} images are needed (run `harness data download "
                f"{images.split('-')[0].lower()}` and set train.data), never CIFAR-10 stand-ins")
    return None


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def rank_zero_cost(defn: Definition, ctx: ProxyContext, truth: np.ndarray, names: list[str], store: ResultsStore,
                   meta: dict, progress: bool) -> tuple[list[dict], list[tuple[RankResult, np.ndarray]]]:
    """Rank rows of the zero-cost proxies ``names`` on ``ctx.dataset`` (see the module docstring),
    and each row's result with the values it ranked (for paired comparisons)."""
    why = images_missing(ctx)
    if why:
        _log(f"skipping zero-cost proxies {', '.join(names)} on {ctx.dataset}: {why}")
        return [], []
    proxies = [make_proxy(n, ctx) for n in names]
    groups: dict = {}  # one joint evaluation per network scored: the Original, or one Tr-Net suffix
    for p in proxies:
        groups.setdefault(p.method, []).append(p)
    archs = np.random.default_rng(defn["seed"]).choice(len(truth), size=defn["sample"], replace=False)
    timed = min(defn["zc_timed"], len(archs))
    values = {p.name: np.full(len(truth), np.nan) for p in proxies}
    alone = {p.name: [] for p in proxies}
    rows, joint_total, t_start = [], 0.0, time.perf_counter()
    for k, a in enumerate(archs):
        arch = ctx.space.canonical(int(a))
        for group in groups.values():
            first = group[0]
            t0 = time.perf_counter()
            joint = score_all(first.network(arch), first.x, first.y, [p.measure for p in group], seed=first.seed,
                              inplace=True)
            joint_s = time.perf_counter() - t0
            joint_total += joint_s
            for p in group:
                m, wall = p.measure, float("nan")
                if k < timed:
                    s = p(arch)
                    wall = s.wall_s
                    alone[p.name].append(wall)
                    if not np.isclose(s.value, joint[m], rtol=1e-4, atol=1e-6, equal_nan=True):
                        raise RuntimeError(f"{p.name} on {ctx.space.format(arch)}: alone {s.value!r} != "
                                           f"joint {joint[m]!r}")
                values[p.name][a] = joint[m]
                rows.append({"proxy": p.name, "arch_str": ctx.space.format(arch), "arch_index": int(a),
                             "dataset": ctx.dataset, "value": joint[m], "ground_truth": float(truth[a]),
                             "wall_s": wall, "joint_s": joint_s, "device": first.device_label,
                             "batch_size": len(first.y), **meta})
        if progress and ((k + 1) % 25 == 0 or k + 1 == len(archs)):
            _log(f"zero-cost {ctx.dataset}: {k + 1}/{len(archs)} architectures, "
                 f"{(time.perf_counter() - t_start) / (k + 1):.2f} s each")
    store.append("zero_cost", pd.DataFrame(rows))
    scored = np.zeros(len(truth), dtype=bool)
    scored[archs] = True
    device = proxies[0].device_label
    out, ranked = [], []
    for name in values:
        v, nonfinite = rankable(values[name], scored)
        per_arch = float(np.mean(alone[name])) if alone[name] else float("nan")
        common = {"wall_s": per_arch, "joint_s": joint_total, "timed": len(alone[name]), "device": device,
                  "nonfinite": nonfinite}
        for res in rank_scored(v, truth, scored, ctx.dataset, name, defn["seed"], defn.get("zc_top_k"), defn["ties"]):
            ranked.append((res, v))
            out.append({**res.row(), **common, "total_s": per_arch * len(archs)})
    return out, ranked


def rankable(values: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` with each scored architecture's non-finite value ranked below every finite one
    (as a search maximising the proxy would treat it), and how many there were."""
    failed = scored & ~np.isfinite(values)
    finite = values[scored & np.isfinite(values)]
    return np.where(failed, (finite.min() - 1.0) if len(finite) else 0.0, values), int(failed.sum())


def rank_scored(values: np.ndarray, truth: np.ndarray, scored: np.ndarray, dataset: str, name: str, seed: int,
                top: "int | None", ties: str) -> list[RankResult]:
    """The rank results of one zero-cost proxy over the scored sample (``random-<n>``) and, with
    ``top``, over the ``top`` best of that sample by ground truth (``top-<k>-of-random-<n>``; the best
    of the sample, not of the whole table: only the sample has values)."""
    res = rank_proxy(values, truth, dataset=dataset, proxy_name=name, draws=1, seed=seed)
    res.selection = f"random-{res.n}"
    out = [res]
    if top is not None:
        res = rank_proxy(values, np.where(scored, truth, -np.inf), dataset=dataset, proxy_name=name, top=top,
                         ties=ties, seed=seed)
        res.selection = f"top-{res.n}-of-random-{int(scored.sum())}"
        out.append(res)
    return out
