"""A new proxy family is one module (``tests/toy_proxy_family.py``) plus one registration: the
definition validator, the rank kind and a search then take its names like the built-in ones."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau
from toy_proxy_family import TOY

from harness import HarnessError
from harness.analysis.rank import top_k
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.proxies import registry
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.tabular import get_table

TOY_NAME = "toy:nor_conv_3x3"
RANK = {"name": "toy-rank", "kind": "rank", "datasets": ["cifar10"], "proxies": ["nb201-12ep-val", TOY_NAME],
        "sample": 100, "draws": 1, "top_k": 50}


@pytest.fixture
def toy_family():
    """The toy family registered (as ``register_proxy_family(TOY)`` would) while one test runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._FAMILIES, TOY.name, TOY)
        yield TOY


def test_an_unregistered_family_is_refused_by_the_validator():
    with pytest.raises(HarnessError, match=r"key 'proxies': proxy 'toy:nor_conv_3x3': unknown \(known: .*zc:<measure>"):
        build_definition(RANK, "t.toml")


def test_the_validator_asks_the_family_to_check_its_names(toy_family):
    with pytest.raises(HarnessError, match=r"t.toml: key 'proxies': toy proxy 'toy:conv9x9': unknown operation"):
        build_definition({**RANK, "proxies": ["toy:conv9x9"]}, "t.toml")
    with pytest.raises(HarnessError, match="'toy:skip_connect' is a table of another space than 'darts'"):
        build_definition({**RANK, "space": "darts", "proxies": ["toy:skip_connect"]}, "t.toml")
    with pytest.raises(HarnessError, match="unknown.*toy:<op>"):  # the unknown-name error lists it
        build_definition({**RANK, "proxies": ["toy"]}, "t.toml")


def test_a_registered_family_is_ranked_end_to_end(toy_family, tmp_path):
    run_benchmark(build_definition(RANK, "t.toml"), tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    rows = store.read("rank").set_index(["proxy", "selection"])
    assert set(rows.index) == {(p, s) for p in RANK["proxies"] for s in ("random-100", "top-50")}
    # the toy's rows, recomputed here without the harness's proxy: the count of 3x3 convs per cell
    space, truth = get_space("nb201"), get_table("nb201").ground_truth("cifar10")
    convs = np.array([space.canonical(i).count("nor_conv_3x3") for i in range(len(truth))], dtype=float)
    best = top_k(truth, 50)
    top = rows.loc[(TOY_NAME, "top-50")]
    assert top["n"] == len(best) and top["krocc"] == pytest.approx(kendalltau(convs[best], truth[best]).statistic)
    random = rows.loc[(TOY_NAME, "random-100")]
    sel = np.random.default_rng([0, 0]).choice(len(truth), size=100, replace=False)
    assert random["krocc_single"] == pytest.approx(kendalltau(convs[sel], truth[sel]).statistic)
    assert random["krocc"] > 0.2  # more 3x3 convolutions, better networks: a real (if crude) proxy
    pairs = store.read("rank_pairs")
    assert set(pairs["proxy"]) == {TOY_NAME} and set(pairs["baseline"]) == {"nb201-12ep-val"}


def test_a_registered_family_is_searched_by_name(toy_family, tmp_path):
    raw = {"name": "toy-search", "kind": "search", "datasets": ["cifar10"], "samplers": ["random"], "budget": 4,
           "proxies": [TOY_NAME]}
    run_benchmark(build_definition(raw, "t.toml"), tmp_path, progress=False)
    runs = ResultsStore(tmp_path).read("runs")
    space = get_space("nb201")
    assert len(runs) == 4 and set(runs["proxy_name"]) == {TOY_NAME}
    assert [float(space.parse(a).count("nor_conv_3x3")) for a in runs["arch_str"]] == runs["proxy"].tolist()
