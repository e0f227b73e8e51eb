"""The CPU Table 1 (benchmarks/nb201-table1-cpu.toml): its definition, data, resume after kill -9,
and its report."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tomllib
from PIL import Image

from harness import HarnessError
from harness.bench.definitions import build_definition, load_definition
from harness.bench.runner import run_benchmark
from harness.cli import main
from harness.data import sources
from harness.data.datasets import load_dataset
from harness.proxies.training import check_backbone_leakage
from harness.report.table1 import table1_benchmarks, table1_report, write_table1_reports
from harness.sections.context import proxy_context
from harness.store.results import ResultsStore
from harness.tabular.nb201 import NB201Table

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = ROOT / "benchmarks" / "nb201-table1-cpu.toml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}

TINY = """
name = "table1-tiny"
kind = "rank"
datasets = ["cifar10"]
proxies = ["nb201-12ep-val", "recorded:original", "recorded:tr-net-5-5"]
compare_to = "recorded:original"
train_selections = ["random"]
sample = 200
draws = 1

[train]
archs = 5
limits = { train = 64, valid = 64, test = 32 }
batch_size = 32
epochs = { original = 1, "tr-net-5-5" = 2 }
warmup = { original = 0, "tr-net-5-5" = 1 }

[backbone]
name = "resnet32"
epochs = 1
batch_size = 64
limit = 128
"""


def test_shipped_definition_is_the_issue_sized_table1_and_full_is_the_papers():
    d = load_definition(DEFINITION)
    assert d["train"]["archs"] >= 40 and d["train"]["data"] == "cifar10-jpeg"
    assert d["train"]["epochs"] == {"original": 12, "tr-net-5-5": 18} and d["train"]["warmup"]["tr-net-5-5"] == 13
    assert d["backbone"]["limit"] == 0 and d["compare_to"] == "recorded:original"
    full = load_definition(DEFINITION, full=True)
    assert full["train"]["archs"] == 1000 and full["backbone"].get("epochs", 200) == 200
    assert d["train"]["cosine_period"] == "after_warmup" and "epochs" not in d["backbone"]  # the shipped backbone
    assert full["train"]["limits"] == {"train": 25000, "valid": 25000, "test": 10000}


@pytest.mark.parametrize("change, match", [
    ({"compare_to": "train:tr-net-5-5"}, "'compare_to' = 'train:tr-net-5-5' is unknown"),
    ({"train": {"archs": 3, "limits": {"train": 0}}}, "'train.limits.train' must be >= 1"),
    ({"train": {"archs": 3, "limits": {"holdout": 5}}}, "unknown key 'train.limits.holdout'"),
    ({"backbone": {"limit": -1}}, "'backbone.limit' must be >= 0"),
])
def test_bad_keys_are_one_clear_line(change, match):
    raw = {"name": "t", "kind": "rank", "datasets": ["cifar10"], "proxies": ["nb201-12ep-val", "train:original"],
           "train": {"archs": 3}, **change}
    with pytest.raises(HarnessError, match=match):
        build_definition(raw, "t.toml")


def test_per_split_limits_and_the_backbone_sees_the_whole_train_half_only(tmp_path):
    d = build_definition({**_tiny_raw(), "backbone": {"limit": 0}}, "t")
    ctx = proxy_context(d, "cifar10", ResultsStore(tmp_path), "b", False)
    assert (len(ctx.data.train), len(ctx.data.valid), len(ctx.data.test)) == (64, 64, 32)
    bb = ctx.backbone_data  # all of the embedded train half, the candidates' valid images
    assert (len(bb.train), len(bb.valid)) == (2022, 64)
    # a backbone trained on the train half passes the leakage guard; one that saw all 50k does not
    check_backbone_leakage({"dataset": bb.name, "split": "train"}, "bb.pt", "cifar10-valid")
    with pytest.raises(HarnessError, match="valid split"):
        check_backbone_leakage({"dataset": "cifar10", "split": "train"}, "bb.pt", "cifar10-valid")
    with pytest.raises(HarnessError, match="unknown split 'holdout'"):
        load_dataset("cifar10-valid", limit={"holdout": 3})


def test_jpeg_npz_is_decoded_with_official_positions(tmp_path):
    ramp = np.linspace(0, 255, 32)
    images = np.stack([np.stack([np.add.outer(ramp, ramp * k / 6) / 2, np.tile(ramp, (32, 1)),
                                 np.full((32, 32), 40.0 * k)], axis=-1) for k in range(6)]).astype(np.uint8)

    def pack(x):
        bufs = []
        for im in x:
            out = io.BytesIO()
            Image.fromarray(im).save(out, format="JPEG", quality=95)
            bufs.append(np.frombuffer(out.getvalue(), dtype=np.uint8))
        return np.concatenate(bufs), np.cumsum([0] + [len(b) for b in bufs]).astype(np.int64)

    (tj, to), (sj, so) = pack(images[:4]), pack(images[4:])
    path = tmp_path / "tiny_jpeg.npz"
    np.savez(path, train_jpeg=tj, train_offsets=to, y_train=np.arange(4), test_jpeg=sj, test_offsets=so,
             y_test=np.arange(2))
    raw = sources.read_npz(path)
    assert raw.x_train.shape == (4, 32, 32, 3) and list(raw.train_index) == [0, 1, 2, 3]
    assert list(raw.test_index) == [0, 1]
    assert np.abs(raw.x_train.astype(int) - images[:4]).mean() < 3  # lossy, but the same images


def test_shipped_jpeg_data_is_cifar10_in_official_order():
    """The first 4,000 training images are the lossless embedded ones: same labels, ~30 dB PSNR."""
    with np.load(sources.JPEG_NPZ, allow_pickle=False) as f:
        assert len(f["train_offsets"]) == 50_001 and len(f["test_offsets"]) == 10_001
        y, buf, off = f["y_train"], f["train_jpeg"], f["train_offsets"]
        x = sources.decode_jpegs(buf[:off[40]], off[:41], "shipped")
    emb = sources.read_embedded()
    assert np.array_equal(y[:4000], emb.y_train)
    mse = np.mean((x.astype(float) - emb.x_train[:40].astype(float)) ** 2)
    assert 25 < 10 * np.log10(255 ** 2 / mse) < 40


def _tiny_raw() -> dict:
    return tomllib.loads(TINY)


def _train_rows(results: Path) -> int:
    folder = results / "train"
    if not folder.is_dir():
        return 0
    rows = ResultsStore(results).read("train")
    return 0 if rows is None else len(rows)


def _bench_killed_after(text: str, tmp_path: Path, rows: int) -> tuple[list, Path]:
    """``harness bench`` of definition ``text`` killed with SIGKILL once ``rows`` train rows exist
    -> (its command, the results folder)."""
    toml, results = tmp_path / "def.toml", tmp_path / "results"
    toml.write_text(text)
    cmd = [sys.executable, "-m", "harness.cli", "bench", str(toml), "--results", str(results), "--quiet"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _train_rows(results) < rows:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return cmd, results


@pytest.mark.slow  # two processes that train 5 architectures twice, tiny
def test_a_killed_table1_run_trains_only_what_is_missing(tmp_path):
    cmd, results = _bench_killed_after(TINY, tmp_path, 5)
    first = ResultsStore(results).read("train")
    assert first is not None and 5 <= len(first) < 10, "killed half way"
    # in turns: Original then Tr-Net on one architecture, then the next
    assert list(first["method"][:4]) == ["original", "tr-net-5-5", "original", "tr-net-5-5"]
    again = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    train = ResultsStore(results).read("train")
    assert len(train) == 10 and not train.duplicated(["arch_index", "method"]).any()
    kept = train.merge(first, on=["arch_index", "method"], suffixes=("", "_first"))
    assert len(kept) == len(first) and (kept["val_acc"] == kept["val_acc_first"]).all()  # replayed, not retrained

    # the report: the rank rows' numbers, the paired row, the cost from the train rows
    assert table1_benchmarks(results) == ["table1-tiny"]
    text, fig = table1_report(results, "table1-tiny")
    rank = ResultsStore(results).read("rank")
    rank = rank[rank["batch_id"] == rank["batch_id"].iloc[-1]].set_index("proxy")
    assert fig["original_krocc"] == rank.loc["recorded:original", "krocc"]
    assert fig["tr-net-5-5_krocc_lo"] == rank.loc["recorded:tr-net-5-5", "krocc_lo"]
    by = train.groupby("method")["wall_s"].sum()
    assert fig["wall_ratio"] == pytest.approx(by["tr-net-5-5"] / by["original"])
    pairs = ResultsStore(results).read("rank_pairs")
    last = pairs[(pairs["batch_id"] == pairs["batch_id"].iloc[-1]) & (pairs["proxy"] == "recorded:tr-net-5-5")]
    assert fig["krocc_diff"] == pytest.approx(last["krocc_diff"].iloc[0])
    truth = NB201Table.load().ground_truth("cifar10")
    assert fig["krocc_diff"] == pytest.approx(fig["tr-net-5-5_krocc"] - fig["original_krocc"])
    assert np.isfinite(truth).all() and "| KROCC, Original (12 epochs) | 0.6128 |" in text
    paths = write_table1_reports(results)
    assert [p.name for p in paths] == ["table1-tiny.md", "table1-tiny_scatter.png", "table1-tiny_difference.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    meta = json.loads(train["backbone_meta"].dropna().iloc[0])
    assert meta["dataset"] == "cifar10-valid" and meta["n_train"] == 128

    # an ablation cell changes one Tr-Net option: it trains Tr-Net again, replays Original, and its
    # report pairs its own Tr-Net rows with the ablated definition's Original rows
    cell = tmp_path / "cell.toml"
    cell.write_text(TINY.replace('name = "table1-tiny"', 'name = "table1-tiny-cell"\nablation_of = "table1-tiny"')
                    .replace("batch_size = 32\n", 'batch_size = 32\ncosine_period = "all_epochs"\n'))
    ran = subprocess.run(cmd[:4] + [str(cell)] + cmd[5:], env=ENV, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    rows = ResultsStore(results).read("train")
    assert set(rows.loc[rows["benchmark"] == "table1-tiny-cell", "method"]) == {"tr-net-5-5"}
    text, fig = table1_report(results, "table1-tiny-cell")
    cell_rows = rows[rows["benchmark"] == "table1-tiny-cell"]
    assert fig["wall_ratio"] == pytest.approx(cell_rows["wall_s"].sum() / by["original"])


PAPER_TINY = TINY.replace('name = "table1-tiny"', 'name = "table1-paper-tiny"').replace(
    'proxies = ["nb201-12ep-val", "recorded:original", "recorded:tr-net-5-5"]',
    'proxies = ["nb201-12ep-val", "recorded:tr-net-5-5"]').replace(
    'compare_to = "recorded:original"', 'compare_to = "nb201-12ep-val"').replace(
    'train_selections = ["random"]', 'train_selections = ["ordered"]').replace(
    'epochs = { original = 1, "tr-net-5-5" = 2 }', 'epochs = { "tr-net-5-5" = 2 }').replace(
    'warmup = { original = 0, "tr-net-5-5" = 1 }', 'warmup = { "tr-net-5-5" = 1 }')


def test_ordered_architectures_grow_n_without_training_any_twice(tmp_path):
    """The paper-protocol shape (benchmarks/nb201-table1-paper.toml): a stop time before the first
    candidate trains nothing; N = 3, then N = 5 trains only the 2 new ones, in the fixed order."""
    raw = tomllib.loads(PAPER_TINY)
    results = tmp_path / "results"
    run_benchmark(replace(build_definition(raw, "t.toml"), stop_at=time.time() - 1), results, progress=False)
    assert _train_rows(results) == 0
    order = np.random.default_rng(0).permutation(15625)
    for n in (3, 5):
        raw["train"]["archs"] = n
        df = run_benchmark(build_definition(raw, "t.toml"), results, progress=False)
        train = ResultsStore(results).read("train")
        assert list(train["arch_index"]) == list(order[:n])  # each trained once, in the fixed order
        tr = df[df["proxy"] == "recorded:tr-net-5-5"]
        assert list(tr["selection"]) == [f"all-{n}"]
    pairs = ResultsStore(results).read("rank_pairs")
    last = pairs[pairs["batch_id"] == pairs["batch_id"].iloc[-1]]
    assert list(last["baseline"]) == ["nb201-12ep-val"] and list(last["selection"]) == ["all-5"]


@pytest.mark.slow  # one process killed while it trains, then a rerun with a stop time
def test_a_killed_paper_protocol_run_continues_with_the_next_architecture(tmp_path):
    cmd, results = _bench_killed_after(PAPER_TINY, tmp_path, 2)
    first = ResultsStore(results).read("train")
    assert first is not None and 2 <= len(first) < 5, "killed half way"
    again = subprocess.run([*cmd, "--hours", "1"], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    train = ResultsStore(results).read("train")
    order = np.random.default_rng(0).permutation(15625)[:5]
    assert list(train["arch_index"]) == list(order) and not train.duplicated(["arch_index", "method"]).any()
    kept = train.merge(first, on=["arch_index", "method"], suffixes=("", "_first"))
    assert len(kept) == len(first) and (kept["val_acc"] == kept["val_acc_first"]).all()  # replayed, not retrained


@pytest.mark.parametrize("args, msg", [
    (["--until", "25:99"], "--until '25:99': expected a local time HH:MM"),
    (["--hours", "0"], "--hours 0.0: must be > 0"),
    (["--hours", "1", "--until", "10:00"], "give at most one of them"),
])
def test_bad_stop_times_are_one_line(tmp_path, monkeypatch, capsys, args, msg):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", str(ROOT / "benchmarks/nb201-table1-paper.toml"), *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists()


def test_a_stop_time_is_refused_for_kinds_that_do_not_train_one_by_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", str(ROOT / "benchmarks/nb201-rea.toml"), "--hours", "1"]) == 2
    assert "only rank definitions stop between candidates" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
