import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import HarnessError
from harness.bench.definitions import build_definition, load_definition
from harness.bench.runner import check_benchmark, run_benchmark
from harness.cli import main
from harness.store.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
name = "t"
kind = "search"
datasets = ["cifar100"]
samplers = ["rea", "random"]
budget = 30
seeds = 2
proxies = ["nb201-12ep-val"]
[sampler_options.rea]
population_size = 5
sample_size = 2
"""


def _write(tmp_path, text):
    p = tmp_path / "def.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["nb201-rank", "nb201-rea", "nb201-rea-trnet", "nb201-memory", "nb201-throughput",
                                  "nb201-trained-vs-table", "nb201-rank-topk-trained", "nb201-cka",
                                  "darts-cka"])
def test_shipped_definitions_are_valid(name):
    for full in (False, True):
        d = load_definition(ROOT / "benchmarks" / f"{name}.toml", full=full)
        assert d.name == name


@pytest.mark.parametrize("change, msg", [
    (("budget = 30", "budget = 0"), "key 'budget' must be >= 1, got 0"),
    (("budget = 30", 'budget = "many"'), "key 'budget' must be an int, got 'many'"),
    (('samplers = ["rea", "random"]', 'samplers = ["rea", "cmaes"]'), "key 'samplers' = 'cmaes' is unknown"),
    (('datasets = ["cifar100"]', 'datasets = ["svhn"]'), "key 'datasets' = 'svhn' is unknown"),
    (("seeds = 2", "seeds = 2\nseedz = 3"), "unknown key 'seedz'"),
    (("sample_size = 2", "sample_size = 2\ntournament = 3"), r"key 'sampler_options.rea': .*tournament"),
    (("sample_size = 2", "sample_size = 9"), r"key 'sampler_options.rea': sample_size 9: must be an integer in 1..population_size"),
    (('kind = "search"', 'kind = "oracle"'), "key 'kind' = 'oracle' is unknown"),
    (('proxies = ["nb201-12ep-val"]', 'proxies = ["nb201-13ep-val"]'), "key 'proxies': proxy 'nb201-13ep-val': unknown"),
    (('proxies = ["nb201-12ep-val"]', 'proxies = ["train:tr-net-five"]'), "key 'proxies': method 'tr-net-five'"),
    (('name = "t"', 'name = "../../evil"'), "key 'name' = '../../evil' must be a non-empty file-name-safe string"),
    (('name = "t"', 'name = ""'), "key 'name' = '' must be a non-empty"),
    (('name = "t"', 'name = "t"\nablation_of = "t"'), "key 'ablation_of' = 't' must name another benchmark"),
    (('name = "t"', 'name = "t"\nablation_of = "../t"'), "key 'ablation_of' = '../t' must name another benchmark"),
    (("seeds = 2", "seeds = 2\ntop_k = 5"), "unknown key 'top_k'"),  # a rank key in a search definition
    (("budget = 30", "budget = 100000000"), "key 'budget' = 100000000 is more than this machine can run"),
    (("seeds = 2", "seeds = 2\nworkers = 1000"), "key 'workers' = 1000 is more than this machine can run"),
])
def test_malformed_definitions_name_file_key_problem(tmp_path, change, msg):
    path = _write(tmp_path, GOOD.replace(*change))
    assert GOOD.replace(*change) != GOOD  # the change applies
    with pytest.raises(HarnessError, match=msg) as e:
        load_definition(path)
    assert str(path) in str(e.value)


def test_not_toml(tmp_path):
    with pytest.raises(HarnessError, match="not valid TOML"):
        load_definition(_write(tmp_path, "name = "))


def test_tabular_search_writes_runs_and_summary(tmp_path):
    d = load_definition(_write(tmp_path, GOOD))
    summary = run_benchmark(d, tmp_path / "res", progress=False)
    runs = ResultsStore(tmp_path / "res").read("runs")
    assert len(runs) == 2 * 2 * 30 and runs.groupby("run_id").size().eq(30).all()
    assert {"run_id", "benchmark", "proxy_name", "sampler", "seed", "config", "dataset", "trial", "arch_str", "proxy",
            "ground_truth", "cum_wall_s", "peak_bytes", "device", "commit", "version_torch"} <= set(runs.columns)
    assert len(summary) == 4
    one = runs[runs["run_id"] == summary["run_id"].iloc[0]]
    assert summary["best_ground_truth"].iloc[0] == one.loc[one["proxy"].idxmax(), "ground_truth"]
    # A second run appends, never overwrites.
    run_benchmark(d, tmp_path / "res", progress=False)
    assert len(ResultsStore(tmp_path / "res").read("runs")) == 2 * len(runs)


@pytest.mark.slow
def test_four_workers_one_journal_exact_budget_every_trial_in_parquet(tmp_path):
    d = load_definition(_write(tmp_path, GOOD.replace("seeds = 2", "seeds = 1\nworkers = 4")
                               .replace('"rea", "random"', '"rea"')))
    run_benchmark(d, tmp_path / "res", progress=False)
    runs = ResultsStore(tmp_path / "res").read("runs")
    assert sorted(runs["trial"]) == list(range(30))


def test_cli_bad_definition_exit_2_no_results(tmp_path):
    path = _write(tmp_path, GOOD.replace("budget = 30", "budget = -1"))
    r = subprocess.run([sys.executable, "-m", "harness.cli", "bench", str(path), "--results", str(tmp_path / "res")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "budget" in r.stderr and str(path) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_every_option_is_recorded_with_defaults_filled_in(tmp_path):
    d = load_definition(_write(tmp_path, GOOD))
    run_benchmark(d, tmp_path / "res", progress=False)
    config = json.loads(ResultsStore(tmp_path / "res").read("summary")["config"].iloc[0])
    assert config["workers"] == 1 and config["seed_offset"] == 0 and config["space"] == "nb201"
    assert config["sampler_options"]["rea"] == {"population_size": 5, "sample_size": 2}


def test_cli_validates_every_file_before_running_any(tmp_path):
    good = _write(tmp_path, GOOD)
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("budget = 30", "budget = 0"))
    r = subprocess.run([sys.executable, "-m", "harness.cli", "bench", str(good), str(bad), "--results",
                        str(tmp_path / "res")], capture_output=True, text=True)
    assert r.returncode == 2 and str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()  # the good file's rows were not written either


def test_harness_bench_runs_every_cheap_kind_in_one_call(tmp_path):
    """search, rank, memory and throughput from one `harness bench` call (train and cka: test_cli.py)."""
    defs = {
        "s.toml": GOOD.replace("budget = 30", "budget = 5").replace("seeds = 2", "seeds = 1"),
        "r.toml": 'name = "r"\nkind = "rank"\ndatasets = ["cifar10"]\nsample = 50\ndraws = 2\n',
        "m.toml": 'name = "m"\nkind = "memory"\nbatch_size = 2\narchs = 1\n',
        "t.toml": 'name = "t2"\nkind = "throughput"\nbatch_size = 2\narchs = 1\nsteps = 1\nthreads = 1\n',
    }
    paths = []
    for name, text in defs.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    r = subprocess.run([sys.executable, "-m", "harness.cli", "bench", *paths, "--results", str(tmp_path / "res"),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    store = ResultsStore(tmp_path / "res")
    for table, n in (("runs", 2 * 5), ("summary", 2), ("rank", 1), ("memory", 1), ("throughput", 2)):
        assert len(store.read(table)) == n, table
    assert (tmp_path / "res" / "leaderboard.md").exists()


def test_unwritable_results_folder_fails_before_any_work(tmp_path):
    blocker = tmp_path / "res"
    blocker.write_text("a file where the results folder should be")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "bench", str(_write(tmp_path, GOOD)), "--results",
                        str(blocker)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot write there" in r.stderr and blocker.read_text().startswith("a file")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "runs").write_text("not a folder")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "bench", str(_write(tmp_path, GOOD)), "--results",
                        str(tmp_path / "ok")], capture_output=True, text=True)
    assert r.returncode == 2 and "is a file, expected a folder" in r.stderr
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["runs"]  # nothing else written


def test_trained_vs_table_agreement_rows():
    """The train kind's comparison of trained accuracies with the table (values given here, so the
    expected correlations are computed independently from the table's own columns)."""
    from scipy.stats import kendalltau

    from harness.bench.kinds.train import _against_table
    from harness.tabular import get_table

    defn = load_definition(ROOT / "benchmarks" / "nb201-trained-vs-table.toml")
    table, archs = get_table("nb201"), [int(a) for a in defn["arch_list"]]
    trained = [50.0, 61.0, 60.0, 75.0, 70.0, 80.0, 79.0, 85.0]
    rows = [{"space": "nb201", "arch_str": table.arch_str(a), "val_acc": v, "test_acc": 0.0, "epochs": 12}
            for a, v in zip(archs, trained)]
    out = {r["truth"]: r for r in _against_table(defn, "cifar10", rows, "train:original")}
    assert set(out) == {"test_acc@200", "val_acc@12"}
    val12 = [table.lookup(a, "cifar10", "val_acc", 12) for a in archs]
    assert out["val_acc@12"]["krocc"] == pytest.approx(kendalltau(trained, val12).statistic)
    assert out["val_acc@12"]["mean_offset"] == pytest.approx(np.mean(np.array(trained) - val12))
    assert out["test_acc@200"]["n"] == 8 and out["test_acc@200"]["selection"] == "listed-8"
    short = [{**r, "epochs": 4} for r in rows]  # no 4-epoch column in the table: ground truth only
    assert [r["truth"] for r in _against_table(defn, "cifar10", short, "train:original")] == ["test_acc@200"]


@pytest.mark.slow
def test_ctrl_c_keeps_every_finished_trial_and_says_so_in_one_line(tmp_path):
    import signal

    text = (GOOD.replace('proxies = ["nb201-12ep-val"]', 'proxies = ["train:original"]')
            .replace("budget = 30", "budget = 40").replace("seeds = 2", "seeds = 1").replace('"rea", "random"', '"random"')
            .replace('datasets = ["cifar100"]', 'datasets = ["cifar10"]')
            + '[train]\nlimit = 64\nbatch_size = 64\nepochs = { original = 1 }\n')
    # SIGINT as a user's terminal delivers it: a child inherits an ignored SIGINT (some test runners'
    # workers ignore it), and Python then never raises KeyboardInterrupt, so give it the default.
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", str(_write(tmp_path, text)), "--results",
                             str(tmp_path / "res")], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finished = 0
    for line in proc.stderr:  # one line per finished training (stderr is not a terminal)
        finished += line.startswith("trained ")
        if finished == 3:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert rest.strip().splitlines()[-1] == f"harness bench: interrupted; every finished result is kept in {tmp_path / 'res'}"
    store = ResultsStore(tmp_path / "res")
    runs, trained = store.read("runs"), store.read("train")
    # the 3rd training may be cut between its log line and its trial finishing
    assert 2 <= len(runs) < 40 and sorted(runs["trial"]) == list(range(len(runs)))  # finished trials, no gap
    assert runs["interrupted"].all() and store.read("summary") is None  # the run is marked, not summarised
    assert set(runs["arch_str"]) <= set(trained["arch_str"])  # every scored trial's training row is there


@pytest.mark.parametrize("proxy, msg", [
    ("train:tr-net-99-5", "i=99: must be in 1..14 (the network has 15 search cells)"),
    ("train:tr-net-0-5", "i=0: must be in 1..14"),
    ("recorded:tr-net-5-99", "j=99: must be in 1..14 (the backbone has 15 blocks)"),
    ("zc:synflow@tr-net-15-5", "i=15: must be in 1..14"),
    ("train:tr-net-5-7", "does not fit the module after cell 5"),  # both exist, their shapes differ
])
def test_a_trnet_depth_the_network_cannot_have_is_refused_by_validation(tmp_path, capsys, proxy, msg):
    """Refused when the file is read -- not after the backbone was pre-trained -- in one line naming
    the file and the key, and nothing written (no checkpoint, journal or lock file)."""
    path = _write(tmp_path, GOOD.replace('proxies = ["nb201-12ep-val"]', f'proxies = ["{proxy}"]')
                  .replace('"cifar100"', '"cifar10"'))  # the embedded images: nothing else stands in the way
    with pytest.raises(HarnessError, match=re.escape(msg)) as e:
        load_definition(path)
    assert str(e.value).startswith(f"{path}: key 'proxies': '{proxy}'")
    assert main(["bench", str(path), "--results", str(tmp_path / "res"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and msg in err and str(path) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["def.toml"]


def test_memory_and_oneshot_depths_are_checked_too(tmp_path):
    memory = _write(tmp_path, 'name = "m"\nkind = "memory"\ni = 15\nj = 5\n')
    with pytest.raises(HarnessError, match=r"key 'i': Tr-Net-15-5: i=15: must be in 1..14"):
        load_definition(memory)
    oneshot = _write(tmp_path, 'name = "o"\nkind = "oneshot"\nsupernets = ["tr-supernet-5-99"]\n')
    with pytest.raises(HarnessError, match=r"key 'supernets': 'tr-supernet-5-99' on cifar10-valid: j=99"):
        load_definition(oneshot)


def test_full_table_cannot_change_the_kind_and_floats_must_be_finite(tmp_path):
    with pytest.raises(HarnessError, match=r"key 'full.kind' = 'rank': the full-size variant must be of the same kind"):
        load_definition(_write(tmp_path, GOOD + '[full]\nkind = "rank"\n'))
    with pytest.raises(HarnessError, match=r"key 'delay_s' must be a finite number, got inf"):
        load_definition(_write(tmp_path, GOOD.replace("seeds = 2", "seeds = 2\ndelay_s = inf")))
    with pytest.raises(HarnessError, match=r"key 'sampler_options.rea': sampler 'rea': bad options"):
        load_definition(_write(tmp_path, GOOD.replace("sample_size = 2", "sample_size = 2\nseed = 3")))


AUTO = {"name": "auto", "kind": "train", "arch_list": ["1"], "proxies": ["train:tr-net-auto"]}


@pytest.mark.parametrize("change, msg", [
    ({"space": "darts", "arch_list": []}, "key 'proxies': 'train:tr-net-auto' chooses the depth from the CKA of NB201 "
                                          "cells: only for space 'nb201' (got 'darts')"),
    ({"proxies": ["train:original"], "transfer": {"threshold": 0.5}}, "key 'transfer': how train:tr-net-auto chooses"),
    ({"transfer": {"threshold": 1.5}}, "key 'transfer.threshold': transfer threshold: must be a number in (0, 1]"),
    ({"transfer": {"estimator": "linear"}}, "key 'transfer.estimator' = 'linear' is unknown"),
    ({"transfer": {"cka_archs": 0}}, "key 'transfer.cka_archs' must be >= 1, got 0"),
    ({"transfer": {"cka_epochs": -1}}, "key 'transfer.cka_epochs' must be >= 0, got -1"),
    ({"transfer": {"depth": 5}}, "unknown key 'transfer.depth'"),
    ({"kind": "search", "datasets": ["cifar10"], "samplers": ["rea"], "budget": 2, "arch_list": None},
     "key 'proxies': method 'tr-net-auto': expected 'original' or 'tr-net-<i>-<j>'"),  # only a train run chooses
])
def test_the_auto_transfer_proxy_and_its_options_are_checked(change, msg):
    raw = {k: v for k, v in {**AUTO, **change}.items() if v is not None}
    with pytest.raises(HarnessError, match=re.escape(msg)):
        build_definition(raw, "auto.toml")


def test_the_auto_transfer_proxy_names_its_epochs_and_a_missing_cka_table_stops_the_run(tmp_path):
    defn = build_definition({**AUTO, "train": {"epochs": {"tr-net-auto": 1}, "warmup": {"tr-net-auto": 0}},
                             "transfer": {"cka": str(tmp_path / "cka"), "threshold": 0.5}}, "auto.toml")
    assert defn["transfer"]["threshold"] == 0.5
    with pytest.raises(HarnessError, match="key 'transfer.cka' = .*: no such CKA table"):
        check_benchmark(defn, tmp_path / "results")
