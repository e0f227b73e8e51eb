import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness import HarnessError
from harness.analysis.rank import rank_table_proxy, top_k
from harness.spaces.nb201 import encoding as nb201
from harness.tabular.nb201 import NB201Table

INDEX1234 = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"


@pytest.fixture(scope="module")
def table():
    return NB201Table.load()


def test_spot_values_are_bit_exact_csv_floats(table):
    # Literal values from the source CSV rows 0, 1234, 15624 (17 significant digits).
    assert table.query(0, "cifar10", "val_acc", 12) == 63.363999980468748
    assert table.query(0, "cifar10", "test_acc", 200) == 85.863333333333344
    assert table.query(INDEX1234, "ImageNet16-120", "val_acc", 12) == 0.83333333142598465
    assert table.query(15624, "cifar100", "test_acc", 12) == 25.359999999999999
    assert table.query(15624, "ImageNet16-120", "test_acc", 200) == 21.411111104329425
    assert table.query(0, "cifar100", "test_acc_oneseed", 200) == 53.079999951171878


def test_every_encoding_gives_the_same_answer(table):
    ops = nb201.parse(INDEX1234)
    want = table.query(1234, "cifar100", "test_acc", 200)
    assert table.query(INDEX1234, "cifar100", "test_acc", 200) == want
    assert table.query(ops, "cifar100", "test_acc", 200) == want
    assert table.query(nb201.to_naslib(ops), "cifar100", "test_acc", 200) == want


def test_vectorised_query(table):
    idx = np.arange(nb201.NUM_ARCHS)
    vals = table.query(idx, "cifar10", "test_acc", 200)
    assert vals.shape == (nb201.NUM_ARCHS,)
    strs = [nb201.to_str(nb201.from_index(i)) for i in range(0, nb201.NUM_ARCHS, 97)]
    np.testing.assert_array_equal(table.query(strs, "cifar10", "test_acc", 200), vals[::97])


@pytest.mark.parametrize("kw, msg", [
    (dict(dataset="svhn"), "dataset 'svhn': unknown"),
    (dict(metric="loss"), "metric 'loss': unknown"),
    (dict(metric="val_acc", epochs=200), "epochs 200"),
])
def test_bad_query_names_the_input(table, kw, msg):
    with pytest.raises(HarnessError, match=msg):
        table.query(0, **kw)


def test_table3_original_column(table):
    c100 = rank_table_proxy(table, "cifar100", top=1000)
    assert (c100.n, round(c100.krocc, 4), round(c100.srocc, 4)) == (1000, 0.3190, 0.4623)
    im = rank_table_proxy(table, "ImageNet16-120", top=1000)
    assert (im.n, round(im.krocc, 4), round(im.srocc, 4)) == (1000, 0.1628, 0.2391)
    c10 = rank_table_proxy(table, "cifar10", top=1000)
    assert c10.n == 997  # six tie at 93.185 across the boundary: dropped
    assert abs(c10.krocc - 0.4135) < 0.002 and abs(c10.srocc - 0.5909) < 0.002
    stable = rank_table_proxy(table, "cifar10", top=1000, ties="stable")
    assert (stable.n, round(stable.krocc, 4), round(stable.srocc, 4)) == (1000, 0.4122, 0.5894)


def test_table1_original_random_1000(table):
    paper = {"cifar10": (0.6128, 0.7888), "cifar100": (0.6600, 0.8384), "ImageNet16-120": (0.6656, 0.8394)}
    for ds, (k, s) in paper.items():
        r = rank_table_proxy(table, ds, sample=1000, draws=20)
        assert abs(r.krocc - k) < 0.03 and abs(r.srocc - s) < 0.03, r


def test_noise_ceiling(table):
    r = rank_table_proxy(table, "cifar10", "nb201-200ep-oneseed")
    assert r.n == nb201.NUM_ARCHS and 0.93 < r.krocc < 0.96


def test_top_k_tie_rules():
    truth = np.array([5.0, 4.0, 4.0, 4.0, 1.0])
    assert top_k(truth, 2, "drop").tolist() == [0]
    assert top_k(truth, 2, "stable").tolist() == [0, 1]
    assert top_k(truth, 2, "include").tolist() == [0, 1, 2, 3]
    assert top_k(truth, 4, "drop").tolist() == [0, 1, 2, 3]
    with pytest.raises(HarnessError, match="top-k 0"):
        top_k(truth, 0)


def test_official_backend_missing_file_is_clear():
    with pytest.raises(HarnessError, match="does not exist"):
        NB201Table.load("/nonexistent/NAS-Bench-201-v1_1-096897.pth")


@pytest.mark.parametrize("env", ["HARNESS_NB201_API_FILE", "HARNESS_NATS_TSS_FILE"])
def test_official_backend_matches_shipped_table(env, table):
    """Runs where a user owns the official file and points the variable at it."""
    import os

    path = os.environ.get(env)
    if not path:
        pytest.skip(f"{env} not set: the official benchmark file is not on this machine")
    official = NB201Table.load(path)
    for ds in ("cifar10", "cifar100", "ImageNet16-120"):
        np.testing.assert_allclose(official.column(ds, "val_acc", 12), table.column(ds, "val_acc", 12), atol=1e-6)
        np.testing.assert_allclose(official.column(ds, "test_acc", 200), table.column(ds, "test_acc", 200), atol=1e-6)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_rank_writes_parquet(tmp_path):
    r = _cli("rank", "--dataset", "cifar100", "--top-k", "1000", "--results", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0.3190" in r.stdout and "0.4623" in r.stdout
    df = pd.read_parquet(tmp_path / "rank.parquet")
    assert len(df) == 1 and {"commit", "version_torch", "seed", "wall_s", "n"} <= set(df.columns)


def test_cli_bad_input_exit_2_one_line(tmp_path):
    r = _cli("rank", "--dataset", "mnist", "--results", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "dataset 'mnist'" in r.stderr
    assert not (tmp_path / "rank.parquet").exists()
