"""The results store (Parquet datasets of part files), the Optuna storage helper, the migration
script and the best-by-proxy query, on real files in tmp_path."""
import importlib.util
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from harness import HarnessError
from harness.search.storage import optuna_storage
from harness.search.summary import anytime_curves, best_by_proxy, summaries_from_runs, summarise_run
from harness.store.results import TABLES, ResultsStore

ROOT = Path(__file__).resolve().parents[1]
PARTS, ROWS = 20, 3


def _train_rows(worker: int, part: int, n: int = ROWS) -> list[dict]:
    return [{"method": f"w{worker}", "dataset": "cifar10", "wall_s": float(part), "worker": worker, "part": part,
             "row": i} for i in range(n)]


def _append_many(root: str, worker: int, start) -> None:
    start.wait(timeout=60)
    store = ResultsStore(root)
    for part in range(PARTS):
        store.append("train", _train_rows(worker, part))


def test_four_processes_append_every_row_exactly_once(tmp_path):
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, start)) for w in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    df = ResultsStore(tmp_path).read("train")
    keys = list(zip(df["worker"], df["part"], df["row"]))
    assert len(keys) == 4 * PARTS * ROWS and len(set(keys)) == len(keys)
    parts = sorted((tmp_path / "train").iterdir())
    assert len(parts) == 4 * PARTS and all(p.name.startswith("part-") and p.suffix == ".parquet" for p in parts)


def test_append_writes_one_named_part_and_read_ignores_temp_files(tmp_path):
    store = ResultsStore(tmp_path)
    part = store.append("train", _train_rows(0, 0))
    assert part.parent == store.path("train") == tmp_path / "train"
    name = part.name.split("-")
    assert name[0] == "part" and len(name[1]) == 15 and name[1][8] == "T" and len(name[-1]) == len("0123abcd.parquet")
    # A write in flight: write_atomic's temp file, here a complete Parquet file with rows.
    pd.DataFrame(_train_rows(9, 9, n=5)).to_parquet(part.parent / f".{part.name}.abc123.tmp", index=False)
    (part.parent / ".part-x.parquet.def456.tmp").write_bytes(b"half written")
    df = store.read("train")
    assert len(df) == ROWS and set(df["worker"]) == {0}
    store.check_readable()
    assert store.parts("train") == [part]


def test_parts_with_different_columns_read_as_their_union(tmp_path):
    store = ResultsStore(tmp_path)
    store.append("train", [{"method": "a", "dataset": "d", "wall_s": 1.0, "peak": None}])  # null-typed column
    store.append("train", [{"method": "b", "dataset": "d", "wall_s": 2, "peak": 5.0}])  # int wall_s
    store.append("train", [{"method": "c", "dataset": "d", "wall_s": 3.0, "note": "x"}])  # no peak, extra note
    df = store.read("train").sort_values("method", ignore_index=True)
    assert list(df["method"]) == ["a", "b", "c"] and list(df["wall_s"]) == [1.0, 2.0, 3.0]
    assert df["peak"].isna().tolist() == [True, False, True] and df.loc[1, "peak"] == 5.0
    assert df["note"].isna().tolist() == [True, True, False]
    sub = store.read("train", columns=["method", "note", "absent"])
    assert list(sub.columns) == ["method", "note", "absent"] and sub["absent"].isna().all()
    assert store.read("summary") is None  # no part yet


def test_corrupt_part_and_missing_required_columns_name_the_file(tmp_path):
    store = ResultsStore(tmp_path)
    store.append("rank", [{"dataset": "cifar10", "proxy": "p", "selection": "top-1000", "krocc": 0.4, "srocc": 0.6}])
    bad = store.path("rank") / "part-20240101T000000-host-1-0badf00d.parquet"
    bad.write_bytes(b"PAR1 truncated")
    for call in (lambda: store.read("rank"), store.check_readable):
        with pytest.raises(HarnessError, match=f"{bad.name}: not a readable Parquet part of table 'rank'") as e:
            call()
        assert "\n" not in str(e.value)
    bad.unlink()
    pd.DataFrame({"dataset": ["cifar10"], "proxy": ["p"]}).to_parquet(bad)
    with pytest.raises(HarnessError, match=f"{bad.name}: table 'rank' part lacks required column.*selection, krocc"):
        store.read("rank")


def test_unknown_table_empty_rows_and_rows_lacking_columns(tmp_path):
    store = ResultsStore(tmp_path)
    for call in (lambda: store.append("nope", [{"a": 1}]), lambda: store.read("nope"), lambda: store.path("nope")):
        with pytest.raises(HarnessError, match="results table 'nope': unknown"):
            call()
    with pytest.raises(HarnessError, match="nothing to append"):
        store.append("train", [])
    with pytest.raises(HarnessError, match="nothing to append"):
        store.append("train", pd.DataFrame(columns=["method", "dataset", "wall_s"]))
    with pytest.raises(HarnessError, match="lack required column.*wall_s"):
        store.append("train", [{"method": "a", "dataset": "d"}])
    assert not (tmp_path / "train").exists() or not list((tmp_path / "train").iterdir())
    assert set(TABLES) >= {"runs", "summary", "rank", "train", "memory", "throughput", "cka"}
    assert all(spec.folder == name for name, spec in TABLES.items())  # one folder per table, by name
    assert all(spec.required and spec.description for spec in TABLES.values())


def test_optuna_storage_kinds(tmp_path):
    assert optuna_storage(None) is None
    journal = tmp_path / "deep" / "study.log"
    for _ in range(2):  # the second opens the same journal and sees the first's trial
        study = optuna.create_study(study_name="s", storage=optuna_storage(journal), load_if_exists=True)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert journal.exists() and len(study.trials) == 2
    rdb = optuna_storage(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(rdb, optuna.storages.RDBStorage)
    for bad, msg in [("http://host/x", "unsupported scheme 'http'"), ("", "expected a file path"),
                     (str(tmp_path), "is a folder")]:
        with pytest.raises(HarnessError, match=msg):
            optuna_storage(bad)


# --------------------------------------------------------------------------- best by proxy


def test_best_by_proxy_ties_go_to_the_earliest_trial():
    rows = pd.DataFrame({"trial": [0, 1, 2, 3, 4], "proxy": [1.0, 6.0, np.nan, 6.0, 2.0],
                         "ground_truth": [10.0, 60.0, 99.0, 61.0, 20.0], "arch_str": list("abcde"),
                         "wall_s": [1.0] * 5, "peak_bytes": [None] * 5})
    shuffled = rows.sample(frac=1, random_state=3)
    assert best_by_proxy(shuffled)["trial"] == 1
    s = summarise_run(shuffled)
    assert list(s) == ["best_arch", "best_proxy", "best_ground_truth", "oracle_ground_truth", "trials", "wall_s",
                       "peak_bytes"]
    assert (s["best_arch"], s["best_proxy"], s["best_ground_truth"], s["oracle_ground_truth"], s["trials"],
            s["wall_s"]) == ("b", 6.0, 60.0, 99.0, 5, 5.0) and np.isnan(s["peak_bytes"])
    runs = pd.concat([rows.assign(run_id="r1"), rows.assign(run_id="r0", proxy=[3.0, 1.0, 3.0, 0.0, 0.0])])
    summary = summaries_from_runs(runs.sample(frac=1, random_state=1)).set_index("run_id")
    assert summary.loc["r1", "best_ground_truth"] == 60.0 and summary.loc["r0", "best_ground_truth"] == 10.0
    curve = anytime_curves(runs.assign(dataset="c", benchmark="b", method="m", sampler="s"))
    assert curve[curve["run_id"] == "r1"]["best_truth"].tolist() == [10.0, 60.0, 60.0, 60.0, 60.0]
    with pytest.raises(HarnessError, match="no rows"):
        best_by_proxy(rows.iloc[:0])


# --------------------------------------------------------------------------- migration


def _migration():
    spec = importlib.util.spec_from_file_location("migrate_results", ROOT / "scripts" / "migrate_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _old_folder(root: Path) -> dict[str, pd.DataFrame]:
    old = {
        "runs.parquet": pd.DataFrame({"run_id": ["r"] * 3, "batch_id": ["b-20240101T000000-aaaaaa"] * 3,
                                      "benchmark": ["b"] * 3, "method": ["original"] * 3, "sampler": ["rea"] * 3,
                                      "dataset": ["cifar10"] * 3, "trial": [0, 1, 2], "proxy": [1.0, 2.0, 3.0],
                                      "ground_truth": [10.0, 20.0, 30.0], "peak_bytes": [None] * 3}),
        "rank.parquet": pd.DataFrame({"dataset": ["cifar10", "cifar100"], "proxy": ["p", "p"],
                                      "selection": ["top-1000"] * 2, "krocc": [0.4, 0.3], "srocc": [0.6, 0.5],
                                      "batch_id": ["nb201-rank-20240101T000000-cccccc", None],
                                      "benchmark": ["nb201-rank", None]}),
        "memory-nb201.parquet": pd.DataFrame({"kind": ["random"], "arch": ["a"], "original_saved_bytes": [4],
                                              "trnet_5_5_saved_bytes": [2], "trnet_5_5_params": [7],
                                              "saved_ratio": [2.0]}),
        "cka/cka.parquet": pd.DataFrame({"network": ["n"], "cell": [1], "block": [1], "cka": [0.5]}),
    }
    for name, df in old.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / name, index=False)
    (root / "runs.parquet.lock").write_text("")
    (root / "cka" / "cka_grid.png").write_bytes(b"png")
    return old


def test_migration_moves_every_row_once_and_is_idempotent(tmp_path, capsys):
    mig = _migration()
    old = _old_folder(tmp_path)
    assert mig.main([str(tmp_path), "--dry-run"]) == 0
    assert "would migrate" in capsys.readouterr().out and (tmp_path / "runs.parquet").exists()
    assert not (tmp_path / "runs").exists()
    assert mig.main([str(tmp_path)]) == 0
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert [p for p in left if not p.split("/")[-1].startswith("part-migrated-")] == ["cka/cka_grid.png"]
    store = ResultsStore(tmp_path)
    pd.testing.assert_frame_equal(store.read("runs"), old["runs.parquet"], check_dtype=False)
    pd.testing.assert_frame_equal(store.read("cka"), old["cka/cka.parquet"], check_dtype=False)
    rank = store.read("rank")
    assert rank["batch_id"].iloc[0] == "nb201-rank-20240101T000000-cccccc" and rank["benchmark"].iloc[0] == "nb201-rank"
    assert rank["batch_id"].iloc[1].startswith("rank-cli-") and rank["batch_id"].iloc[1].endswith("-migrated")
    assert rank["benchmark"].iloc[1] == "rank-cli"
    memory = store.read("memory")
    assert memory["benchmark"].tolist() == ["memory-nb201"] and memory["batch_id"].iloc[0].endswith("-migrated")
    assert memory.iloc[0][["selection", "arch_str", "original/saved_bytes", "tr-net-5-5/saved_bytes",
                           "tr-net-5-5/params", "saved_ratio", "tr_method"]].tolist() == ["random", "a", 4, 2, 7, 2.0,
                                                                                         "tr-net-5-5"]
    capsys.readouterr()
    assert mig.main([str(tmp_path)]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == left


def test_migration_interrupted_before_removing_the_old_file_does_not_duplicate(tmp_path):
    mig = _migration()
    _old_folder(tmp_path)
    kept = (tmp_path / "runs.parquet").read_bytes()
    mig.migrate(tmp_path, log=lambda _: None)
    (tmp_path / "runs.parquet").write_bytes(kept)  # as if the unlink had not happened (new mtime: other stamp)
    os.utime(tmp_path / "runs.parquet", (2e9, 2e9))
    mig.migrate(tmp_path, log=lambda _: None)
    assert len(ResultsStore(tmp_path).read("runs")) == 3 and not (tmp_path / "runs.parquet").exists()
