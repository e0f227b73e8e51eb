"""The leaderboard's summary page (``results/leaderboard.md``), its figures and its exports.

One page a researcher can read at a glance (CARP-S / autorank style): search methods as method x
dataset with best-found accuracy [95% CI], regret and the mean rank with its Friedman / Nemenyi
test; anytime curves with bands; accuracy against search cost and memory; proxies as proxy x
dataset with KROCC / SROCC [95% CI] and their rank test; smoke-sized rows apart, never ranked.
What is compared is computed in :mod:`harness.report.compare`, drawn in
:mod:`harness.report.figures`; the per-benchmark detail pages are :mod:`harness.report.details`.
The summary tables are also written as CSV (numbers) and LaTeX (booktabs) next to the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

from harness.report import compare, figures
from harness.spaces import dataset_order
from harness.stats import RankTest
from harness.store.markdown import ci, latex_table, markdown_table, mb, num, seconds
from harness.store.tables import order_values

FOLDER = "leaderboard"  # detail pages and figures, under the results folder
COST_PAGE = "cost-and-memory.md"
ANYTIME, ANYTIME_TIME, COST = "anytime.png", "anytime-time.png", "cost-memory.png"


@dataclass
class Summary:
    """What the summary shows, computed once (:func:`summarise`) for the page, figures and exports."""

    methods: "pd.DataFrame | None"  # compare.method_table, smoke rows included
    search_tests: dict[str, RankTest]
    proxies: "pd.DataFrame | None"  # compare.proxy_table
    proxy_tests: dict[str, tuple[RankTest, pd.DataFrame, int]]
    anytime: "pd.DataFrame | None"


def summarise(res: dict) -> Summary:
    entries = compare.search_entries(res)
    methods = compare.method_table(entries) if entries is not None else None
    tests = compare.search_rank_tests(entries) if entries is not None else {}
    return Summary(methods, tests, compare.proxy_table(res.get("rank")), compare.proxy_rank_tests(res),
                   compare.anytime_rows(res))


def _ranked(s: Summary) -> pd.DataFrame:
    m = s.methods
    return m[~m["smoke"]] if m is not None else pd.DataFrame(columns=["benchmark"])


def figure_plan(s: Summary) -> dict[str, Callable]:
    """File name (in :data:`FOLDER`) -> ``draw(path)`` of every figure the data allow."""
    plan = {f"cd-search-{b}.png": partial(figures.write_cd, t, f"search methods of {b}: mean rank over "
                                          "(dataset x seed) blocks") for b, t in s.search_tests.items()}
    plan.update({f"cd-proxies-{b}.png": partial(figures.write_cd, t, f"proxies of {b}: mean rank of KROCC over "
                                                f"(dataset x draw) blocks, {n} architectures")
                 for b, (t, _, n) in s.proxy_tests.items()})
    if s.anytime is not None:
        ranked = s.anytime[s.anytime["benchmark"].isin(set(_ranked(s)["benchmark"]))]
        if len(ranked):
            plan[ANYTIME] = partial(figures.write_anytime, ranked, "query", "evaluations (queries)")
        timed = s.anytime[(s.anytime["kind"] == compare.KIND_TRAINED) & s.anytime["cum_wall_s"].notna()]
        if len(timed):
            plan[ANYTIME_TIME] = partial(figures.write_anytime, timed, "cum_wall_s", "cumulative evaluation time (s)")
    if s.methods is not None and (s.methods["best"].notna() & (s.methods["cost_s"] > 0)).any():
        plan[COST] = partial(figures.write_cost, s.methods)
    return plan


# --------------------------------------------------------------------------- tables


def _datasets(df: pd.DataFrame) -> list[str]:
    return order_values(df["dataset"], dataset_order())


def search_table(s: Summary) -> tuple[list, list]:
    """The ranked methods: benchmark, method, seeds x queries, best-found [95% CI] and regret per
    dataset, mean rank; by benchmark, then mean rank."""
    r = _ranked(s)
    datasets = _datasets(r)
    rows = []
    for (bench, method), g in r.groupby(["benchmark", "method"], sort=False):
        test = s.search_tests.get(bench)
        cells = {d.dataset: d for d in g.itertuples(index=False)}
        row = [bench, method, f"{int(g['seeds'].min())} × {num(g['queries'].max(), 0)}"]
        for ds in datasets:
            d = cells.get(ds)
            row += [ci(d.best, d.best_lo, d.best_hi), num(d.regret)] if d is not None else ["–", "–"]
        rank = test.rank(method) if test is not None and method in test.names else np.nan
        rows.append((bench, rank if np.isfinite(rank) else np.inf, row + [num(rank)]))
    rows.sort(key=lambda t: (t[0], t[1]))
    headers = ["benchmark", "method", "seeds × queries"]
    for ds in datasets:
        headers += [f"{ds} best-found [95% CI]", "regret"]
    return headers + ["mean rank"], [r[2] for r in rows]


def smoke_table(s: Summary) -> tuple[list, list]:
    m = s.methods[s.methods["smoke"]] if s.methods is not None else pd.DataFrame()
    rows = [[r.benchmark, r.method, r.dataset, r.seeds, num(r.queries, 0),
             num(r.best) if np.isfinite(r.best) else f"– (no {r.space} table)", num(r.regret)]
            for r in m.sort_values(["benchmark", "method"], kind="stable").itertuples(index=False)]
    return ["benchmark", "method", "dataset", "seeds", "queries / epochs", "best-found", "regret"], rows


def _letters(s: Summary) -> dict[str, str]:
    return {bench: chr(ord("A") + i) for i, bench in enumerate(s.proxy_tests)}


def _proxy_rank(s: Summary, proxy: str) -> tuple[float, str]:
    """(mean rank, set letter) of ``proxy`` in the first (largest) proxy test that ranks it."""
    for bench, letter in _letters(s).items():
        test = s.proxy_tests[bench][0]
        if proxy in test.names:
            return test.rank(proxy), letter
    return np.inf, ""


def proxy_table(s: Summary) -> tuple[list, list]:
    """Proxies with a non-smoke cell: n, KROCC and SROCC [95% CI] per dataset, mean rank (set)."""
    p = s.proxies[~s.proxies["smoke"]] if s.proxies is not None else pd.DataFrame(columns=["dataset", "proxy"])
    datasets = _datasets(p)
    rows = []
    for proxy, g in p.groupby("proxy", sort=False):
        cells = {d.dataset: d for d in g.itertuples(index=False)}
        row = [proxy, ", ".join(dict.fromkeys(num(n, 0) for n in g["n"]))]
        for ds in datasets:
            d = cells.get(ds)
            row += [ci(d.krocc, d.krocc_lo, d.krocc_hi, 3), ci(d.srocc, d.srocc_lo, d.srocc_hi, 3)] \
                if d is not None else ["–", "–"]
        rank, letter = _proxy_rank(s, proxy)
        best = max((d.krocc for d in cells.values()), default=np.nan)
        rows.append(((letter or "~", rank, -best), row + [f"{rank:.2f} ({letter})" if letter else "–"]))
    rows.sort(key=lambda t: t[0])
    headers = ["proxy", "n"]
    for ds in datasets:
        headers += [f"{ds} KROCC [95% CI]", "SROCC [95% CI]"]
    return headers + ["mean rank (test)"], [r[1] for r in rows]


def cost_table(s: Summary, dataset: str) -> tuple[list, list]:
    """Every method that searched ``dataset``: cost per run, mean best-found, regret, peak memory,
    device, and whether it is on the Pareto front of (cost, accuracy) of all methods or of those
    that do not look accuracies up."""
    d = s.methods[s.methods["dataset"] == dataset].sort_values("cost_s", kind="stable")
    every, real = compare.pareto_fronts(d)
    rows = [[r.method, r.benchmark, r.kind, f"{r.seeds}{' (smoke)' if r.smoke else ''}", seconds(r.cost_s),
             num(r.best) if np.isfinite(r.best) else f"– (no {r.space} table)", num(r.regret), mb(r.peak_bytes),
             r.device, "all" if i in every else ("without look-ups" if i in real else "–")]
            for i, r in zip(d.index, d.itertuples(index=False))]
    return ["method", "benchmark", "kind", "seeds", "search cost / run", "best-found (mean)", "regret",
            "peak memory MB", "device", "Pareto front"], rows


# --------------------------------------------------------------------------- text


def _test_line(test: RankTest, blocks: str) -> str:
    """Friedman result, Nemenyi CD, and which methods the best is (not) separated from; with at
    most four methods every separated pair."""
    head = (f"Friedman χ² = {test.statistic:.2f}, p = {test.p:.2g} over {test.blocks} {blocks} blocks: "
            + ("rejects equal ranks" if test.rejects() else "does not reject equal ranks; no method is separated"))
    if not test.rejects():
        return head + f" (α = {test.alpha:g}; Nemenyi CD = {test.cd:.2f})."
    order = test.order()
    best = order[0]
    near = [n for n in order[1:] if not test.differ(best, n)]
    far = [n for n in order[1:] if test.differ(best, n)]
    text = (f"{head} (α = {test.alpha:g}). Nemenyi CD = {test.cd:.2f}: best {best} ({test.rank(best):.2f}); "
            f"not separated from it: {', '.join(near) or 'none'}; separated: {', '.join(far) or 'none'}")
    if len(order) <= 4:
        pairs = [f"{a} vs {b} (Δ {abs(test.rank(a) - test.rank(b)):.2f})" for i, a in enumerate(order)
                 for b in order[i + 1:] if not test.differ(a, b)]
        text += f"; pairs within the CD: {', '.join(pairs) or 'none'}"
    return text + "."


def _search_part(s: Summary, fig: Callable[[str, str], list[str]]) -> list[str]:
    """The search sections of the summary; ``fig(name, alt)``: the image line of a drawn figure."""
    opt = s.methods.drop_duplicates("dataset").dropna(subset=["optimum"])
    smoke = smoke_table(s)
    out = ["Best-found = the 200-epoch NB201 test accuracy (%, seed mean of the table) of the architecture a search "
           "returns, mean over seeds [95% bootstrap CI]; regret = the dataset's NB201 optimum ("
           + ", ".join(f"{r.dataset} {r.optimum:.2f}" for r in opt.itertuples(index=False))
           + f") minus it; mean rank over (dataset × seed) blocks, 1 = best. Ranked: >= {compare.MIN_SEEDS} seeds, "
           "within one benchmark (same budget and evaluation).",
           markdown_table(*search_table(s))]
    for bench, test in s.search_tests.items():
        out += [f"**{bench}**: {_test_line(test, '(dataset × seed)')}"]
        out += fig(f"cd-search-{bench}.png", f"critical-difference diagram of {bench}")
    out.append(f"Smoke runs (fewer than {compare.MIN_SEEDS} seeds; never ranked):"
               + ("" if smoke[1] else " none."))
    out += [markdown_table(*smoke)] if smoke[1] else []
    out += ["## Anytime curves and accuracy against cost and memory",
            "Best-found accuracy after each evaluation, mean over seeds with a 95% bootstrap band (regret on the right "
            "axis); below, the same against cumulative evaluation seconds for the runs that really train. Then every "
            "method at (search seconds per run, best-found accuracy), marker area = peak memory, Pareto front dashed "
            "(dotted: without table look-ups); a tabular search's cost is its table look-ups (milliseconds: the NB201 "
            f"table holds no training times to simulate); tables per dataset: [cost and memory]({FOLDER}/{COST_PAGE}).",
            "\n".join(fig(ANYTIME, "anytime curves") + fig(ANYTIME_TIME, "anytime curves against time")
                      + fig(COST, "accuracy against search cost and memory"))]
    return out


def summary_markdown(s: Summary, pages: list[str], drawn: set[str]) -> str:
    """The summary page; ``pages``: detail page file names; ``drawn``: figure file names."""
    def fig(name: str, alt: str) -> list[str]:
        return [f"![{alt}]({FOLDER}/{name})"] if name in drawn else []

    links = " · ".join([f"[{p.removesuffix('.md')}]({FOLDER}/{p})" for p in pages]
                       + ([f"[cost and memory]({FOLDER}/{COST_PAGE})"] if s.methods is not None else []))
    out = ["# Leaderboard",
           "Summary of the latest batch of every benchmark, rebuilt by `harness leaderboard` from the Parquet tables "
           "alone; how to read it: [docs/leaderboard.md](../docs/leaderboard.md). Detail per definition: "
           + (links or "none") + ".",
           "## Search methods: best-found accuracy and regret"]
    out += _search_part(s, fig) if s.methods is not None else ["_No search results._"]
    out.append("## Proxies: rank correlation with the 200-epoch test accuracy")
    if s.proxies is None:
        return "\n\n".join(out + ["_No rank rows over random architectures (see the detail pages)._"]) + "\n"
    out.append(f"KROCC / SROCC of the latest rank row with the most random architectures (n; draw 0 where there are "
               f"several; never an `ablation_of` cell's, which has its own page), [95% bootstrap CI over the architectures]. Mean rank: of KROCC within a test below "
               f"({compare.PROXY_DRAWS} disjoint draws per dataset of the architectures a zero-cost benchmark "
               f"scored); – = not in a test. Ranked: >= {compare.MIN_ARCHS} architectures.")
    out.append(markdown_table(*proxy_table(s)))
    out += [f"**{letter} = {b}** ({s.proxy_tests[b][2]:,} architectures; [CD diagram]({FOLDER}/cd-proxies-{b}.png)): "
            f"{_test_line(s.proxy_tests[b][0], '(dataset × draw)')}" for b, letter in _letters(s).items()]
    smoke = s.proxies[s.proxies["smoke"]]
    out.append(f"Smoke rows (fewer than {compare.MIN_ARCHS} architectures; never ranked): "
               + (", ".join(f"{r.proxy} on {r.dataset} (n = {r.n:.0f}, {r.benchmark})" for r in smoke.itertuples())
                  or "none") + ".")
    out.append("Exports: " + " · ".join(f"{name} [CSV](leaderboard-{name}.csv) [LaTeX](leaderboard-{name}.tex)"
                                         for name in export_names(s)))
    return "\n\n".join(out) + "\n"


def cost_page(s: Summary, drawn: set[str]) -> str:
    out = ["# Accuracy against search cost and memory", "Back to the [leaderboard summary](../leaderboard.md).",
           "Search cost = seconds per search run on its device (the sum of its evaluations; DARTS+PT: supernet "
           "training + selection). A tabular search (REA, TPE, random over the NB201 table) costs table look-ups: "
           "milliseconds, because the shipped NB201 table holds no training times, so no simulated training cost is "
           "shown; what evaluating candidates by training costs is in the real-training rows (REA with Original or "
           "Tr-Net training). Peak memory = per evaluation or search step: saved-for-backward bytes on CPU, the CUDA "
           "peak on GPU; none for a look-up. Pareto front = no other method both cheaper and more accurate: among "
           "all methods, and among those that do not look accuracies up. "
           f"Smoke runs (fewer than {compare.MIN_SEEDS} seeds) are shown, marked: their numbers are single runs."]
    out += [f"![accuracy against search cost and memory]({COST})"] if COST in drawn else []
    for ds in _datasets(s.methods) if s.methods is not None else []:
        out += [f"## {ds}", markdown_table(*cost_table(s, ds))]
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------- exports


def export_names(s: Summary) -> list[str]:
    return [n for n, ok in (("search", s.methods is not None), ("proxies", s.proxies is not None),
                            ("cost", s.methods is not None)) if ok]


def exports(s: Summary) -> dict[str, str]:
    """``leaderboard-<table>.csv`` (every row, numbers) and ``.tex`` (the page's table, booktabs)."""
    out = {}
    if s.methods is not None:
        m = s.methods.assign(mean_rank=[s.search_tests[b].rank(n) if b in s.search_tests
                                        and n in s.search_tests[b].names else np.nan
                                        for b, n in zip(s.methods["benchmark"], s.methods["method"])])
        out["leaderboard-search.csv"] = m.drop(columns=["cost_s", "peak_bytes", "device"]).to_csv(index=False)
        out["leaderboard-search.tex"] = latex_table(*search_table(s))
        every, real = set(), set()
        for _, d in m.groupby("dataset"):
            e, r = compare.pareto_fronts(d)
            every, real = every | e, real | r
        m["pareto"] = ["all" if i in every else ("without look-ups" if i in real else "") for i in m.index]
        out["leaderboard-cost.csv"] = m[["dataset", "benchmark", "method", "kind", "seeds", "smoke", "cost_s", "best",
                                         "regret", "peak_bytes", "device", "pareto"]].to_csv(index=False)
        tables = [(ds, cost_table(s, ds)) for ds in _datasets(s.methods)]
        out["leaderboard-cost.tex"] = latex_table(["dataset"] + tables[0][1][0],
                                                  [[ds, *r] for ds, (_, rows) in tables for r in rows])
    if s.proxies is not None:
        ranks = [_proxy_rank(s, p) for p in s.proxies["proxy"]]
        p = s.proxies.assign(mean_rank=[r if np.isfinite(r) else np.nan for r, _ in ranks],
                             rank_test=[next((b for b, letter in _letters(s).items() if letter == t), "")
                                        for _, t in ranks])
        out["leaderboard-proxies.csv"] = p.to_csv(index=False)
        out["leaderboard-proxies.tex"] = latex_table(*proxy_table(s))
    return out
