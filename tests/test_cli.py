"""Every subcommand run as a user would, in a subprocess, on tiny settings."""
import os
import subprocess
import sys

import pytest

from harness.cli import main
from harness.store.results import ResultsStore

pytestmark = pytest.mark.slow  # real training: see `make test-fast`

TINY = ["--limit", "128", "--batch-size", "64", "--quiet"]


def harness(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = harness("pretrain", "resnet32", "--epochs", "1", *TINY, cwd=d)
    assert r.returncode == 0, r.stderr
    assert (d / "results/checkpoints/resnet32-cifar10-valid.pt").exists()
    return d


def test_train_original_and_trnet_append_rows(workdir):
    ckpt = "results/checkpoints/resnet32-cifar10-valid.pt"
    r1 = harness("train", "--arch", "1", "--epochs", "1", *TINY, cwd=workdir)
    r2 = harness("train", "--arch", "1", "--method", "tr-net-5-5", "--backbone", ckpt, "--epochs", "1",
                 "--warmup", "1", *TINY, cwd=workdir)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert "saved for backward" in r2.stdout
    df = ResultsStore(workdir / "results").read("train")
    assert df["method"].tolist()[-2:] == ["original", "tr-net-5-5"]
    assert df["arch_index"].tolist()[-2:] == [1, 1] and (df["epochs"].tail(2) == 1).all()
    assert {"batch_id", "config", "commit", "seed", "device"} <= set(df.columns)
    assert df["val_acc"].tail(2).between(0, 100).all() and (df["n_train"].tail(2) == 128).all()


def test_cka_then_transfer_auto(workdir):
    ckpt = "results/checkpoints/resnet32-cifar10-valid.pt"
    r = harness("cka", "--backbone", ckpt, "--archs", "2", "--epochs", "1", "--n-eval", "100",
                "--eval-batch-size", "50", "--estimator", "unbiased_minibatch", *TINY, cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert (workdir / "results/cka-heatmaps/cka_grid.png").stat().st_size > 10_000
    assert all(p.name.startswith("part-") for p in (workdir / "results/cka").iterdir())  # only the table's parts
    r = harness("train", "--arch", "1", "--transfer", "auto", "--transfer-threshold", "0.05", "--cka",
                "results/cka", "--backbone", ckpt, "--epochs", "1", "--warmup", "1", *TINY, cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "transfer auto: chose tr-net-" in r.stdout
    rows = ResultsStore(workdir / "results").read("train")
    assert rows["transfer_i"].notna().iloc[-1] and rows["method"].iloc[-1].startswith("tr-net-")
    assert rows["transfer_estimator"].iloc[-1] == "unbiased_minibatch"  # the table's, with its threshold given
    cka = ResultsStore(workdir / "results").read("cka")
    assert len(cka) == 2 * 15 * 15 and (cka["estimator"] == "unbiased_minibatch").all()  # 2 nets x 15 x 15


def test_leaderboard_rebuilds_from_the_store(workdir):
    r = harness("leaderboard", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert (workdir / "results/leaderboard.md").exists()
    text = "".join(p.read_text() for p in (workdir / "results/leaderboard").glob("*.md"))
    assert "tr-net-5-5" in text and "Real-training cost" in text  # the two training runs above


@pytest.mark.parametrize("args, msg", [
    (["train", "--arch", "|bad~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "unknown op 'bad'"),
    (["train", "--arch", "99999"], "out of range"),
    (["train", "--arch", "1", "--method", "tr-net-5-5"], "harness pretrain resnet32"),
    (["train", "--arch", "1", "--data-dir", "/nonexistent"], "/nonexistent"),
    (["pretrain", "resnet99"], "resnet99"),
    (["cka", "--backbone", "/nonexistent.pt"], "/nonexistent.pt"),
    (["data", "download", "mnist", "--root", "d"], "mnist"),
])
def test_bad_input_one_line_exit_2(tmp_path, monkeypatch, capsys, args, msg):
    # In-process (the same ``main`` the console script runs) to spare a torch start-up per case;
    # the subprocess path to exit code 2 is the next test's.
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists()


def test_bad_input_exits_2_from_the_command_line(tmp_path):
    r = harness("train", "--arch", "99999", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("harness train: error: "), r.stderr
    assert "out of range" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
