"""What the command line says and leaves behind: flags named in errors, ``harness bench --check``,
and a reader that closes the pipe early (``harness bench ... | head -1``)."""
import os
import subprocess
import sys

from harness.cli import main
from harness.store.results import ResultsStore

SEARCH = 'name = "s"\nkind = "search"\ndatasets = ["cifar10"]\nsamplers = ["random"]\nbudget = 5\n'


def test_errors_about_a_value_a_flag_set_name_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args, said in ((["train", "--arch", "1", "--epochs", "-1"], "harness train: error: --epochs must be >= 0, got -1"),
                       (["train", "--arch", "1", "--limit", "-2"], "harness train: error: --limit must be >= 0, got -2"),
                       (["rank", "--dataset", "svhn"], "harness rank: error: --dataset 'svhn' is unknown")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(said) and len(err.strip().splitlines()) == 1 and "key '" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_bench_check_validates_every_file_and_writes_nothing(tmp_path, capsys):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(SEARCH)
    bad.write_text(SEARCH.replace('samplers = ["random"]', 'samplers = ["random"]\nstorage = "no/such/folder/j.jsonl"'))
    assert main(["bench", str(good), "--check", "--results", str(tmp_path / "res")]) == 0
    assert capsys.readouterr().out == f"{good}: ok (search 's')\n"
    assert main(["bench", str(good), str(bad), "--check", "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: key 'storage'" in err and "folder 'no/such/folder' does not exist" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "good.toml"]


def test_bench_into_a_closed_pipe_finishes_quietly_and_cleans_up(tmp_path):
    """The reader is gone before the first line (``| head -0``, the worst case of ``| head -1``): no
    traceback, exit 141, and the run ends as any other: rows and summary written, the batch's
    journal removed, the leaderboard refreshed."""
    (tmp_path / "s.toml").write_text(SEARCH)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", "s.toml", "--results", "res", "--quiet"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the only read end: every write of the bench now fails with EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == "", err
    store = ResultsStore(tmp_path / "res")
    assert len(store.read("runs")) == 5 and len(store.read("summary")) == 1
    assert [p.name for p in (tmp_path / "res" / "journals").iterdir()] == []  # journal and its locks removed
    assert (tmp_path / "res" / "leaderboard.md").exists()


def test_worker_grace_below_the_default_heartbeat_is_refused_naming_both_flags(tmp_path, capsys):
    assert main(["worker", "--storage", str(tmp_path / "j.jsonl"), "--study", "s", "--grace", "5"]) == 2
    err = capsys.readouterr().err
    assert "--heartbeat 10 s / --grace 5 s" in err and "--heartbeat 1 --grace 5" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
