"""A benchmark kind is one module plus one registry line: the toy kind of ``tests/toy_kind.py``,
registered by one line, is validated and run end to end by the same entry points as every kind
(``harness bench`` included), and its rows reach the store."""
import subprocess
import sys
from pathlib import Path

import pytest
import toy_kind

from harness import HarnessError
from harness.bench.definitions import build_definition, load_definition
from harness.bench.kinds import KINDS
from harness.bench.runner import run_benchmark
from harness.store.results import ResultsStore

TOML = 'name = "toy-convcount"\nkind = "convcount"\narchs = 40\nseed = 3\n'


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(KINDS, "convcount", toy_kind.KIND)  # the one registry line


def test_toy_kind_runs_end_to_end(registered, tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOML)
    defn = load_definition(path)
    assert defn["datasets"] == ["cifar10"] and defn["archs"] == 40  # its defaults, its keys
    df = run_benchmark(defn, tmp_path / "results", progress=False)
    stored = ResultsStore(tmp_path / "results").read("rank")
    assert len(df) == len(stored) == 1
    row = stored.iloc[0]
    assert row["proxy"] == "convcount" and row["n"] == 40 and row["benchmark"] == "toy-convcount"
    assert row["krocc_lo"] <= row["krocc"] <= row["krocc_hi"]
    assert '"archs": 40' in row["config"] and row["kind"] == "convcount"


def test_toy_kind_validates_its_own_and_the_shared_keys(registered):
    base = {"name": "t", "kind": "convcount"}
    with pytest.raises(HarnessError, match=r"unknown key 'budget'"):
        build_definition({**base, "budget": 3}, "t.toml")
    with pytest.raises(HarnessError, match=r"key 'archs' must be >= 2"):
        build_definition({**base, "archs": 1}, "t.toml")
    with pytest.raises(HarnessError, match=r"key 'datasets' = 'mnist' is unknown"):
        build_definition({**base, "datasets": ["mnist"]}, "t.toml")


def test_an_unregistered_kind_is_refused_naming_the_known_ones():
    with pytest.raises(HarnessError, match=r"key 'kind' = 'convcount' is unknown \(known: search, rank, "):
        build_definition({"name": "t", "kind": "convcount"}, "t.toml")


def test_harness_bench_runs_a_kind_registered_by_one_line(tmp_path):
    """The CLI path, in a fresh interpreter: the registry line is the only change."""
    (tmp_path / "toy.toml").write_text(TOML)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import toy_kind; "
            "from harness.bench.kinds import KINDS; "
            "KINDS['convcount'] = toy_kind.KIND; from harness.cli import main; "
            f"sys.exit(main(['bench', {str(tmp_path / 'toy.toml')!r}, '--results', {str(tmp_path / 'r')!r}, '--quiet']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(ResultsStore(tmp_path / "r").read("rank")) == 1
