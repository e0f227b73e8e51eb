"""The results store (Parquet datasets of part files), the Optuna storage helper, the migration
script and the best-by-proxy query, on real files in tmp_path."""
import importlib.util
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from harness import HarnessError
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.search.storage import optuna_storage
from harness.search.summary import anytime_curves, best_by_proxy, summaries_from_runs, summarise_run
from harness.store.results import TABLES, ResultsStore

ROOT = Path(__file__).resolve().parents[1]
PARTS, ROWS = 20, 3


def _train_rows(worker: int, part: int, n: int = ROWS) -> list[dict]:
    """Rows told apart by declared columns: seed = worker, epochs = part, steps = row."""
    return [{"method": f"w{worker}", "dataset": "cifar10", "wall_s": float(part), "seed": worker, "epochs": part,
             "steps": i} for i in range(n)]


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
    keys = list(zip(df["seed"], df["epochs"], df["steps"]))
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
    assert len(df) == ROWS and set(df["seed"]) == {0}
    store.check_readable()
    assert store.parts("train") == [part]


def test_parts_written_before_the_schemas_read_as_their_union(tmp_path):
    store = ResultsStore(tmp_path)
    folder = store.path("train")
    folder.mkdir()
    old = [pd.DataFrame({"method": ["a"], "dataset": ["d"], "wall_s": [1.0], "peak_cuda_bytes": [None]}),  # null type
           pd.DataFrame({"method": ["b"], "dataset": ["d"], "wall_s": [2], "peak_cuda_bytes": [5]}),  # int wall_s
           pd.DataFrame({"method": ["c"], "dataset": ["d"], "wall_s": [3.0], "backbone": ["x"]})]  # other columns
    for k, df in enumerate(old):
        df.to_parquet(folder / f"part-2024010{k + 1}T000000-host-1-0000000{k}.parquet", index=False)
    df = store.read("train").sort_values("method", ignore_index=True)
    assert list(df["method"]) == ["a", "b", "c"] and list(df["wall_s"]) == [1.0, 2.0, 3.0]
    assert df["peak_cuda_bytes"].isna().tolist() == [True, False, True] and df.loc[1, "peak_cuda_bytes"] == 5
    assert df["backbone"].isna().tolist() == [True, True, False]
    sub = store.read("train", columns=["method", "backbone", "absent"])
    assert list(sub.columns) == ["method", "backbone", "absent"] and sub["absent"].isna().all()
    assert store.read("summary") is None  # no part yet


# --------------------------------------------------------------------------- declared schemas


def test_every_part_has_the_declared_schema_so_plain_readers_open_the_folder(tmp_path):
    store = ResultsStore(tmp_path)
    first = store.append("train", [{"method": "a", "dataset": "d", "wall_s": 1.0, "arch_index": None}])  # left empty
    second = store.append("train", pd.DataFrame({"method": ["b", "c"], "dataset": ["d", "d"], "wall_s": [2.0, 3.5],
                                                 "arch_index": [7, None], "backbone": ["x", None]}))
    for part in (first, second):
        schema = pq.read_schema(part)
        assert schema.equals(TABLES["train"].schema, check_metadata=True), part.name
    plain = pd.read_parquet(store.path("train")).sort_values("method", ignore_index=True)
    assert list(plain.columns) == TABLES["train"].schema.names and len(plain) == 3
    assert plain["arch_index"].isna().tolist() == [True, False, True] and plain.loc[1, "arch_index"] == 7
    assert plain["backbone"].tolist()[1] == "x" and plain["peak_cuda_bytes"].isna().all()
    table = ds.dataset(store.path("train")).to_table()
    assert table.schema.equals(TABLES["train"].schema) and table.num_rows == 3


def test_a_value_round_trips_with_its_type(tmp_path):
    store = ResultsStore(tmp_path)
    row = {"method": "tr-net-5-5", "dataset": "cifar10", "wall_s": 12.25, "epochs": 2**40 + 1,
           "val_acc": float("nan"), "prefix_bn": "running"}
    part = store.append("train", [row])
    back = pq.read_table(part)
    assert (back.schema.field("epochs").type, back.schema.field("wall_s").type) == (pa.int64(), pa.float64())
    assert back.schema.field("method").type == pa.string()
    got = back.to_pylist()[0]
    assert {k: got[k] for k in ("method", "dataset", "wall_s", "epochs", "prefix_bn")} == \
        {k: row[k] for k in ("method", "dataset", "wall_s", "epochs", "prefix_bn")}
    assert got["val_acc"] is None  # NaN is stored as null, as pandas reads both
    assert type(got["epochs"]) is int and got["epochs"] == 2**40 + 1  # not through a float
    store.append("speed", [{"measure": "eval_cache", "mode": "fp32", "identical": True, "n_images": 3}])
    speed = pd.read_parquet(store.path("speed"))
    assert speed["identical"].tolist() == [True] and speed["n_images"].tolist() == [3]


def test_undeclared_columns_and_values_of_another_type_are_refused_in_one_line(tmp_path):
    store = ResultsStore(tmp_path)
    base = {"method": "a", "dataset": "d", "wall_s": 1.0}
    for extra, message in [({"note": "x"}, "results table 'train': column 'note' is not declared"),
                           ({"epochs": "2"}, "results table 'train': column 'epochs' holds str values, declared int"),
                           ({"epochs": 1.5}, "results table 'train': column 'epochs' cannot be stored as int64"),
                           ({"wall_s": [1.0]}, "results table 'train': column 'wall_s' holds list")]:
        with pytest.raises(HarnessError, match=message) as e:
            store.append("train", [{**base, **extra}])
        assert "\n" not in str(e.value)
    assert store.parts("train") == []
    assert all(set(spec.required) <= set(spec.schema.names) for spec in TABLES.values())
    assert all(spec.schema.metadata is None for spec in TABLES.values())


def test_a_memory_run_with_an_undeclared_tr_net_stops_before_measuring(tmp_path):
    raw = {"name": "mem-undeclared", "kind": "memory", "batch_size": 2, "archs": 1, "i": 3, "j": 2}
    with pytest.raises(HarnessError, match="results table 'memory': column 'tr-net-3-2/saved_bytes' is not declared"):
        run_benchmark(build_definition(raw, "test"), str(tmp_path), progress=False)
    assert not (tmp_path / "memory").exists()


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


def _equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Frames equal value by value, NaN and None alike (an all-null column reads as either)."""
    pd.testing.assert_frame_equal(a.astype(object).where(a.notna(), None), b.astype(object).where(b.notna(), None),
                                  check_dtype=False)


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
    for table, name in (("runs", "runs.parquet"), ("cka", "cka/cka.parquet")):
        df = store.read(table)
        assert list(df.columns) == TABLES[table].schema.names  # the declared schema, old columns kept
        _equal(df[list(old[name].columns)], old[name])
        assert df.drop(columns=list(old[name].columns)).isna().all().all()
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


def _mixed_store(root: Path) -> dict[str, pd.DataFrame]:
    """Parts as written before the schemas were declared: an all-null column (Arrow type null) in
    one part, int64 in the next; int64 vs double; a column missing from a part; pandas metadata."""
    parts = {
        "train/part-20240101T000000-h-1-00000001.parquet":
            pd.DataFrame({"method": ["a", "b"], "dataset": ["d", "d"], "wall_s": [1.0, 2.5], "arch_index": [None, None],
                          "peak_cuda_bytes": [None, None]}),
        "train/part-20240102T000000-h-1-00000002.parquet":
            pd.DataFrame({"method": ["c"], "dataset": ["d"], "wall_s": [3.0], "arch_index": [7],
                          "peak_cuda_bytes": [2**40 + 1], "backbone": ["resnet"]}),
        "rank/part-20240101T000000-h-1-00000003.parquet":
            pd.DataFrame({"dataset": ["c"], "proxy": ["p"], "selection": ["s"], "krocc": [0.5], "srocc": [0.25],
                          "timed": [5], "nonfinite": [np.nan]}),
        "rank/part-20240102T000000-h-1-00000004.parquet":
            pd.DataFrame({"dataset": ["c"], "proxy": ["q"], "selection": ["s"], "krocc": [0.125], "srocc": [np.nan],
                          "timed": [3.0], "nonfinite": [2.0], "ci_resamples": [1000]}),
    }
    for name, df in parts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / name, index=False)
    return parts


def test_conform_rewrites_mixed_parts_so_plain_readers_open_them_and_changes_no_value(tmp_path, capsys):
    mig = _migration()
    parts = _mixed_store(tmp_path)
    with pytest.raises(pa.ArrowNotImplementedError, match="Unsupported cast from int64 to null"):
        pd.read_parquet(tmp_path / "train")  # the bug: one part's null type taken for the folder
    store = ResultsStore(tmp_path)
    before = {t: store.read(t) for t in ("train", "rank")}
    mtimes = {n: (tmp_path / n).stat().st_mtime_ns for n in parts}
    assert mig.main([str(tmp_path), "--dry-run"]) == 0
    assert "train: 2 parts, 3 rows, every value equal before and after; 2 part(s) would be rewritten" in \
        capsys.readouterr().out
    with pytest.raises(pa.ArrowNotImplementedError):
        pd.read_parquet(tmp_path / "train")  # a dry run changes nothing
    assert mig.main([str(tmp_path)]) == 0
    assert "rank: 2 parts, 2 rows, every value equal before and after; 2 part(s) rewritten" in capsys.readouterr().out
    for name, df in parts.items():
        table = name.split("/")[0]
        assert pq.read_schema(tmp_path / name).equals(TABLES[table].schema, check_metadata=True)
        assert (tmp_path / name).stat().st_mtime_ns == mtimes[name]  # the store's read order stays
        after = pd.read_parquet(tmp_path / name)
        _equal(after[list(df.columns)], df)
    for table, old in before.items():
        plain = pd.read_parquet(tmp_path / table)  # part names sort in write order here
        assert ds.dataset(tmp_path / table).to_table().num_rows == len(old) == len(plain)
        _equal(plain[list(old.columns)], old)
        _equal(store.read(table)[list(old.columns)], old)
    assert pq.read_table(tmp_path / "train").column("peak_cuda_bytes").to_pylist() == [None, None, 2**40 + 1]
    assert mig.main([str(tmp_path)]) == 0  # nothing left to rewrite
    assert "train: 2 parts, 3 rows, every value equal before and after; 0 part(s) rewritten" in capsys.readouterr().out


def test_conform_replaces_nothing_when_one_part_cannot_keep_its_values(tmp_path, capsys):
    mig = _migration()
    parts = _mixed_store(tmp_path)
    bad = tmp_path / "rank" / "part-20240103T000000-h-1-00000005.parquet"
    pd.DataFrame({"dataset": ["c"], "proxy": ["p"], "selection": ["s"], "krocc": [0.5], "srocc": [0.5],
                  "timed": [2.5]}).to_parquet(bad, index=False)  # 2.5 is no count: int64 would change it
    kept = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    assert mig.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: results table 'rank': column 'timed' cannot be stored as int64" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")} == kept  # train's parts were fine: kept too
    bad.unlink()
    pd.DataFrame({"dataset": ["c"], "proxy": ["p"], "selection": ["s"], "krocc": [0.5], "srocc": [0.5],
                  "note": ["x"]}).to_parquet(bad, index=False)
    assert mig.main([str(tmp_path)]) == 2
    assert "column 'note' is not declared" in capsys.readouterr().err
    assert len(parts) == 4


def test_the_value_check_finds_a_changed_value_a_lost_column_and_a_new_value():
    same_values = _migration().same_values
    before = pd.DataFrame({"a": [1, None], "b": ["x", "y"], "c": [2**53 + 1, 0]})
    same_values(before, before.assign(a=[1.0, np.nan], d=[None, None]), "here")  # NaN = None, 1 = 1.0
    for after, message in [(before.assign(b=["x", "z"]), "column 'b' row 1: 'y' before, 'z' after"),
                           (before.assign(c=before["c"].astype(float)), "column 'c' row 0"),
                           (before.assign(d=[None, 1]), "column 'd' is new but not null"),
                           (before.drop(columns="b"), "column.s. b lost"), (before.iloc[:1], "1 rows after, 2 before")]:
        with pytest.raises(HarnessError, match=message):
            same_values(before, after, "here")
