"""Kind ``rank``: rank correlation of proxies vs the ground truth (paper Tables 1 and 3).

Table proxies are scored on every architecture of the space's table: random samples (mean and
std over draws) and the top-k by ground truth. Training proxies are trained on the selections
in ``train_selections`` and ranked over each: ``random`` = ``train.archs`` random architectures
(the same ones for every proxy; Table 1), ``top_k`` = the ``top_k`` best by ground truth with the
table path's tie rule ``ties`` (Table 3's Tr-Net column); an architecture in both is trained
once, and table proxies are ranked on the trained architectures too. On a CPU the training
proxies take turns architecture by architecture (Original then Tr-Net on one architecture, then
the next), so a machine's changing load falls on both alike and an interrupted run has trained
both on the same architectures; ``recorded:`` proxies make a rerun train only what is missing.
With ``train_selections = ["ordered"]`` and a stop time (``harness bench --until`` / ``--hours``) a
run trains architectures in a fixed order until the time is up and ranks the N trained so far; the
next run continues with the next untrained one, so N only grows.
Zero-cost proxies are scored on ``sample`` random architectures (:mod:`harness.bench.kinds.rank_zero_cost`).

Every rank row carries its 95% bootstrap interval (:mod:`harness.analysis.rank`), and every proxy
ranked on the same architectures as ``compare_to`` (default: the first proxy) gets a paired row
in the ``rank_pairs`` table: the difference of their KROCC / SROCC, its interval, p-value and verdict.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.rank import TIES, TRAIN_SELECTIONS, RankResult, paired_rows, rank_proxy, top_k
from harness.bench.kinds.rank_zero_cost import rank_zero_cost
from harness.definition.schema import INT, LIST_STR, STR, Definition, Kind, KindSpec
from harness.progress import bar as progress_bar
from harness.progress import finished
from harness.proxies import GroundTruth, Score, make_proxy, proxy_family
from harness.sections.context import proxy_context, run_meta
from harness.sections.schema import BACKBONE_SCHEMA, TRAIN_SCHEMA, check_sections, trained_proxies
from harness.sections.splices import check_splices
from harness.store.results import ResultsStore

SCHEMA = {"datasets": LIST_STR, "proxies": LIST_STR, "table": STR, "sample": INT, "draws": INT, "top_k": INT,
          "ties": STR, "train_selections": LIST_STR, "compare_to": STR, "seed": INT, "zc_timed": INT, "zc_top_k": INT,
          "train": TRAIN_SCHEMA, "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "proxies": ["nb201-12ep-val"], "draws": 20, "ties": "drop", "seed": 0,
            "train_selections": ["random"], "zc_timed": 10, "train": {}, "backbone": {}}


def validate(d: Definition) -> None:
    src = d.source
    check_sections(d)
    d.one_of("ties", d["ties"], TIES)
    trained = trained_proxies(d)
    zero_cost = [p for p in d["proxies"] if proxy_family(p).zero_cost]
    if zero_cost and "sample" not in d.raw:
        raise HarnessError(f"{src}: key 'sample' is needed: the number of random architectures the "
                           f"zero-cost proxies {', '.join(zero_cost)} score")
    if "zc_top_k" in d.raw and not (zero_cost and 2 <= d["zc_top_k"] <= d.get("sample", 0)):
        raise HarnessError(f"{src}: key 'zc_top_k' must be in 2..sample ({d.get('sample', 0)}) and needs "
                           f"zc: proxies, got {d['zc_top_k']}")
    if "compare_to" in d.raw:
        d.one_of("compare_to", d["compare_to"], d["proxies"])
    if not d["train_selections"] or len(set(d["train_selections"])) != len(d["train_selections"]):
        raise HarnessError(f"{src}: key 'train_selections' must list each of {', '.join(TRAIN_SELECTIONS)} "
                           f"at most once, and at least one, got {d['train_selections']}")
    for selection in d["train_selections"]:
        d.one_of("train_selections", selection, TRAIN_SELECTIONS)
    if trained and {"random", "ordered"} & set(d["train_selections"]) and d["train"].get("archs", 0) < 2:
        raise HarnessError(f"{src}: key 'train.archs' must be >= 2 to rank the trained proxies "
                           f"{', '.join(trained)}")
    if trained and "top_k" in d["train_selections"] and d.get("top_k", 0) < 2:
        raise HarnessError(f"{src}: key 'top_k' must be >= 2 to rank the trained proxies "
                           f"{', '.join(trained)} on the top-k (train_selections has 'top_k')")
    check_splices(d)


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    rows, pairs = [], []
    baseline = defn.get("compare_to") or defn["proxies"][0]
    for ds in defn["datasets"]:
        ctx = proxy_context(defn, ds, store, batch_id, progress)
        truth = GroundTruth(ctx.space, ds, defn.get("table")).vector()
        if truth is None:
            raise HarnessError(f"{defn.source}: space {ctx.space.name!r} has no tabular ground truth to rank against")
        trained = [p for p in defn["proxies"] if proxy_family(p).trains]
        zero_cost = [p for p in defn["proxies"] if proxy_family(p).zero_cost]
        ranked: list[tuple[RankResult, np.ndarray]] = []  # (row, the values it ranked): for the paired rows
        if zero_cost:
            zc_rows, zc_ranked = rank_zero_cost(defn, ctx, truth, zero_cost, store, run_meta(defn, batch_id, dataset=ds),
                                                progress)
            rows += zc_rows
            ranked += zc_ranked
        tables = {name: make_proxy(name, ctx).values() for name in defn["proxies"] if proxy_family(name).whole_table}
        for name, values in tables.items():
            if "sample" in defn.raw or "top_k" not in defn.raw:
                ranked.append((rank_proxy(values, truth, dataset=ds, proxy_name=name, sample=defn.get("sample"),
                                          draws=defn["draws"], seed=defn["seed"]), values))
                rows.append(ranked[-1][0].row())
            if "top_k" in defn.raw:
                ranked.append((rank_proxy(values, truth, dataset=ds, proxy_name=name, top=defn["top_k"],
                                          ties=defn["ties"], seed=defn["seed"]), values))
                rows.append(ranked[-1][0].row())
        if trained:
            selections = trained_selections(defn, truth)
            scores = train_all(ctx, trained, selections, progress, defn.stop_at)
            for selection, sel in selections.items():
                sel = np.array([a for a in sel if all(int(a) in scores[name] for name in trained)], dtype=int)
                if len(sel) < 2:
                    finished(f"{ds}: {selection}: {len(sel)} architecture(s) scored by every training proxy "
                             "before the stop time; nothing to rank yet (a rerun continues)", True)
                    continue
                top = {"top": defn["top_k"], "ties": defn["ties"]} if selection == "top_k" else {"draws": 1}
                for name in trained:
                    values = np.full(len(truth), np.nan)
                    values[sel] = [scores[name][int(a)].value for a in sel]
                    r = rank_proxy(values, truth, dataset=ds, proxy_name=name, seed=defn["seed"], **top)
                    ranked.append((r, values))
                    rows.append({**r.row(), "wall_s": float(np.mean([scores[name][int(a)].wall_s for a in sel])),
                                 "total_s": float(np.sum([scores[name][int(a)].wall_s for a in sel])),
                                 "peak_bytes": float(np.mean([scores[name][int(a)].peak_bytes for a in sel]))})
                if selection in ("random", "ordered"):  # the table proxies on the very architectures trained
                    for name, all_values in tables.items():
                        values = np.where(np.isin(np.arange(len(truth)), sel), all_values, np.nan)
                        ranked.append((rank_proxy(values, truth, dataset=ds, proxy_name=name, seed=defn["seed"],
                                                  draws=1), values))
                        rows.append(ranked[-1][0].row())
        pairs += paired_rows(ranked, truth, baseline)
    meta = {k: v for k, v in run_meta(defn, batch_id).items()}
    df = pd.DataFrame(rows).assign(truth="ground truth (NB201: test_acc@200 seed mean)", **meta)
    store.append("rank", df)
    if pairs:
        store.append("rank_pairs", pd.DataFrame(pairs).assign(**meta))
    return df


def train_all(ctx, names: list[str], selections: dict[str, np.ndarray], progress: bool,
              stop_at: "float | None" = None) -> dict[str, dict[int, Score]]:
    """Scores of every training proxy on every selected architecture (each trained once). On CUDA
    each proxy scores them all at once (K candidates concurrently); elsewhere the proxies take
    turns per architecture. At ``stop_at`` (``time.time()``) it stops before the next architecture:
    what was scored is returned, every finished candidate already being a row."""
    archs = list(dict.fromkeys(int(a) for sel in selections.values() for a in sel))
    proxies = {name: make_proxy(name, ctx) for name in names}  # pre-trains a missing backbone first
    chunks = [archs] if ctx.data.train.x.device.type == "cuda" else [[a] for a in archs]
    scores: dict[str, dict[int, Score]] = {name: {} for name in names}
    bar = progress_bar(len(archs), f"{ctx.dataset}: {' + '.join(names)}", progress)
    for done, chunk in enumerate(chunks):
        if stop_at is not None and time.time() >= stop_at:
            finished(f"{ctx.dataset}: stop time reached after {done} of {len(chunks)} architecture groups; "
                     "a rerun continues with the next", True)
            break
        for name, proxy in proxies.items():
            for a, s in zip(chunk, proxy.score_many([ctx.space.canonical(a) for a in chunk])):
                scores[name][a] = s
        bar.update(len(chunk))
        finished(f"{ctx.dataset}: {sum(map(len, chunks[:done + 1]))}/{len(archs)} architectures scored by "
                 f"{', '.join(names)}", progress)
    bar.close()
    return scores


def trained_selections(defn: Definition, truth: np.ndarray) -> dict[str, np.ndarray]:
    """``train_selections`` -> the benchmark indices each one trains, in a fixed order."""
    out = {}
    for selection in defn["train_selections"]:
        if selection == "random":
            out[selection] = np.random.default_rng(defn["seed"]).choice(len(truth), size=defn["train"]["archs"],
                                                                         replace=False)
        elif selection == "ordered":
            out[selection] = np.random.default_rng(defn["seed"]).permutation(len(truth))[:defn["train"]["archs"]]
        else:  # top_k: the same set the table path ranks (rank_proxy(top=...) selects it again)
            out[selection] = top_k(truth, defn["top_k"], defn["ties"])
    return out


KIND = Kind(KindSpec("rank", SCHEMA, DEFAULTS, validate, required=("datasets",)), run)
