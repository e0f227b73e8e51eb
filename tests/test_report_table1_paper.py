"""The paper-protocol Table 1 report and the CPU Table 1 ablation report, on rows written to a real
results store: every number they show recomputed from the rows."""
import json

import numpy as np
import pandas as pd
import pytest

from harness.report.table1_ablation import ablation, ablation_appendix, ablation_report, convs, write_table1_ablation
from harness.report.table1_paper import COST, cost_figures, paper_figures, paper_report, paper_rows, write_table1_paper
from harness.stats import paired_rank_difference, rank_interval
from harness.store.results import ResultsStore
from harness.tabular.nb201 import NB201Table

TABLE = NB201Table.load()
TRUTH = TABLE.ground_truth("cifar10")
VAL12 = TABLE.column("cifar10", "val_acc", 12)


def _row(arch: int, method: str, val: float, **kw) -> dict:
    row = {"arch_str": TABLE.arch_str(arch), "arch_index": arch,
           "method": method, "dataset": "cifar10-valid", "data_source": "cifar10-jpeg", "n_train": 25000,
           "n_valid": 25000, "n_test": 10000, "val_acc": val, "test_acc": val, "train_loss": 1.0, "epochs": 18,
           "warmup_epochs": 13, "steps": 1, "wall_s": 600.0, "images_per_s": 1.0, "saved_bytes": 100,
           "peak_cuda_bytes": None, "peak_rss_bytes": 10, "params": 1000, "trainable_params": 500,
           "config": "{}", "history": "[]", "commit": "c0ffee", "device": "cpu (test)", "seed": 0,
           "benchmark": "nb201-table1-paper", "batch_id": "b"}
    row.update(kw)
    return row


def test_paper_report_is_rebuilt_from_whatever_rows_exist_and_states_n(tmp_path):
    store = ResultsStore(tmp_path)
    assert paper_report(tmp_path) is None and write_table1_paper(tmp_path) == []
    archs = np.random.default_rng(0).permutation(15625)[:12]
    vals = TRUTH[archs] + np.random.default_rng(1).normal(0, 2, len(archs))
    store.append("train", [_row(int(a), "tr-net-5-5", float(v)) for a, v in zip(archs[:7], vals[:7])])
    store.append("train", [_row(int(a), "tr-net-5-5", float(v), compiled=True) for a, v in zip(archs[7:], vals[7:])]
                 + [_row(int(archs[0]), "tr-net-5-5", 1.0, n_train=768)])  # another budget: not counted
    fig = paper_figures(store.read("train"))
    assert fig["n"] == 12 and list(fig["archs"]) == list(archs)
    d = paired_rank_difference(vals, VAL12[archs], TRUTH[archs])
    assert fig["paired"].krocc == d.krocc and fig["paired"].krocc_p == d.krocc_p
    assert fig["intervals"]["original"]["krocc"] == rank_interval(VAL12[archs], TRUTH[archs])["krocc"]
    text, _ = paper_report(tmp_path)
    assert "N = 12 architectures so far" in text and f"| {d.krocc.text()}, p = {d.krocc_p:.3f} |" in text
    assert "not yet measured" in text  # no cost rows yet
    assert "| 10.0 [10.0, 10.0]; 2.0 h; 5 of 12 |" in text  # the rows before the column existed count as eager
    store.append("train", [_row(int(a), m, float(VAL12[a] + off), benchmark=COST, wall_s=w, saved_bytes=s, seed=1)
                           for a in archs[:3] for m, off, w, s in (("original", 1.0, 400.0, 300), ("tr-net-5-5", 0, 300.0, 100))])
    store.append("train", [_row(int(archs[0]), "original", 1.0, benchmark=COST, wall_s=100.0, seed=1, device="cpu (b)")])
    cost = cost_figures(store.read("train"))
    assert cost["n"] == 3 and cost["wall_ratio"] == pytest.approx(0.75) and cost["saved_ratio"] == pytest.approx(3.0)
    assert np.allclose(cost["arch_ratios"], 0.75)  # the first row of an architecture counts, not a duplicate
    assert np.allclose(cost["ours_minus_table"], 1.0)
    by_index = np.argsort(archs[:3])  # the cost figures list architectures by index
    seed_diff = (VAL12[archs[:3]] - vals[:3])[by_index]  # the cost run's seed 1 minus the main run's seed 0
    assert np.allclose(cost["seed_diff"], seed_diff)
    text, _ = paper_report(tmp_path)
    assert "0.750 (15 min / 20 min); 0.75, 0.75, 0.75 |" in text and "`cpu (test)` (12)" in text
    assert ", ".join(f"{v:+.2f}" for v in seed_diff) + " points |" in text
    assert [p.name for p in write_table1_paper(tmp_path)] == ["nb201-table1-paper.md", "nb201-table1-paper_scatter.png"]
    assert len(paper_rows(store.read("train"))) == 12  # the cost run's rows are not the main run's


def _cell(arch: int, method: str, val: float, period: str, sha: str, bb_epochs: int, seed: int = 0, **kw) -> dict:
    cfg = json.dumps({"cosine_period": period})
    meta = json.dumps({"epochs": bb_epochs, "val_acc": 60.0, "mode": "fp32"}) if method != "original" else None
    return _row(arch, method, val, n_train=768, config=cfg, backbone_meta=meta, seed=seed,
                backbone_sha256=sha if method != "original" else None, benchmark="nb201-table1-cpu",
                arch_str=f"|nor_conv_3x3~0|+|{'nor_conv_1x1' if arch % 2 else 'skip_connect'}~0|avg_pool_3x3~1|",
                params=1000 + arch)


def test_ablation_groups_cells_by_what_the_rows_record(tmp_path):
    archs = [int(a) for a in np.random.default_rng(2).choice(15625, 30, replace=False)]
    noise = np.random.default_rng(3)
    rows = [_cell(a, "original", float(VAL12[a]), "all_epochs", "", 0) for a in archs]
    rows += [_cell(a, "original", float(VAL12[a] + noise.normal(0, 1)), "all_epochs", "", 0, seed=1) for a in archs]
    cells = {("aaaa", "all_epochs", 5): 5.0, ("aaaa", "after_warmup", 5): 1.0, ("bbbb", "after_warmup", 200): 0.2}
    for (sha, period, ep), sd in cells.items():
        rows += [_cell(a, "tr-net-5-5", float(TRUTH[a] + noise.normal(0, sd)), period, sha, ep) for a in archs]
    ResultsStore(tmp_path).append("train", pd.DataFrame(rows))
    fig = ablation(tmp_path)
    got = {(c["backbone"].split("sha ")[1][:4], c["period"]): c for c in fig["cells"]}
    assert set(got) == {("aaaa", "all_epochs"), ("aaaa", "after_warmup"), ("bbbb", "after_warmup")}
    best = got[("bbbb", "after_warmup")]
    tr = {r["arch_index"]: r["val_acc"] for r in rows if r.get("backbone_sha256") == "bbbb"}
    order = sorted(archs)  # the report pairs the architectures in index order
    assert best["paired"].krocc == paired_rank_difference(np.array([tr[a] for a in order]), VAL12[order],
                                                          TRUTH[order]).krocc
    assert best["paired"].krocc.low > 0 and "Tr-Net-5-5 better" in best["verdict"]
    (noise_row,) = fig["noise"]
    assert noise_row["method"] == "original" and noise_row["n"] == 30
    gt_fav = fig["favours"][0]
    assert gt_fav["params"] == rank_interval(TRUTH[order], np.array([1000.0 + a for a in order]))["krocc"]
    assert gt_fav["convs"] == rank_interval(TRUTH[order], np.array([1.0 + a % 2 for a in order]))["krocc"]
    assert [c["bb_epochs"] for c in fig["cells"]] == [5, 5, 200]  # the 2x2 reads row by row
    text, _ = ablation_report(tmp_path)
    assert text.count("| 5-epoch") == 2 and "| 200-epoch" in text
    appendix = ablation_appendix(ablation(tmp_path), "nb201-table1-cpu")  # the Table 1 report of a cell carries it
    assert "## Backbone x schedule" in appendix and "## Noise ceiling" in appendix and "![ablation.png]" in appendix
    assert f"| {best['paired'].krocc.text()} |" in appendix and f"| {noise_row['krocc'].text()} |" in appendix
    assert ablation_appendix(ablation(tmp_path), "table1-tiny") == ""  # not a cell
    assert [p.name for p in write_table1_ablation(tmp_path)] == ["ablation.md", "ablation.png"]


def test_convs_counts_the_convolutions_of_a_cell():
    assert convs("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|") == 3
