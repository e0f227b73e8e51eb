"""Zero-cost proxies of a Tr-Net's trainable suffix (``zc:<measure>@tr-net-<i>-<j>``): the suffix
is scored on the frozen prefix's features, with the Original's own initial weights, the backbone
untouched; names checked; the rank kind end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import HarnessError
from harness.backbones.checkpoint import save_backbone
from harness.backbones.resnet import build_backbone
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.data.datasets import load_dataset
from harness.measure.counting import count_params
from harness.proxies import proxy_family
from harness.proxies.zero_cost.measures import ZeroCostProxy, score_network
from harness.proxies.zero_cost.trnet import SuffixNetwork, split_name
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.transfer.splice import build_tr_net

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    return save_backbone(tmp_path_factory.mktemp("bb") / "resnet32.pt", build_backbone("resnet32"), "resnet32")


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10-valid", limit=64, device="cpu")


def test_names():
    assert split_name("synflow") == ("synflow", None)
    assert split_name("synflow@tr-net-5-5") == ("synflow", "tr-net-5-5")
    assert proxy_family("zc:snip@tr-net-10-10").zero_cost
    with pytest.raises(HarnessError, match="'@original' is the plain zc:snip"):
        proxy_family("zc:snip@original")
    with pytest.raises(HarnessError, match="expected 'original' or 'tr-net-<i>-<j>'"):
        proxy_family("zc:snip@tr-net-5")
    with pytest.raises(HarnessError, match="unknown"):
        proxy_family("zc:nope@tr-net-5-5")


@pytest.mark.parametrize("measure", ["synflow", "jacob_cov", "params"])
def test_suffix_is_scored_on_prefix_features_with_the_originals_weights(checkpoint, data, measure):
    space = get_space("nb201")
    tr = ZeroCostProxy(space, f"{measure}@tr-net-5-5", data, table_dataset="cifar10", batch_size=8,
                       backbone_path=checkpoint)
    plain = ZeroCostProxy(space, measure, data, table_dataset="cifar10", batch_size=8)
    assert tr.x.shape == (8, 16, 32, 32) and plain.x.shape == (8, 3, 32, 32)
    # an independent construction: the splice of a network built from the same seed, its tail fed
    # the prefix's output; the tail's modules are that network's own (the Original's initial weights)
    model = build_backbone("resnet32")
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    torch.manual_seed(0)
    net = space.build_network(space.canonical(ARCH))
    original = dict(net.named_parameters())
    trnet = build_tr_net(net, model, i=5, j=5)
    assert all(any(p is q for q in original.values()) for p in trnet.tail.parameters())
    suffix = tr.network(ARCH).state_dict()
    assert all(torch.equal(v, suffix[f"tail.{k}"]) for k, v in trnet.tail.state_dict().items())
    feats = trnet.prefix.outputs(plain.x, 1)[-1]
    assert torch.equal(feats, tr.x)
    want = score_network(measure, SuffixNetwork(trnet.tail), feats, plain.y, inplace=True)
    assert tr.value(ARCH) == pytest.approx(want, rel=1e-6, nan_ok=True)
    if measure == "params":
        assert tr.value(ARCH) == count_params(trnet.tail) < plain.value(ARCH)


def test_suffix_leaves_the_backbone_untouched(checkpoint, data):
    tr = ZeroCostProxy(get_space("nb201"), "snip@tr-net-5-5", data, table_dataset="cifar10", batch_size=8,
                       backbone_path=checkpoint)
    before = {k: v.clone() for k, v in tr.suffix.backbone.state_dict().items()}
    x = tr.x.clone()
    for _ in range(2):
        tr.value(ARCH)
    after = tr.suffix.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and torch.equal(x, tr.x)
    prefix = [*tr.suffix.backbone.stem.parameters(), *tr.suffix.backbone.blocks[:5].parameters()]
    assert prefix and not any(p.requires_grad for p in prefix)


def test_needs_a_backbone_and_a_one_input_tail(data):
    with pytest.raises(HarnessError, match="needs a pre-trained backbone checkpoint"):
        ZeroCostProxy(get_space("nb201"), "snip@tr-net-5-5", data, table_dataset="cifar10", batch_size=8)

    class TwoInputs(torch.nn.Module):
        inputs = 2

    with pytest.raises(HarnessError, match="reads 2"):
        SuffixNetwork(TwoInputs())


def test_rank_kind_with_suffix_proxies(tmp_path, checkpoint):
    defn = build_definition({"name": "zc-trnet", "kind": "rank", "datasets": ["cifar10"],
                             "proxies": ["zc:params", "zc:synflow", "zc:params@tr-net-5-5", "zc:synflow@tr-net-5-5"],
                             "sample": 6, "zc_timed": 2, "train": {"limit": 64},
                             "backbone": {"checkpoint": str(checkpoint)}}, "test")
    df = run_benchmark(defn, tmp_path, progress=False).set_index("proxy")
    assert {"zc:params@tr-net-5-5", "zc:synflow@tr-net-5-5"} <= set(df.index)
    assert (df.loc[["zc:params@tr-net-5-5", "zc:synflow@tr-net-5-5"], "timed"] == 2).all()
    rows = ResultsStore(tmp_path).read("zero_cost")
    p = rows[rows["proxy"] == "zc:params"].set_index("arch_index")["value"]
    q = rows[rows["proxy"] == "zc:params@tr-net-5-5"].set_index("arch_index")["value"]
    assert len(p) == len(q) == 6 and (q < p).all() and np.isfinite(q).all()
