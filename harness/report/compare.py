"""What the leaderboard's summary compares: search methods and proxies across datasets, ranked.

Search methods. Every search run of each benchmark's latest batch (table summary through
:func:`harness.search.summary.search_results`, plus one-shot runs of table oneshot: ``<method> ·
<supernet>``, e.g. ``DARTS+PT · original``, ``DARTS · tr-supernet-5-5``) is one entry:
its best-found accuracy -- the 200-epoch NB201 test accuracy, seed mean of the table
(:data:`harness.tabular.nb201.GROUND_TRUTH`), of the architecture the search returns -- and its
regret, the NB201 optimum of that dataset (the best 200-epoch test accuracy of all 15,625
architectures, the same metric) minus the best-found accuracy (JAHS-Bench-201 / NAS-Bench-Suite
style normalisation: 0 = the space's best). Methods with at least :data:`MIN_SEEDS` seeds are
ranked by :func:`harness.stats.rank_test` within their benchmark (same budget, same evaluation)
over (dataset x seed) blocks; the rest are smoke runs, listed apart and never ranked.

Proxies. Each proxy x dataset cell is the latest rank row over random architectures with the most
architectures (selections ``random-<n>`` / ``all-<n>``); fewer than :data:`MIN_ARCHS` is a smoke
row. The rank test needs the same blocks for every proxy: the stored per-architecture values of
a zero-cost benchmark (table zero_cost; table proxies of that benchmark looked up for the same
architectures) split into :data:`PROXY_DRAWS` disjoint draws per dataset, the KROCC of each draw a
block's score.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata

from harness.proxies.table import TABLE_PROXIES
from harness.report.proxies import pareto, proxy_rows
from harness.search.summary import anytime_curves, search_results
from harness.spaces import dataset_order
from harness.stats import MIN_N, RankTest, mean_interval, rank_test
from harness.store.tables import batch_time, col, latest_batches
from harness.tabular import get_table, table_spaces

#: Seeds a search method needs to be ranked (below it there is no bootstrap interval either).
MIN_SEEDS = MIN_N
#: Architectures a proxy row needs to be ranked; also the smallest draw of the proxy rank test.
MIN_ARCHS = 20
#: Disjoint draws per dataset of the proxy rank test (so >= PROXY_DRAWS * MIN_ARCHS architectures).
PROXY_DRAWS = 10

KIND_TABULAR, KIND_TRAINED, KIND_ONESHOT = "tabular", "real training", "one-shot"


@lru_cache(maxsize=None)
def optimum(space: str, dataset: str) -> float:
    """The best ground truth of ``space``'s table on ``dataset`` (NaN without a table)."""
    if space not in table_spaces():
        return float("nan")
    table = get_table(space)
    return float(np.max(table.ground_truth(dataset))) if dataset in table.datasets else float("nan")


def _text(df: pd.DataFrame, name: str, default: str) -> pd.Series:
    s = df[name].astype(object) if name in df.columns else pd.Series(None, index=df.index, dtype=object)
    return s.where(s.notna(), default).astype(str)


# --------------------------------------------------------------------------- search methods


def search_entries(res: dict) -> "pd.DataFrame | None":
    """One row per search run: benchmark, batch_id, kind, method (label), dataset, seed, queries,
    best (accuracy %), regret, cost_s (search seconds), peak_bytes, device, space."""
    summary, _, _ = search_results(res)
    parts = []
    if summary is not None:
        s = summary
        kind, label = _search_method(s)
        parts.append(pd.DataFrame({
            "benchmark": _text(s, "benchmark", "–"), "batch_id": _text(s, "batch_id", "–"), "kind": kind,
            "method": label, "dataset": s["dataset"].astype(str), "seed": col(s, "seed"),
            "queries": col(s, "trials").fillna(col(s, "budget")), "best": col(s, "best_ground_truth"),
            "cost_s": col(s, "wall_s"), "peak_bytes": col(s, "peak_bytes"),
            "device": _text(s, "device", "–"), "space": _text(s, "space", "nb201")}))
    oneshot = latest_batches(res.get("oneshot"))
    if oneshot is not None:
        o = oneshot
        peak = col(o, "cuda_peak_bytes")
        parts.append(pd.DataFrame({
            "benchmark": _text(o, "benchmark", "–"), "batch_id": _text(o, "batch_id", "–"), "kind": KIND_ONESHOT,
            "method": _text(o, "method", "DARTS+PT") + " · " + _text(o, "supernet", "–"),
            "dataset": o["dataset"].astype(str),
            "seed": col(o, "seed"), "queries": col(o, "epochs"), "best": col(o, "test_acc"),
            "cost_s": col(o, "search_s"), "peak_bytes": peak.where(peak.notna(), col(o, "saved_bytes")),
            "device": _text(o, "device", "–"), "space": _text(o, "space", "nb201")}))
    if not parts:
        return None
    out = pd.concat(parts, ignore_index=True)
    out["regret"] = [optimum(sp, ds) - b for sp, ds, b in zip(out["space"], out["dataset"], out["best"])]
    return out


def _search_method(s: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """(kind, label) of search rows: ``<sampler> · <evaluator>`` -- the evaluator says what scored
    a candidate (``tabular:val_acc@12`` = a table look-up of the paper's Original proxy,
    ``train:tr-net-5-5`` = real Tr-Net training), which the method name alone does not."""
    evaluator, method = _text(s, "evaluator", ""), _text(s, "method", "–")
    trained = evaluator.str.startswith("train") | method.str.startswith("train")
    return np.where(trained, KIND_TRAINED, KIND_TABULAR), _text(s, "sampler", "–") + " · " + evaluator.where(
        evaluator != "", method)


def anytime_rows(res: dict) -> "pd.DataFrame | None":
    """Per evaluation of each latest search batch with a ground truth: benchmark, kind, method (as
    in :func:`search_entries`), dataset, space, run_id, query, cum_wall_s and ``best``, the
    best-found accuracy after it (:func:`harness.search.summary.anytime_curves`)."""
    _, runs, _ = search_results(res)
    if runs is None:
        return None
    kind, label = _search_method(runs)
    r = runs.assign(kind=kind, label=label, space=_text(runs, "space", "nb201"), cum_wall_s=col(runs, "cum_wall_s"))
    c = anytime_curves(r, keys=("benchmark", "kind", "label", "dataset", "space", "cum_wall_s"))
    c = c.rename(columns={"label": "method", "best_truth": "best"})
    c = c[c.groupby("run_id")["best"].transform(lambda b: b.notna().all())]
    return c if len(c) else None


def method_table(entries: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark x method x dataset: seeds, mean best-found with its 95% bootstrap interval
    (:func:`harness.stats.mean_interval`), regret of the mean, mean cost and peak memory, smoke."""
    rows = []
    for (bench, method, ds), g in entries.groupby(["benchmark", "method", "dataset"], sort=False):
        iv = mean_interval(g["best"])
        opt = optimum(g["space"].iloc[0], ds)
        rows.append({"benchmark": bench, "method": method, "dataset": ds, "kind": g["kind"].iloc[0],
                     "space": g["space"].iloc[0],
                     "seeds": len(g), "queries": g["queries"].max(), "best": iv.estimate, "best_lo": iv.low,
                     "best_hi": iv.high, "optimum": opt, "regret": opt - iv.estimate,
                     "cost_s": g["cost_s"].mean(), "peak_bytes": g["peak_bytes"].mean(),
                     "device": ", ".join(sorted(set(g["device"]))), "smoke": len(g) < MIN_SEEDS})
    order = {d: i for i, d in enumerate(dataset_order())}
    out = pd.DataFrame(rows)
    return out.sort_values(["smoke", "benchmark", "method"], kind="stable").sort_values(
        "dataset", key=lambda s: s.map(lambda d: order.get(d, len(order))), kind="stable").reset_index(drop=True)


def search_rank_tests(entries: pd.DataFrame) -> dict[str, RankTest]:
    """Per benchmark with >= 2 ranked (non-smoke) methods: the rank test over the (dataset x seed)
    blocks every one of them ran (higher best-found accuracy = better, so lower regret)."""
    ranked = method_table(entries)
    ranked = ranked[~ranked["smoke"] & ranked["best"].notna()]
    tests = {}
    for bench, g in ranked.groupby("benchmark", sort=False):
        methods = list(dict.fromkeys(g["method"]))
        e = entries[(entries["benchmark"] == bench) & entries["method"].isin(methods)]
        blocks = e.pivot_table(index=["dataset", "seed"], columns="method", values="best", aggfunc="first")
        blocks = blocks.reindex(columns=methods).dropna()
        if len(methods) >= 2 and len(blocks) >= 2:
            tests[bench] = rank_test(blocks.to_numpy(), methods)
    return tests


def pareto_fronts(d: pd.DataFrame) -> tuple[set, set]:
    """Index labels of the rows of ``d`` (a :func:`method_table`) on the Pareto front of (search
    cost, best-found accuracy) -- no other row both cheaper and more accurate -- and on the front
    of the rows that are not table look-ups (what a search costs when it evaluates for real)."""
    def front(rows: pd.DataFrame) -> set:
        rows = rows[rows["best"].notna() & (rows["cost_s"] > 0)]
        return set(rows.index[pareto(rows["cost_s"].to_numpy(float), rows["best"].to_numpy(float))])
    return front(d), front(d[d["kind"] != KIND_TABULAR])


# --------------------------------------------------------------------------- proxies


def _ablation_cell(rows: pd.DataFrame) -> pd.Series:
    """Rows of a definition that declares ``ablation_of``: its trained proxies were trained under
    other options than the definition it ablates, so they must not stand in for its values."""
    config = rows["config"] if "config" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    return config.map(lambda c: isinstance(c, str) and "ablation_of" in json.loads(c)).astype(bool)


def proxy_table(rank: "pd.DataFrame | None") -> "pd.DataFrame | None":
    """Per proxy x dataset: the latest rank row over random architectures with the most of them
    (ties: the latest batch); KROCC / SROCC of the reported selection (draw 0 of random draws)
    with its 95% interval over the architectures; smoke below :data:`MIN_ARCHS`."""
    rows = proxy_rows(rank)
    if rows is None:
        return None
    rows = rows[~_ablation_cell(rows)]
    r = rows.assign(when=_text(rows, "batch_id", "").map(lambda b: batch_time(b) or ""))
    r = r.sort_values(["n", "when"], ascending=False, kind="stable").drop_duplicates(["proxy", "dataset"])
    single_k, single_s = col(r, "krocc_single"), col(r, "srocc_single")
    return pd.DataFrame({
        "proxy": r["proxy"].astype(str), "dataset": r["dataset"].astype(str), "benchmark": r["bench"],
        "selection": r["selection"].astype(str), "n": r["n"],
        "krocc": single_k.where(single_k.notna(), r["krocc"]), "krocc_lo": col(r, "krocc_lo"),
        "krocc_hi": col(r, "krocc_hi"), "srocc": single_s.where(single_s.notna(), r["srocc"]),
        "srocc_lo": col(r, "srocc_lo"), "srocc_hi": col(r, "srocc_hi"), "smoke": r["n"] < MIN_ARCHS,
    }).reset_index(drop=True)


def _tau(values: np.ndarray, truth: np.ndarray) -> float:
    """Kendall's tau-b; a non-finite proxy value ranks below every finite one (as the rank rows
    treat it, :func:`harness.bench.kinds.rank_zero_cost.rankable`)."""
    v = rankdata(np.where(np.isfinite(values), values, -np.inf))
    return float(kendalltau(v, truth).statistic)


def _draws(g: pd.DataFrame, table_proxies: set[str]) -> "pd.DataFrame | None":
    """KROCC per draw (rows) and proxy (columns) of one dataset's stored values ``g``; None under
    ``PROXY_DRAWS * MIN_ARCHS`` architectures."""
    archs = list(dict.fromkeys(g["arch_index"].astype(int)))  # in the order they were sampled
    size = len(archs) // PROXY_DRAWS
    if size < MIN_ARCHS:
        return None
    complete = g.groupby("proxy")["arch_index"].nunique() == len(archs)  # a failed value is NaN, still scored
    values = g[g["proxy"].isin(complete.index[complete])].pivot_table(
        index="arch_index", columns="proxy", values="value", aggfunc="first", dropna=False).reindex(archs)
    space = str(g["space"].dropna().iloc[0]) if "space" in g.columns and g["space"].notna().any() else "nb201"
    dataset = str(g["dataset"].iloc[0])
    for name in sorted(table_proxies & set(TABLE_PROXIES)):
        tspace, metric, epochs = TABLE_PROXIES[name]
        if tspace == space:
            values[name] = get_table(space).column(dataset, metric, epochs)[archs]
    truth = g.groupby("arch_index")["ground_truth"].first().reindex(archs).to_numpy(float)
    cut = [slice(d * size, (d + 1) * size) for d in range(PROXY_DRAWS)]
    scores = {name: [_tau(values[name].to_numpy(float)[c], truth[c]) for c in cut] for name in values.columns}
    return pd.DataFrame(scores, index=pd.MultiIndex.from_product([[dataset], range(PROXY_DRAWS)],
                                                                names=["dataset", "draw"]))


def proxy_draws(res: dict) -> dict[str, tuple[pd.DataFrame, int]]:
    """Per zero-cost benchmark (latest batch) with >= ``PROXY_DRAWS * MIN_ARCHS`` architectures on
    some dataset: blocks (dataset, draw) x proxies of KROCC, and how many architectures the draws
    cover. Proxies: every zero-cost proxy stored for all of those architectures, and the table
    proxies the benchmark ranked on that dataset (their table values for the same architectures).
    Draws: consecutive slices of the architectures in the order they were sampled, i.e. disjoint
    random draws without replacement."""
    zc = latest_batches(res.get("zero_cost"))
    if zc is None:
        return {}
    rank = latest_batches(res.get("rank"))
    out = {}
    for bench, b in zc.assign(benchmark=_text(zc, "benchmark", "–")).groupby("benchmark", sort=False):
        frames = []
        for ds, g in b.groupby("dataset", sort=False):
            ranked = set() if rank is None else set(rank.loc[(_text(rank, "benchmark", "–") == bench)
                                                             & (rank["dataset"] == ds), "proxy"].astype(str))
            frames.append(_draws(g, ranked))
        frames = [f for f in frames if f is not None]
        if frames:
            blocks = pd.concat(frames)
            covered = sum(int(g["arch_index"].nunique()) // PROXY_DRAWS * PROXY_DRAWS
                          for ds, g in b.groupby("dataset") if ds in set(blocks.index.get_level_values("dataset")))
            out[bench] = (blocks.loc[:, blocks.notna().all()], covered)  # a proxy missing on a dataset: unranked
    return out


def proxy_rank_tests(res: dict) -> dict[str, tuple[RankTest, pd.DataFrame, int]]:
    """Per zero-cost benchmark: the rank test over its (dataset x draw) blocks (higher KROCC =
    better), the blocks and the architectures they cover; the most architectures first."""
    tests = {bench: (rank_test(b.to_numpy(), list(b.columns)), b, n) for bench, (b, n) in proxy_draws(res).items()
             if b.shape[1] >= 2}
    return dict(sorted(tests.items(), key=lambda kv: -kv[1][2]))
