"""A new space needs nothing but its package and a registration: every sampler searches the toy
space through the table-free ``train`` proxy (real training, tiny budget)."""
from __future__ import annotations

import math
import re

import optuna
import pytest

from harness import HarnessError
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.methods.samplers import SAMPLERS
from harness.proxies import ProxyContext, TrainSettings, make_proxy
from harness.store.results import ResultsStore

optuna.logging.set_verbosity(optuna.logging.WARNING)

BUDGET = 4


@pytest.mark.parametrize("sampler_name", sorted(SAMPLERS))
def test_every_sampler_searches_the_toy_space_by_training(sampler_name, toy_space, tmp_path):
    raw = {"name": "toy-search", "kind": "search", "space": "toy", "datasets": ["cifar10"], "samplers": [sampler_name],
           "budget": BUDGET, "proxies": ["train:original"],
           "train": {"limit": 128, "batch_size": 64, "epochs": {"original": 1}, "device": "cpu"}}  # embedded images
    run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    rows = store.read("runs").sort_values("trial")

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


def test_a_definition_names_only_datasets_of_its_space(toy_space, monkeypatch):
    """The space owns its datasets: validation asks it, with the message every unknown value gets."""
    raw = {"name": "toy-train", "kind": "train", "space": "toy", "datasets": ["cifar100"], "arch_list": ["conv3x3|pool"],
           "train": {"data": "cifar100.npz"}}  # the embedded images are CIFAR-10's
    build_definition(raw, "test")
    monkeypatch.setattr(type(toy_space), "datasets", ("cifar10",))
    with pytest.raises(HarnessError, match=re.escape("test: key 'datasets' = 'cifar100' is unknown (known: cifar10)")):
        build_definition(raw, "test")
