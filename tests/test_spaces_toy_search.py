"""A new space needs nothing but its package and a registration: every sampler searches the toy
space through the table-free ``train`` proxy (real training, tiny budget)."""
from __future__ import annotations

import math

import optuna
import pytest

from harness.data.datasets import load_dataset
from harness.methods.samplers import SAMPLERS, make_sampler
from harness.proxies import ProxyContext, TrainProxy, TrainSettings, make_proxy
from harness.search.trials import search_once
from harness.store.results import ResultsStore
from harness.train.recipe import ORIGINAL

optuna.logging.set_verbosity(optuna.logging.WARNING)

BUDGET = 4
TINY = ORIGINAL.with_(epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10-valid", limit=128)  # the embedded images: no download


@pytest.mark.parametrize("sampler_name", sorted(SAMPLERS))
def test_every_sampler_searches_the_toy_space_by_training(sampler_name, toy_space, data, tmp_path):
    store = ResultsStore(tmp_path)
    proxy = TrainProxy(toy_space, "original", data, table_dataset="cifar10", cfg=TINY, store=store)
    rows = search_once(toy_space, proxy, make_sampler(sampler_name, 0, toy_space), BUDGET)

    assert list(rows["trial"]) == list(range(BUDGET))
    for row in rows.itertuples():
        assert math.isfinite(row.proxy) and 0 <= row.proxy <= 100, row
        assert math.isnan(row.ground_truth), "the toy space has no table, so no ground truth"
        assert toy_space.parse(row.arch_str) == toy_space.canonical(row.arch_str)
        assert row.wall_s > 0
    trained = store.read("train")
    assert len(trained) == BUDGET
    assert set(trained["space"]) == {"toy"} and set(trained["method"]) == {"original"}
    assert list(trained["arch_str"]) == list(rows["arch_str"])
    assert list(trained["val_acc"]) == list(rows["proxy"])
    assert set(trained["epochs"]) == {1}


def test_the_train_proxy_by_name_works_for_the_toy_space(toy_space, tmp_path):
    """What a benchmark definition does: ``make_proxy("train:original", ...)`` from settings."""
    ctx = ProxyContext(toy_space, "cifar10", store=ResultsStore(tmp_path),
                       train=TrainSettings(limit=128, batch_size=64, epochs={"original": 1}, device="cpu"))
    proxy = make_proxy("train:original", ctx)
    score = proxy(("conv3x3", "pool"))
    assert 0 <= score.value <= 100 and math.isnan(score.ground_truth)
    (row,) = ResultsStore(tmp_path).read("train").itertuples()
    assert row.arch_str == "conv3x3|pool" and row.dataset == "cifar10-valid" and row.n_train == 128
