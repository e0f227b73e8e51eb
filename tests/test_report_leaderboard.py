"""The leaderboard's detail pages and the plots over small synthetic results stores (test inputs
with the runner's columns, not results), plus one real tabular benchmark run through the real
runner. The summary page is tested in test_report_summary.py."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import HarnessError
from harness.report import details, leaderboard, plots
from harness.report.refresh import refresh
from harness.search import summary as search_summary
from harness.store import tables
from harness.store.results import ResultsStore

OLD = "nb201-rea-20240101T000000-aaaaaa"
NEW = "nb201-rea-20240102T000000-bbbbbb"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
PROV = {"commit": "abc123", "version_torch": "2.13.0+cpu", "version_harness": "0.1.0"}


def _summary_row(batch, seed, best, oracle, dataset="cifar10", sampler="rea", method="original",
                 bench="nb201-rea", peak=None, wall=0.5):
    return {"run_id": f"{batch}/{dataset}/{method}/{sampler}/s{seed}", "batch_id": batch, "benchmark": bench,
            "method": method, "evaluator": "tabular:val_acc@12", "sampler": sampler, "dataset": dataset,
            "seed": seed, "budget": 5, "best_arch": ARCH, "best_proxy": 80.0, "best_ground_truth": best,
            "oracle_ground_truth": oracle, "trials": 5, "wall_s": wall, "peak_bytes": peak, "device": "table",
            "commit": "abc123"}


def _runs(batch, seed, proxies, truths, dataset="cifar10", sampler="rea", method="original", bench="nb201-rea"):
    rows, cum = [], 0.0
    for t, (p, g) in enumerate(zip(proxies, truths)):
        cum += 0.1
        rows.append({"run_id": f"{batch}/{dataset}/{method}/{sampler}/s{seed}", "batch_id": batch,
                     "benchmark": bench, "method": method, "evaluator": "tabular:val_acc@12", "sampler": sampler,
                     "seed": seed, "dataset": dataset, "trial": t, "arch_str": ARCH, "proxy": p,
                     "ground_truth": g, "wall_s": 0.1, "cum_wall_s": cum, "peak_bytes": None, "device": "table",
                     "cached": False, **PROV})
    return rows


def _rank_row(dataset, selection, krocc, srocc, draws, batch=None, bench="nb201-rank", proxy="nb201-12ep-val",
              std=0.01):
    row = {"dataset": dataset, "proxy": proxy, "selection": selection, "n": 1000, "draws": draws,
           "krocc": krocc, "krocc_std": std if draws > 1 else 0.0, "srocc": srocc,
           "srocc_std": std if draws > 1 else 0.0, "seed": 0, "wall_s": 0.02, "benchmark": bench,
           "truth": "test_acc@200", "device": "cpu (x86_64, 2 threads)", **PROV}
    if batch is not None:
        row["batch_id"] = batch
    return row


def _train_row(method, wall, saved, ips, trainable, dataset="cifar10-valid", device="cpu (x86_64, 2 threads)",
               cuda=None, epochs=2):
    return {"arch_str": ARCH, "arch_index": 0, "method": method, "dataset": dataset, "n_train": 256,
            "val_acc": 30.0, "test_acc": 29.0, "epochs": epochs, "wall_s": wall, "images_per_s": ips,
            "saved_bytes": saved, "peak_cuda_bytes": cuda, "peak_rss_bytes": 5e8, "params": 400_000,
            "trainable_params": trainable, "device": device, **PROV}


def _write(folder: Path, name: str, rows) -> Path:
    return ResultsStore(folder).append(name, rows)


@pytest.fixture
def results(tmp_path) -> Path:
    """Newer batch written FIRST: the timestamp in the batch id, not the write order, must decide."""
    summary = [_summary_row(NEW, s, b, o) for s, b, o in [(0, 93.0, 94.0), (1, 94.0, 94.5), (2, 95.0, 95.0)]]
    summary += [_summary_row(NEW, 0, 90.0, 91.0, sampler="random"), _summary_row(NEW, 1, 92.0, 92.0, sampler="random")]
    summary += [_summary_row(OLD, s, 50.0, 50.0) for s in range(2)]
    _write(tmp_path, "summary", summary)
    runs = _runs(NEW, 0, [1, 3, 3, 2, 5], [10, 30, 31, 20, 50]) + _runs(NEW, 1, [4, 1, 2, 6, 6], [40, 1, 2, 60, 61])
    runs += _runs(NEW, 0, [2, 1, 3, 3, 1], [20, 1, 30, 31, 1], sampler="random")
    runs += _runs(OLD, 0, [9, 9, 9, 9, 9], [5, 5, 5, 5, 5])
    _write(tmp_path, "runs", runs)
    _write(tmp_path, "rank", [
        _rank_row("cifar10", "random-1000", 0.1, 0.2, 20, batch="nb201-rank-20240101T000000-cccccc"),
        _rank_row("cifar10", "random-1000", 0.6000, 0.7800, 20, batch="nb201-rank-20240103T000000-dddddd", std=0.0123),
        _rank_row("cifar10", "top-1000", 0.4100, 0.5900, 1, batch="nb201-rank-20240103T000000-dddddd"),
        # rows of the old `harness rank`: no batch id; the last row per dataset x proxy x selection counts.
        _rank_row("cifar100", "top-1000", 0.1111, 0.2222, 1, bench="/somewhere/harness/tabular/nb201.parquet"),
        _rank_row("cifar100", "top-1000", 0.3190, 0.4623, 1, bench="/somewhere/harness/tabular/nb201.parquet"),
    ])
    _write(tmp_path, "train", [
        _train_row("original", 10.0, 4_000_000, 100.0, 400_000), _train_row("original", 12.0, 4_000_000, 80.0, 400_000),
        _train_row("tr-net-5-5", 5.0, 2_000_000, 200.0, 100_000, epochs=3),
        _train_row("tr-net-5-5", 6.0, 2_000_000, 160.0, 100_000, epochs=3),
    ])
    return tmp_path


def _pages(folder: Path) -> str:
    """Every detail page of ``folder``, one after the other."""
    return "\n".join(details.build_pages(folder).values())


def _row(md: str, *cells: str) -> str:
    """The one markdown table line that starts with ``cells``."""
    prefix = "| " + " | ".join(cells) + " |"
    hits = [line for line in md.splitlines() if line.startswith(prefix)]
    assert len(hits) == 1, (prefix, hits)
    return hits[0]


def test_latest_batch_by_timestamp_and_mean_std(results):
    md = _pages(results)
    # seeds 93, 94, 95: mean 94.00, population std sqrt(2/3) = 0.82; oracle mean 94.50
    rea = _row(md, "cifar10", "original", "rea")
    assert "| 3 | 94.00 ± 0.82 | 94.00 (no CI) |" in rea and "| 94.50 | 500.00 ms |" in rea  # 3 seeds: no interval
    assert "+3.00, no interval (n = 3 vs 2 seeds; needs >= 5 each)" in rea
    assert "| 2 | 91.00 ± 1.00 | 91.00 (no CI) | – | 91.50 |" in _row(md, "cifar10", "original", "random")
    assert OLD not in md and "50.00" not in md
    assert f"batch `{NEW}`" in md and "1 older batch(es) not shown" in md
    assert md.index("| cifar10 | original | rea |") < md.index("| cifar10 | original | random |")


def test_latest_batch_ids_fall_back_to_file_order():
    df = pd.DataFrame({"benchmark": ["x", "x", "x", "y"], "batch_id": ["x-late", "x-early", "x-early", "y-1"]})
    assert tables.latest_batch_ids(df) == {"x": "x-early", "y": "y-1"}
    stamped = pd.DataFrame({"benchmark": ["x", "x"], "batch_id": [NEW.replace("nb201-rea", "x"),
                                                                   OLD.replace("nb201-rea", "x")]})
    assert tables.latest_batch_ids(stamped) == {"x": NEW.replace("nb201-rea", "x")}
    assert tables.batch_time(NEW) == "20240102T000000" and tables.batch_time("no-stamp") is None


def test_rank_section_latest_batch_paper_values_and_unbatched_rows(results):
    full = _pages(results)
    md = "".join(p.split("## Rank correlation")[1].split("\n## ")[0] for p in ("\n" + full).split("\n# ")
                 if "## Rank correlation" in p)  # the proxies section repeats some rows
    line = _row(md, "nb201-rank", "cifar10", "nb201-12ep-val", "random-1000")
    assert "0.6000 ± 0.0123" in line and "0.7800 ± 0.0123" in line and "0.6128 / 0.7888 (T1 Original)" in line
    line = _row(md, "nb201-rank", "cifar10", "nb201-12ep-val", "top-1000")
    assert "| 0.4100 (no CI) | 0.5900 (no CI) |" in line and "0.4135 / 0.5909 (T3 Original)" in line
    line = _row(md, "harness rank (nb201.parquet)", "cifar100", "nb201-12ep-val", "top-1000")
    assert "| 0.3190 (no CI) | 0.4623 (no CI) |" in line and "0.3189 / 0.4623 (T3 Original)" in line
    assert "0.1000" not in full and "0.1111" not in full  # older batch and overwritten CLI row


def test_training_cost_and_ratios(results):
    md = _pages(results)
    orig = _row(md, "cifar10-valid", "256", "cpu (x86_64, 2 threads)", "original")
    assert "| 2 | 2 | 11.0 s | 90 | 4.0 | – | 400,000 |" in orig
    trnet = _row(md, "cifar10-valid", "256", "cpu (x86_64, 2 threads)", "tr-net-5-5")
    assert "| 2 | 3 | 5.5 s | 180 | 2.0 | – | 100,000 |" in trnet
    ratio = _row(md, "cifar10-valid", "cpu (x86_64, 2 threads)", "original / tr-net-5-5")
    assert ratio.endswith("| 2.00× | 0.50× | 2.00× | – | 4.00× |")


def test_provenance_lists_commit_versions_and_batches(results):
    pages = details.build_pages(results)
    prov = "".join(p.split("## Provenance")[1] for p in pages.values())
    assert "abc123" in prov and "torch 2.13.0+cpu" in prov and NEW in prov
    assert "nb201-rank-20240103T000000-dddddd" in prov and OLD not in prov


def test_interrupted_batch_is_summarised_from_runs(tmp_path):
    """A benchmark with runs but no summary rows (run cut short) is summarised from its runs."""
    runs = _runs(NEW, 0, [1, 3, 3, 2, 5], [10, 30, 31, 20, 50]) + _runs(NEW, 1, [4, 1, 2, 6, 6], [40, 1, 2, 60, 61])
    _write(tmp_path, "runs", runs)
    md = _pages(tmp_path)
    # best by proxy: run 0 -> 50 (proxy 5), run 1 -> 60 (first of the tied 6s); oracle 50 and 61
    assert "| 2 | 55.00 ± 5.00 | 55.00 (no CI) | – (no random search) | 55.50 |" in _row(md, "cifar10", "original", "rea")
    assert "summarised from the runs table" in md


def test_newer_interrupted_batch_is_noted_not_shown(results):
    newest = "nb201-rea-20240105T000000-eeeeee"
    _write(results, "runs", _runs(newest, 0, [1], [11.0]))
    md = _pages(results)
    assert f"newer batch {newest} in the runs table has no summary rows" in md
    assert "| 3 | 94.00 ± 0.82 |" in _row(md, "cifar10", "original", "rea")
    assert "11.00" not in md


def test_anytime_curves_track_best_by_proxy_with_ties_to_the_earlier():
    runs = pd.DataFrame(_runs(NEW, 0, [1, 3, 3, 2, 5], [10, 30, 31, 20, 50])).sample(frac=1, random_state=0)
    curve = search_summary.anytime_curves(runs)
    assert curve["query"].tolist() == [1, 2, 3, 4, 5]
    assert curve["best_truth"].tolist() == [10, 30, 30, 30, 50]


def test_missing_files_and_bad_inputs(tmp_path):
    assert details.build_pages(tmp_path) == {}
    md = leaderboard.build_leaderboard(tmp_path)
    assert "_No search results" in md and "_No rank rows" in md
    assert plots.write_plots(tmp_path) == []
    with pytest.raises(HarnessError, match="does not exist"):
        _pages(tmp_path / "nope")
    (tmp_path / "rank").mkdir()
    bad = tmp_path / "rank" / "part-20240101T000000-h-1-deadbeef.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(HarnessError, match=f"{bad.name}: not a readable Parquet part of table 'rank'"):
        _pages(tmp_path)
    bad.unlink()
    pd.DataFrame({"dataset": ["cifar10"], "proxy": ["p"]}).to_parquet(bad)
    with pytest.raises(HarnessError, match=f"{bad.name}: table 'rank' part lacks required column.*selection"):
        leaderboard.build_leaderboard(tmp_path)


def test_only_rank_results_skip_plots(tmp_path):
    _write(tmp_path, "rank", [_rank_row("cifar10", "top-1000", 0.41, 0.59, 1, batch="nb201-rank-20240103T000000-d")])
    paths = refresh(tmp_path)
    assert paths == [tmp_path / "leaderboard.md", tmp_path / "leaderboard" / "nb201-rank.md"]
    assert not list(tmp_path.rglob("*.png"))


def _assert_real_png(path: Path, min_colours: int = 30) -> None:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) >= min_colours  # lines, bands, text: not a blank canvas


def test_refresh_writes_everything_atomically(results):
    paths = refresh(results)
    assert paths[0] == results / "leaderboard.md" and paths[-2:] == [results / "rea_anytime.png", results / "memory.png"]
    for p in paths:
        if p.suffix == ".png":
            _assert_real_png(p)
    assert {p.name for p in paths if p.suffix == ".md"} == {"leaderboard.md", "nb201-rea.md", "nb201-rank.md",
                                                             "harness_rank_nb201.parquet.md", "unlabelled.md",
                                                             "cost-and-memory.md"}
    assert "![rea_anytime.png](../rea_anytime.png)" in (results / "leaderboard" / "nb201-rea.md").read_text()
    leftovers = [p.name for p in results.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


def test_plot_memory_from_summaries_and_without_memory_figures(tmp_path):
    rows = [_summary_row(NEW, s, 93.0, 94.0, method=m, peak=p, wall=w, bench="nb201-rea-trnet")
            for s in range(2) for m, p, w in [("original", 4e6, 20.0), ("tr-net-5-5", 2e6, 12.0)]]
    _assert_real_png(plots.plot_memory(pd.DataFrame(rows), tmp_path / "m.png"))
    tabular = pd.DataFrame([_summary_row(NEW, 0, 93.0, 94.0)])
    with pytest.raises(HarnessError, match="no rows with a memory figure"):
        plots.plot_memory(tabular, tmp_path / "none.png")
    with pytest.raises(HarnessError, match="must end in .png"):
        plots.plot_memory(pd.DataFrame(rows), tmp_path / "m.jpg")
    assert not (tmp_path / "none.png").exists()


def test_real_tabular_benchmark_feeds_the_leaderboard(tmp_path):
    """The runner's real output (2 seeds x 12 queries of REA and random) is read as written."""
    from harness.bench.definitions import load_definition
    from harness.bench.runner import run_benchmark

    root = Path(__file__).resolve().parents[1]
    defn = load_definition(root / "benchmarks" / "nb201-rea.toml",
                           overrides={"datasets": ["cifar10"], "samplers": ["rea", "random"], "seeds": 2, "budget": 12})
    summary = run_benchmark(defn, tmp_path, progress=False)
    refresh(tmp_path)
    md = (tmp_path / "leaderboard" / "nb201-rea.md").read_text()
    rea = summary[summary["sampler"] == "rea"]["best_ground_truth"]
    expected = f"{rea.mean():.2f} ± {rea.std(ddof=0):.2f}"
    method = str(summary["method"].combine_first(summary["proxy_name"]).iloc[0])  # as the leaderboard names it
    assert f"| 2 | {expected} |" in _row(md, "cifar10", method, "rea")
    _assert_real_png(tmp_path / "rea_anytime.png")


def test_memory_and_throughput_sections(tmp_path):
    md = _pages(tmp_path)
    assert "## Memory" not in md and "## Training throughput" not in md  # no rows, no section
    mem = [{"selection": "random", "arch_str": ARCH, "batch_size": 256, "original/saved_bytes": o,
            "tr-net-5-5/saved_bytes": t, "benchmark": "memory-nb201", "batch_id": b}
           for b, o, t in [("memory-nb201-20240101T000000-aaaaaa", 9e6, 9e6),
                           ("memory-nb201-20240102T000000-bbbbbb", 4e6, 2e6),
                           ("memory-nb201-20240102T000000-bbbbbb", 6e6, 2e6)]]
    _write(tmp_path, "memory", mem)
    _write(tmp_path, "throughput", [
        {"method": "original", "images_per_s": 100.0, "mode": "separate", "selection": "all_conv3x3", "device": "cpu"},
        {"method": "tr-net-5-5", "images_per_s": 150.0, "mode": "separate", "selection": "all_conv3x3",
         "device": "cpu"},
        {"method": "tr-net-5-5", "images_per_s": 170.0, "mode": "separate", "selection": "all_conv3x3",
         "device": "cpu"}])
    md = _pages(tmp_path)
    # latest batch only: means 5.0 MB and 2.0 MB, ratio of the means 2.50x; the older batch's 9 MB is not shown
    assert _row(md, "memory-nb201", "random").endswith("| 2 | 256 | tr-net-5-5 | 5.0 | 2.0 | 2.50× |")
    assert "9.0" not in md.split("## Memory")[1].split("##")[0]
    assert _row(md, "–", "cpu", "all_conv3x3", "separate", "tr-net-5-5").endswith("| 2 | 160.0 | 1.60× |")
    assert _row(md, "–", "cpu", "all_conv3x3", "separate", "original").endswith("| 1 | 100.0 | 1.00× |")
