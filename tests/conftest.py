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
