"""K candidates at once: K from free memory (1 on CPU), at most K running, results in order."""
import time

import pytest
import torch

from harness import HarnessError
from harness.proxies import TrainProxy
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.train.concurrent import Occupancy, concurrency, run_concurrently
from harness.train.loop import train
from harness.train.recipe import TrainConfig

ARCHS = ["|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"]


def test_k_from_free_memory():
    assert concurrency("cpu", 10**9) == 1
    assert concurrency("cuda", 2 * 2**30, free_bytes=20 * 2**30) == 9 - 1  # 18 GiB usable / 2 GiB, capped at 8
    assert concurrency("cuda", 2 * 2**30, free_bytes=7 * 2**30) == 3
    assert concurrency("cuda", 2 * 2**30, free_bytes=2**30) == 1
    with pytest.raises(HarnessError, match="per-candidate memory"):
        concurrency("cpu", 0)
    with pytest.raises(HarnessError, match="k=0"):
        run_concurrently([], 0)


def _job(space, arch, data, occ):
    torch.manual_seed(0)  # built here, one at a time: the global RNG is shared by the worker threads
    net = space.build_network(space.parse(arch))

    def job():
        time.sleep(0.2)  # overlap the two workers for sure
        return train(net, data, TrainConfig(epochs=1, batch_size=32), seed=0, progress=False).test_acc
    return occ.track(job)


def test_two_tiny_candidates_concurrently_match_one_at_a_time(tiny_data):
    data, space = tiny_data(32), get_space("nb201")
    one, two = Occupancy(), Occupancy()
    alone = run_concurrently([_job(space, a, data, one) for a in ARCHS], k=1)
    both = run_concurrently([_job(space, a, data, two) for a in ARCHS], k=2)
    assert one.peak == 1 and two.peak == 2
    assert both == alone  # same candidates, same results, same order


def test_train_proxy_trains_k_at_once_with_the_results_of_one_at_a_time(tiny_data, tmp_path):
    """The rank/train kinds' path (TrainProxy.train_rows): on CPU one at a time by default; with
    k = 2 (what a GPU gets from free memory) the same rows, marked ``concurrent``."""
    data, space = tiny_data(32), get_space("nb201")
    archs = [space.parse(a) for a in ARCHS]
    cfg = TrainConfig(epochs=1, batch_size=32)
    keys = ["arch_str", "val_acc", "test_acc", "train_loss", "config"]

    def rows(k, where):
        proxy = TrainProxy(space, "original", data, table_dataset="cifar10", cfg=cfg, store=ResultsStore(where))
        return proxy.train_rows(archs, k=k), ResultsStore(where).read("train")

    alone, stored_alone = rows(None, tmp_path / "a")
    both, stored_both = rows(2, tmp_path / "b")
    assert [[r[k] for k in keys] for r in both] == [[r[k] for k in keys] for r in alone]
    assert "concurrent" not in alone[0] and [r["concurrent"] for r in both] == [2, 2]
    assert len(stored_alone) == len(stored_both) == 2
    loop = [TrainProxy(space, "original", data, table_dataset="cifar10", cfg=cfg).train_row(a) for a in archs]
    assert [[r[k] for k in keys] for r in loop] == [[r[k] for k in keys] for r in alone]  # as before on CPU
