import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import HarnessError
from harness.analysis.rank import rank_proxy, top_k
from harness.spaces.nb201 import encoding as nb201
from harness.store.results import ResultsStore
from harness.tabular import TabularBenchmark, get_table, register_table, registry, table_spaces
from harness.tabular.nb201 import DATASETS, METRICS, NB201Table

TABULAR = Path(registry.__file__).parent

INDEX1234 = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"


def rank_table_proxy(table, dataset, metric="val_acc", epochs=12, **kw):
    """A table column ranked against the table's ground truth (200-epoch seed-mean test accuracy)."""
    return rank_proxy(table.column(dataset, metric, epochs), table.ground_truth(dataset), dataset=dataset,
                      proxy_name=f"{metric}@{epochs}", **kw)


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
    r = rank_table_proxy(table, "cifar10", "test_acc_oneseed", 200)
    assert r.n == nb201.NUM_ARCHS and 0.93 < r.krocc < 0.96


def test_top_k_tie_rules():
    truth = np.array([5.0, 4.0, 4.0, 4.0, 1.0])
    assert top_k(truth, 2, "drop").tolist() == [0]
    assert top_k(truth, 2, "stable").tolist() == [0, 1]
    assert top_k(truth, 2, "include").tolist() == [0, 1, 2, 3]
    assert top_k(truth, 4, "drop").tolist() == [0, 1, 2, 3]
    with pytest.raises(HarnessError, match="top-k 0"):
        top_k(truth, 0)


def test_parquet_loader_rejects_official_files_with_a_pointer(tmp_path):
    (pth := tmp_path / "NAS-Bench-201-v1_1-096897.pth").write_bytes(b"")
    with pytest.raises(HarnessError, match=r"NAS-Bench-201-v1_1-096897.pth'?: not a .parquet table.*get_table"):
        NB201Table.load(pth)
    with pytest.raises(HarnessError, match="does not exist"):
        NB201Table.load("/nonexistent/nb201.parquet")


# -- the TabularBenchmark interface and the registry ------------------------------------------

def test_registry_gives_the_shipped_table(table):
    assert "nb201" in table_spaces()
    assert get_table() is get_table("nb201") is table
    assert isinstance(table, TabularBenchmark)
    assert (table.space, table.num_archs, table.datasets) == ("nb201", nb201.NUM_ARCHS, DATASETS)
    assert table.source.endswith("nb201.parquet")


def test_registry_reads_a_parquet_path(table):
    other = get_table("nb201", TABULAR / "nb201.parquet")
    assert other is not table and other.source == str(TABULAR / "nb201.parquet")
    np.testing.assert_array_equal(other.ground_truth("cifar100"), table.ground_truth("cifar100"))


def test_unknown_space_lists_the_known_ones():
    with pytest.raises(HarnessError, match=r"^tabular benchmark 'nb101': unknown \(known: .*nb201.*\)$"):
        get_table("nb101")


def test_register_table(monkeypatch, table):
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    seen = []
    register_table("toy", lambda path: seen.append(path) or table)
    assert get_table("toy", "somewhere") is table and seen == ["somewhere"]
    assert table_spaces() == ("nb201", "toy")


def test_lookup_and_ground_truth_values(table):
    assert table.lookup(0, "cifar10", "val_acc", 12) == 63.363999980468748
    assert table.lookup(INDEX1234, "ImageNet16-120", "val_acc", 12) == 0.83333333142598465
    assert table.lookup(nb201.parse(INDEX1234), "ImageNet16-120", "val_acc", 12) == 0.83333333142598465
    assert table.lookup(15624, "cifar100", "test_acc", 12) == 25.359999999999999
    assert table.lookup(0, "cifar100", "test_acc_oneseed", 200) == 53.079999951171878
    assert isinstance(table.lookup(0, "cifar10", "val_acc", 12), float)
    gt = table.ground_truth("cifar10")
    assert gt[0] == 85.863333333333344 and table.ground_truth("ImageNet16-120")[15624] == 21.411111104329425
    assert gt.shape == (nb201.NUM_ARCHS,) and not gt.flags.writeable
    np.testing.assert_array_equal(gt, table.column("cifar10", "test_acc", 200))
    with pytest.raises(HarnessError, match="dataset 'svhn': unknown"):
        table.ground_truth("svhn")


def test_rows_and_metrics(table):
    assert table.index_of(INDEX1234) == table.index_of(nb201.parse(INDEX1234)) == table.index_of(1234) == 1234
    assert table.indices_of([INDEX1234, 7, nb201.from_index(3)]).tolist() == [1234, 7, 3]
    assert table.metrics() == METRICS == {"val_acc": (12,), "test_acc": (12, 200), "test_acc_oneseed": (12, 200)}
    table.metrics()["val_acc"] = (1,)
    assert table.metrics()["val_acc"] == (12,)
    with pytest.raises(HarnessError, match="arch 'nope'"):
        table.lookup("nope", "cifar10", "val_acc", 12)


# -- no import cycle ----------------------------------------------------------------------------

def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_official_imports_on_its_own():
    r = _fresh_python("import harness.tabular.official")
    assert r.returncode == 0, r.stderr


def test_nb201_alone_does_not_import_the_official_backend():
    # Load nb201.py by itself with official.py and the registry made unimportable.
    code = ("import importlib.util, sys\n"
            "sys.modules['harness.tabular.official'] = sys.modules['harness.tabular.registry'] = None\n"
            f"spec = importlib.util.spec_from_file_location('nb201_alone', {str(TABULAR / 'nb201.py')!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            f"table = mod.NB201Table._from_parquet({str(TABULAR / 'nb201.parquet')!r})\n"
            "print(table.lookup(0, 'cifar10', 'test_acc', 200), 'harness.tabular' in sys.modules)")
    r = _fresh_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "85.86333333333334 False"


def test_package_exports_the_registry():
    r = _fresh_python("from harness.tabular import TabularBenchmark, get_table, register_table, table_spaces\n"
                      "print(table_spaces(), get_table().num_archs)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "('nb201',) 15625"


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module


@pytest.mark.parametrize("module", sorted(p.name for p in TABULAR.glob("*.py")))
def test_no_function_local_imports_but_the_optional_packages(module):
    tree = ast.parse((TABULAR / module).read_text())
    local = {m for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for m in _imports(f)}
    assert local <= {"nas_201_api", "nats_bench"}, local
    if module == "nb201.py":
        assert not {m for m in _imports(tree) if m.startswith(("harness.tabular.official", "harness.tabular.registry"))}


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_rank_writes_parquet(tmp_path):
    r = _cli("rank", "--dataset", "cifar100", "--top-k", "1000", "--results", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0.3190" in r.stdout and "0.4623" in r.stdout
    df = ResultsStore(tmp_path).read("rank")
    assert len(df) == 1 and {"commit", "version_torch", "seed", "wall_s", "n", "batch_id", "config"} <= set(df.columns)


def test_cli_bad_input_exit_2_one_line(tmp_path):
    r = _cli("rank", "--dataset", "mnist", "--results", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "'mnist'" in r.stderr
    assert not (tmp_path / "rank").exists()
