"""Paper Tables 1 and 3 as the paper reports them: one random draw beside our mean over draws,
and real-trained proxies ranked over the top-k by ground truth (the Tr-Net column of Table 3)."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from harness import HarnessError
from harness.analysis.rank import rank_proxy, top_k
from harness.bench.definitions import build_definition, load_definition
from harness.bench.runner import run_benchmark
from harness.proxies import GroundTruth, TableProxy
from harness.report.details import rank_section
from harness.spaces import get_space
from harness.store.results import ResultsStore

SPACE = get_space("nb201")


def test_single_draw_is_draw_zero_next_to_the_mean():
    truth = GroundTruth(SPACE, "cifar10").vector()
    proxy = TableProxy("nb201-12ep-val", SPACE, "cifar10").values()
    r = rank_proxy(proxy, truth, dataset="cifar10", proxy_name="p", sample=1000, draws=5, seed=3)
    sel = np.random.default_rng([3, 0]).choice(len(truth), size=1000, replace=False)  # draw 0, by hand
    assert r.krocc_single == pytest.approx(kendalltau(proxy[sel], truth[sel]).statistic, abs=1e-12)
    assert r.srocc_single == pytest.approx(spearmanr(proxy[sel], truth[sel]).statistic, abs=1e-12)
    assert r.single_draw_seed == "[3, 0]" and r.draws == 5
    assert r.krocc_single != pytest.approx(r.krocc, abs=1e-6)  # one draw is not the mean of five
    top = rank_proxy(proxy, truth, dataset="cifar10", proxy_name="p", top=100)
    assert (top.krocc_single, top.srocc_single, top.single_draw_seed) == (top.krocc, top.srocc, "")


def test_rank_rows_and_leaderboard_show_both(tmp_path):
    raw = {"name": "rank-single", "kind": "rank", "datasets": ["cifar10"], "sample": 1000, "draws": 3}
    df = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    row = df.iloc[0]
    assert row["single_draw_seed"] == "[0, 0]" and row["draws"] == 3 and row["krocc_single"] != row["krocc"]
    section = rank_section(ResultsStore(tmp_path).read("rank"))
    # the single draw with its interval, and the spread over the three draws beside it
    assert f"{row['krocc_single']:.4f} [{row['krocc_lo']:.4f}, {row['krocc_hi']:.4f}]" in section
    assert f"{row['srocc_single']:.4f} [{row['srocc_lo']:.4f}, {row['srocc_hi']:.4f}]" in section
    assert f"{row['krocc']:.4f} ± {row['krocc_std']:.4f}" in section
    assert row["krocc_lo"] < row["krocc_single"] < row["krocc_hi"] and row["ci_resamples"] == 2000


@pytest.mark.parametrize("change, match", [
    ({"train_selections": ["top"]}, "'train_selections' = 'top' is unknown"),
    ({"train_selections": []}, "at least one"),
    ({"train_selections": ["top_k", "top_k"]}, "at most once"),
    ({"train_selections": ["top_k"], "top_k": None}, "'top_k' must be >= 2"),
    ({"train_selections": ["top_k"], "top_k": 1}, "'top_k' must be >= 2"),
    ({"train_selections": ["random", "top_k"], "train": {}}, "'train.archs' must be >= 2"),
])
def test_train_selections_are_checked(change, match):
    raw = {"name": "r", "kind": "rank", "datasets": ["cifar10"], "proxies": ["train:original"], "top_k": 4,
           "train": {"archs": 3}}
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(HarnessError, match=match):
        build_definition(raw, "test")


def test_shipped_topk_definition_is_valid_and_full_is_the_papers_k():
    small = load_definition("benchmarks/nb201-rank-topk-trained.toml")
    full = load_definition("benchmarks/nb201-rank-topk-trained.toml", full=True)
    assert small["train_selections"] == ["top_k"] and small["top_k"] < 10
    assert full["top_k"] == 1000 and full["train"]["epochs"] == {"original": 12, "tr-net-5-5": 18}


@pytest.mark.slow  # real training of 4 networks, tiny
def test_trained_proxy_ranked_on_the_top_k_by_ground_truth(tmp_path):
    """The top-2 by ground truth (tie rule 'drop') plus 2 random architectures, each trained once."""
    raw = {"name": "rank-topk-trained", "kind": "rank", "datasets": ["cifar10"], "top_k": 2,
           "proxies": ["nb201-12ep-val", "train:original"], "train_selections": ["random", "top_k"],
           "train": {"archs": 2, "limit": 64, "batch_size": 32, "epochs": {"original": 1}}}
    df = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    truth = GroundTruth(SPACE, "cifar10").vector()
    top = top_k(truth, 2, "drop")
    random = np.random.default_rng(0).choice(len(truth), size=2, replace=False)
    trained = ResultsStore(tmp_path).read("train")
    assert sorted(trained["arch_index"]) == sorted(set(top) | set(random))  # each architecture once
    rows = df.set_index(["proxy", "selection"])
    assert rows.loc[("nb201-12ep-val", "top-2"), "n"] == 2      # the table path, same set
    assert rows.loc[("train:original", "top-2"), "n"] == 2
    assert rows.loc[("train:original", "all-2"), "n"] == 2
    # The top-2 row is the trained validation accuracies of exactly those two, ranked by hand.
    acc = trained.set_index("arch_index")["val_acc"]
    want = kendalltau(acc.loc[top].to_numpy(), truth[top]).statistic
    got = rows.loc[("train:original", "top-2"), "krocc"]
    assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want, abs=1e-12)
    assert isinstance(df, pd.DataFrame) and (df["wall_s"] > 0).all()
