"""The throughput kind's extra measurements: the prefix feature cache's evaluation speed-up and
images/s with K candidates at once (harness.bench.kinds.throughput_speed), on tiny sizes."""
import pandas as pd
import pytest
import torch

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition
from harness.bench.kinds.throughput_speed import concurrent_rows, eval_cache_rows, summary
from harness.spaces import get_space
from harness.train.recipe import TrainConfig

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
LIGHT = "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"


def test_eval_cache_rows_time_both_paths_with_identical_accuracies(tiny_data):
    space = get_space("nb201")
    cands = [(ALL_CONV, space.parse(ALL_CONV)), ("random", space.parse(LIGHT))]
    rows = eval_cache_rows(space, cands, build_backbone("resnet32"), tiny_data(64), 5, 5, ["fp32", "bf16"], 2, 0)
    assert [(r["mode"], r["selection"]) for r in rows] == [("fp32", ALL_CONV), ("fp32", "random"),
                                                           ("bf16", ALL_CONV), ("bf16", "random")]
    assert all(r["identical"] and r["plain_s"] > 0 and r["cached_s"] > 0 and r["n_images"] == 64 for r in rows)
    assert rows[0]["fill_s"] == rows[1]["fill_s"] != rows[2]["fill_s"]  # one fill per mode
    text = summary(pd.DataFrame(rows))
    assert "| listed | fp32 | 1 |" in text and "| random | bf16 | 1 |" in text and "NO" not in text


def test_concurrent_rows_train_the_same_candidates_k_at_a_time():
    space = get_space("nb201")
    rows = concurrent_rows(space, [space.parse(ALL_CONV), space.parse(LIGHT)], [1, 2], TrainConfig(), 4, 2,
                           torch.device("cpu"), 0)
    assert [(r["concurrent"], r["candidates"], r["steps"]) for r in rows] == [(1, 2, 2), (2, 2, 2)]
    assert all(r["images_per_s"] == pytest.approx(2 * 2 * 4 / r["wall_s"]) for r in rows)
    assert "| 2 |" in summary(pd.DataFrame(rows))


@pytest.mark.parametrize("bad,msg", [({"cache_modes": ["fp16"]}, "key 'cache_modes'"),
                                     ({"concurrency": [1, 0]}, "every K must be >= 1"),
                                     ({"cache_rounds": 0}, "'cache_rounds' must be >= 1"),
                                     ({"cache_archs": -1}, "cache_archs")])
def test_speed_keys_are_checked(bad, msg):
    raw = {"name": "tp", "kind": "throughput", "cache_archs": 1, "concurrency": [1, 2]}
    assert build_definition(raw, "test")["cache_rounds"] == 3
    with pytest.raises(HarnessError, match=msg):
        build_definition({**raw, **bad}, "test")
