import os

import numpy as np
import pytest
import torch
from toy_space import ToySpace

from harness.backbones.pretrain import pretrain
from harness.data.datasets import load_dataset
from harness.spaces import get_space, registry

# One intra-op thread: on a shared 2-core machine two spinning OpenMP threads can make a conv step
# 10x slower; tests are tiny, so one thread is both robust and fast enough.
torch.set_num_threads(int(os.environ.get("HARNESS_TEST_THREADS", "1")))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_data():
    """``tiny_data(limit)``: the embedded cifar10-valid images, first ``limit`` of each split (cached)."""
    cache = {}

    def get(limit: int):
        if limit not in cache:
            cache[limit] = load_dataset("cifar10-valid", limit=limit)
        return cache[limit]

    return get


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
    """``pretrained(name, data, cfg)`` -> (checkpoint path, metadata): a backbone pre-trained once per
    session for each (name, data, cfg), seed 0."""
    cache = {}

    def get(name: str, data, cfg):
        key = (name, data.name, len(data.train), cfg)
        if key not in cache:
            path = tmp_path_factory.mktemp("backbone") / f"{name}.pt"
            cache[key] = (path, pretrain(name, data, path, cfg=cfg, seed=0, progress=False))
        return cache[key]

    return get


@pytest.fixture(scope="module")
def toy_space():
    """The toy space of ``tests/toy_space.py``, registered as ``"toy"`` while the module's tests run;
    the registry is restored afterwards (the name removed again if it was not there)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._FACTORIES, "toy", ToySpace)
        mp.delitem(registry._INSTANCES, "toy", raising=False)
        yield get_space("toy")
        # get_space cached an instance: drop it too (the context then restores any earlier one).
        registry._INSTANCES.pop("toy", None)
