import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from toy_space import ToySpace

from harness.backbones.pretrain import pretrain
from harness.data.datasets import load_dataset
from harness.spaces import get_space, registry

# One intra-op thread: on a shared 2-core machine two spinning OpenMP threads can make a conv step
# 10x slower; tests are tiny, so one thread is both robust and fast enough. The same for every
# process a test starts (CLI subprocesses, forkserver workers) and for each pytest-xdist worker:
# `make test` runs two of them, one per core.
THREADS = os.environ.get("HARNESS_TEST_THREADS", "1")
torch.set_num_threads(int(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", THREADS)


def shared_tmp(tmp_path_factory) -> Path:
    """A folder of this pytest session shared by its pytest-xdist workers (each has its own
    ``basetemp`` below it), or the ``basetemp`` without xdist; never shared across sessions."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def content_key(*parts) -> str:
    """A short sha256 of ``parts`` (tensors by their bytes, anything else by its repr)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.numpy().tobytes() if isinstance(part, torch.Tensor) else repr(part).encode())
    return h.hexdigest()[:16]


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
    session for each (name, data, cfg), seed 0 -- once for all pytest-xdist workers too: the
    checkpoint is keyed by a hash of the name, the recipe and the images, and the first worker
    that needs it trains it under a file lock (the others wait, then load it)."""
    root = shared_tmp(tmp_path_factory) / "backbones"
    root.mkdir(exist_ok=True)

    def get(name: str, data, cfg):
        key = content_key(name, data.name, sorted(cfg.as_dict().items()), data.train.x, data.train.y)
        path = root / f"{name}-{key}.pt"
        meta_path = path.with_suffix(".json")  # what pretrain() returned, as JSON
        with FileLock(str(path) + ".lock"):
            if not meta_path.exists():
                meta = pretrain(name, data, path, cfg=cfg, seed=0, progress=False)
                meta_path.write_text(json.dumps(meta))
        return path, json.loads(meta_path.read_text())

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
