import os

import pytest
import torch

# One intra-op thread: on a shared 2-core machine two spinning OpenMP threads can make a conv step
# 10x slower; tests are tiny, so one thread is both robust and fast enough.
torch.set_num_threads(int(os.environ.get("HARNESS_TEST_THREADS", "1")))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def toy_space():
    """The toy space of ``tests/toy_space.py``, registered as ``"toy"`` while the module's tests run;
    the registry is restored afterwards (the name removed again if it was not there)."""
    from toy_space import ToySpace

    from harness.spaces import get_space, registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._FACTORIES, "toy", ToySpace)
        mp.delitem(registry._INSTANCES, "toy", raising=False)
        yield get_space("toy")
        # get_space cached an instance: drop it too (the context then restores any earlier one).
        registry._INSTANCES.pop("toy", None)
