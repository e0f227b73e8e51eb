"""The leaderboard summary page: every number on it recomputed here from the stored rows, smoke rows
never ranked, and everything `harness leaderboard` writes (pages, figures, exports).

The recomputation below uses pandas, scipy and the NB201 Parquet table directly; of the harness it
uses only the reading of the store (latest batches) and ``harness.stats.mean_interval``, the
definition of the intervals the page shows."""
from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy.stats import friedmanchisquare, kendalltau, rankdata, studentized_range

from harness.report import compare, leaderboard, summary
from harness.report.refresh import refresh
from harness.search.summary import summaries_from_runs
from harness.stats import mean_interval
from harness.store.results import ResultsStore
from harness.store.tables import latest_batches, read_results

ROOT = Path(__file__).resolve().parents[1]
TABLE = pq.read_table(ROOT / "harness" / "tabular" / "nb201.parquet").to_pandas()
SEARCH = "nb201-rea-20250101T000000-aaaaaa"
PROXIES = "nb201-proxies-20250101T000000-bbbbbb"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NUMBER = re.compile(r"(?<![\w.\-@])-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")
#: Numbers the page states as constants (95% intervals, >= 5 seeds, >= 20 architectures, 10 draws,
#: 200-epoch accuracy, "1 = best", "draw 0", alpha 0.05).
CONSTANTS = {"95", "5", "20", "10", "200", "1", "0", "0.05"}


def _runs(bench, batch, sampler, evaluator, dataset, seed, trials, rng, wall=1e-5, peak=None):
    idx = rng.choice(len(TABLE), size=trials, replace=False)
    truth = TABLE[f"{dataset}/test_acc@200"].to_numpy()[idx]
    return [{"run_id": f"{batch}/{dataset}/{evaluator}/{sampler}/s{seed}", "batch_id": batch, "benchmark": bench,
             "method": evaluator.split(":")[-1], "evaluator": evaluator, "sampler": sampler, "dataset": dataset,
             "seed": seed, "trial": t, "arch_str": ARCH, "proxy": float(g + 3 * rng.normal()), "ground_truth": float(g),
             "wall_s": wall, "cum_wall_s": wall * (t + 1), "peak_bytes": peak, "device": "table" if peak is None else "cpu"}
            for t, g in enumerate(truth)]


def _rank_row(bench, batch, dataset, proxy, n, krocc, srocc):
    return {"benchmark": bench, "batch_id": batch, "dataset": dataset, "proxy": proxy, "selection": f"random-{n}",
            "n": n, "draws": 1, "krocc": krocc, "srocc": srocc, "krocc_lo": krocc - 0.05, "krocc_hi": krocc + 0.04,
            "srocc_lo": srocc - 0.06, "srocc_hi": srocc + 0.03, "wall_s": 0.01, "device": "cpu"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A ranked search benchmark (3 samplers x 2 datasets x 6 seeds), smoke searches (1 seed of real
    training, 1 DARTS+PT run), proxies over 200 stored architectures and one 10-architecture row."""
    root = tmp_path_factory.mktemp("results")
    s = ResultsStore(root)
    rng = np.random.default_rng(0)
    runs = [r for ds in ("cifar10", "cifar100") for sampler in ("rea", "random", "tpe") for seed in range(6)
            for r in _runs("nb201-rea", SEARCH, sampler, "tabular:val_acc@12", ds, seed, 12, rng)]
    smoke = "nb201-rea-trnet-20250101T000000-cccccc"
    runs += [r for ev, peak in (("train:original", 4e8), ("train:tr-net-5-5", 2e8))
             for r in _runs("nb201-rea-trnet", smoke, "rea", ev, "cifar10", 0, 4, rng, wall=5.0, peak=peak)]
    s.append("runs", runs)
    s.append("summary", summaries_from_runs(pd.DataFrame(runs)))
    s.append("oneshot", [{"run_id": "o/0", "batch_id": "nb201-dartspt-20250101T000000-dddddd",
                          "benchmark": "nb201-dartspt", "dataset": "cifar10", "supernet": "tr-supernet-5-5",
                          "arch_str": ARCH, "test_acc": 89.5, "search_s": 30.0, "saved_bytes": 1.8e8, "seed": 0,
                          "epochs": 2, "space": "nb201", "device": "cpu", "warmup_epochs": 1, "cutout": 16,
                          "train_s": 10.0, "select_s": 20.0, "epoch_s": 5.0, "final_eig": 0.1, "method": "DARTS+PT"}])
    archs = rng.choice(len(TABLE), size=200, replace=False)
    truth = TABLE["cifar10/test_acc@200"].to_numpy()[archs]
    values = {"zc:good": truth + rng.normal(size=200), "zc:fair": truth + 4 * rng.normal(size=200),
              "zc:poor": rng.normal(size=200)}
    values["zc:poor"][3] = np.nan  # a failed proxy value: ranks last
    s.append("zero_cost", [{"proxy": p, "arch_str": ARCH, "arch_index": int(a), "dataset": "cifar10", "value": v[i],
                            "ground_truth": float(truth[i]), "benchmark": "nb201-proxies", "batch_id": PROXIES,
                            "space": "nb201"} for p, v in values.items() for i, a in enumerate(archs)])
    s.append("rank", [_rank_row("nb201-proxies", PROXIES, "cifar10", p, 200, k, sr) for p, k, sr in
                      (("zc:good", 0.81, 0.93), ("zc:fair", 0.52, 0.7), ("zc:poor", 0.01, 0.02),
                       ("nb201-12ep-val", 0.6, 0.78))]
                     + [_rank_row("nb201-rank", "nb201-rank-20250101T000000-eeeeee", "cifar100", "nb201-12ep-val",
                                  1000, 0.64, 0.82),
                        _rank_row("nb201-smoke", "nb201-smoke-20250101T000000-ffffff", "cifar10", "zc:tiny", 10,
                                  0.3, 0.4)])
    return root


# --------------------------------------------------------------------------- recomputation


def _f(x, digits=2) -> str:
    return f"{x:,.{digits}f}"


def _rank_numbers(scores: np.ndarray) -> set[str]:
    """Mean ranks, Friedman chi-square and p, the Nemenyi CD and the rank gaps, as the page prints them."""
    k, n = scores.shape[1], scores.shape[0]
    ranks = rankdata(-scores, axis=1).mean(axis=0)
    ref = friedmanchisquare(*scores.T) if k > 2 else None
    cd = studentized_range.ppf(0.95, k, np.inf) / np.sqrt(2) * np.sqrt(k * (k + 1) / (6 * n))
    out = {_f(r) for r in ranks} | {_f(abs(a - b)) for a in ranks for b in ranks} | {_f(cd), str(n)}
    return out | ({_f(ref.statistic), f"{ref.pvalue:.2g}"} if ref is not None else set())


def expected_numbers(root: Path) -> set[str]:
    """Every number the summary may show, recomputed from the stored rows of ``root``."""
    s = ResultsStore(root)
    out = set(CONSTANTS)
    summ, oneshot = latest_batches(s.read("summary")), latest_batches(s.read("oneshot"))
    runs = summ.assign(label=summ["sampler"].fillna("-") + " " + summ["evaluator"].fillna("-") + " "
                       + summ["method"].fillna("-"),
                       acc=summ["best_ground_truth"].astype(float),
                       queries=summ["trials"].fillna(summ["budget"]) if "budget" in summ else summ["trials"])
    if oneshot is not None:
        runs = pd.concat([runs, oneshot.assign(label=oneshot["supernet"], acc=oneshot["test_acc"].astype(float),
                                               queries=oneshot["epochs"])])
    for (bench, label, ds), g in runs.groupby(["benchmark", "label", "dataset"]):
        opt = TABLE[f"{ds}/test_acc@200"].max()
        iv = mean_interval(g["acc"])
        out |= {_f(iv.estimate), _f(iv.low), _f(iv.high), _f(opt - iv.estimate), _f(opt), str(len(g)),
                _f(g["queries"].max(), 0)}
    for bench, g in runs[runs.groupby(["benchmark", "label", "dataset"])["acc"].transform("size") >= 5].groupby(
            "benchmark"):
        blocks = g.pivot_table(index=["dataset", "seed"], columns="label", values="acc").dropna()
        out |= _rank_numbers(blocks.to_numpy())
    rank = latest_batches(s.read("rank"))
    rank = rank[rank["selection"].str.startswith("random-") | rank["selection"].str.startswith("all-")]
    for r in rank.itertuples():
        cols = ("krocc", "krocc_lo", "krocc_hi", "srocc", "srocc_lo", "srocc_hi", "krocc_single", "srocc_single")
        out |= {_f(getattr(r, c), 3) for c in cols if hasattr(r, c)}
        out |= {_f(r.n, 0)}
    zc = latest_batches(s.read("zero_cost"))
    for bench, g in zc.groupby("benchmark"):
        archs = list(dict.fromkeys(g["arch_index"]))
        size = len(archs) // 10
        if size < 20:
            continue
        wide = g.pivot_table(index="arch_index", columns="proxy", values="value", dropna=False).reindex(archs)
        truth = g.groupby("arch_index")["ground_truth"].first().reindex(archs).to_numpy()
        tables = set(rank.loc[rank["benchmark"] == bench, "proxy"]) & {"nb201-12ep-val", "nb201-200ep-oneseed"}
        column = {"nb201-12ep-val": "val_acc@12", "nb201-200ep-oneseed": "test_acc_oneseed@200"}
        for name in tables:
            wide[name] = TABLE[f"cifar10/{column[name]}"].to_numpy()[archs]
        scores = np.array([[kendalltau(rankdata(np.nan_to_num(wide[p].to_numpy()[d * size:(d + 1) * size],
                                                              nan=-np.inf)), truth[d * size:(d + 1) * size]).statistic
                            for p in wide.columns] for d in range(10)])
        out |= _rank_numbers(scores) | {_f(len(archs), 0)}
    return out


def _numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


# --------------------------------------------------------------------------- tests


def test_every_number_on_the_summary_equals_one_recomputed_from_the_rows(store):
    page = leaderboard.build_leaderboard(store)
    found = _numbers(page)
    assert len(found) > 60  # the check is not vacuous
    assert sorted(set(found) - expected_numbers(store)) == []


def test_the_committed_results_summary_fits_the_page_and_every_number_is_recomputed():
    results = ROOT / "results"
    page = leaderboard.build_leaderboard(results)
    assert len(page.splitlines()) <= 80
    assert sorted(set(_numbers(page)) - expected_numbers(results)) == []


def _table_rows(page: str, first_header: str, which: int = 0) -> list[list[str]]:
    """The rows of the ``which``-th markdown table whose header starts with ``first_header``."""
    lines = page.splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |")][which]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_search_table_cells_and_the_rank_test(store):
    page = leaderboard.build_leaderboard(store)
    rows = {r[1]: r for r in _table_rows(page, "benchmark")}
    assert set(rows) == {f"{s} · tabular:val_acc@12" for s in ("rea", "random", "tpe")}
    summ = ResultsStore(store).read("summary")
    for method, row in rows.items():
        g = summ[(summ["sampler"] == method.split(" ·")[0]) & (summ["benchmark"] == "nb201-rea")]
        c10 = mean_interval(g.loc[g["dataset"] == "cifar10", "best_ground_truth"])
        assert row[2] == "6 × 12"
        assert row[3] == f"{c10.estimate:.2f} [{c10.low:.2f}, {c10.high:.2f}]"
        assert row[4] == f"{TABLE['cifar10/test_acc@200'].max() - c10.estimate:.2f}"
    blocks = summ[summ["benchmark"] == "nb201-rea"].pivot_table(index=["dataset", "seed"], columns="sampler",
                                                                values="best_ground_truth")
    ranks = rankdata(-blocks.to_numpy(), axis=1).mean(axis=0)
    for sampler, rank in zip(blocks.columns, ranks):
        assert rows[f"{sampler} · tabular:val_acc@12"][-1] == f"{rank:.2f}"
    ref = friedmanchisquare(*blocks.to_numpy().T)
    assert f"Friedman χ² = {ref.statistic:.2f}, p = {ref.pvalue:.2g} over 12 (dataset × seed) blocks" in page


def test_smoke_rows_are_listed_apart_and_never_ranked(store):
    page = leaderboard.build_leaderboard(store)
    assert [r[0] for r in _table_rows(page, "benchmark")] == ["nb201-rea"] * 3  # the 6-seed methods only
    smoke = _table_rows(page, "benchmark", which=1)
    assert sorted(r[1] for r in smoke) == ["DARTS+PT · tr-supernet-5-5", "rea · train:original",
                                           "rea · train:tr-net-5-5"]
    assert all(r[3] == "1" for r in smoke)
    s = summary.summarise(read_results(store, leaderboard.TABLES))
    ranked_names = {n for t in s.search_tests.values() for n in t.names}
    assert not any(n.startswith("DARTS+PT") or "train:" in n for n in ranked_names)
    proxies = {r[0]: r for r in _table_rows(page, "proxy")}
    assert "zc:tiny" not in proxies and "zc:tiny on cifar10 (n = 10, nb201-smoke)" in page
    assert not any("zc:tiny" in t.names for t, _, _ in s.proxy_tests.values())
    csv = pd.read_csv(StringIO(summary.exports(s)["leaderboard-proxies.csv"]))
    assert np.isnan(csv.loc[csv["proxy"] == "zc:tiny", "mean_rank"]).all()
    search = pd.read_csv(StringIO(summary.exports(s)["leaderboard-search.csv"]))
    assert search.loc[search["smoke"], "mean_rank"].isna().all() and search.loc[~search["smoke"], "mean_rank"].notna().all()


def test_proxy_rank_test_over_disjoint_draws(store):
    s = summary.summarise(read_results(store, leaderboard.TABLES))
    test, blocks, n = s.proxy_tests["nb201-proxies"]
    assert n == 200 and blocks.shape == (10, 4)  # 10 draws of 20; zc:good, zc:fair, zc:poor, nb201-12ep-val
    assert test.order()[0] == "zc:good" and test.order()[-1] == "zc:poor" and test.rejects()
    page = leaderboard.build_leaderboard(store)
    assert _table_rows(page, "proxy")[0][0] == "zc:good" and _table_rows(page, "proxy")[0][-1] == "1.00 (A)"


def _real_png(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 300
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) >= 20


def test_refresh_writes_summary_pages_figures_and_exports(store, tmp_path):
    root = tmp_path / "results"
    ResultsStore(root)  # a copy, so stale-file removal can be seen without touching the module's store
    for table in ("runs", "summary", "oneshot", "zero_cost", "rank"):
        ResultsStore(root).append(table, ResultsStore(store).read(table))
    (root / "leaderboard").mkdir()
    (root / "leaderboard" / "gone-benchmark.md").write_text("stale")
    paths = refresh(root)
    assert paths[0] == root / "leaderboard.md"
    page = paths[0].read_text()
    assert len(page.splitlines()) <= 80 and not (root / "leaderboard" / "gone-benchmark.md").exists()
    for link in re.findall(r"\]\(([^)]+)\)", page):
        if not link.startswith("../"):
            assert (root / link).exists(), link  # every detail page, figure and export it links
    for name in ("nb201-rea", "nb201-rea-trnet", "nb201-dartspt", "nb201-proxies", "nb201-rank", "nb201-smoke"):
        assert f"(leaderboard/{name}.md)" in page
    for png in ("cd-search-nb201-rea", "cd-proxies-nb201-proxies", "anytime", "anytime-time", "cost-memory"):
        _real_png(root / "leaderboard" / f"{png}.png")
    tex = (root / "leaderboard-search.tex").read_text()
    assert tex.startswith("\\begin{tabular}") and "\\toprule" in tex and "\\bottomrule" in tex and "\\_" in tex
    cost = pd.read_csv(root / "leaderboard-cost.csv")
    assert set(cost["kind"]) == {"tabular", "real training", "one-shot"}
    leftovers = [p.name for p in root.rglob("*") if p.suffix == ".tmp"]
    assert leftovers == []


def test_an_ablation_cell_never_stands_in_for_the_definition_it_ablates():
    """A later batch with as many architectures wins, unless its definition is an ablation cell."""
    own = {**_rank_row("t1", "t1-20250101T000000-aaaaaa", "cifar10", "recorded:tr-net-5-5", 40, 0.3, 0.4),
           "config": json.dumps({"name": "t1"})}
    cell = {**_rank_row("t1-b", "t1-b-20250102T000000-aaaaaa", "cifar10", "recorded:tr-net-5-5", 40, -0.1, -0.2),
            "config": json.dumps({"name": "t1-b"})}
    assert compare.proxy_table(pd.DataFrame([own, cell]))["benchmark"].tolist() == ["t1-b"]
    cell["config"] = json.dumps({"name": "t1-b", "ablation_of": "t1"})
    table = compare.proxy_table(pd.DataFrame([own, cell]))
    assert table["benchmark"].tolist() == ["t1"] and table["krocc"].tolist() == [0.3]
